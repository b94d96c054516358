"""Small helpers over pyroute2 shared by the host modules: error wrapping and link lookups."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from ..errors import HostNetworkError

__all__ = ["link_index", "link_name", "netlink_step"]


@contextmanager
def netlink_step(what: str) -> Iterator[None]:
    """Turn a netlink or OS failure inside the block into `HostNetworkError` naming `what`."""
    try:
        yield
    except NetlinkError as exc:
        raise HostNetworkError(f"cannot {what}: {os.strerror(exc.code)}") from exc
    except OSError as exc:
        raise HostNetworkError(f"cannot {what}: {exc.strerror or exc}") from exc


def link_index(ipr: IPRoute, ifname: str) -> int | None:
    """The index of interface `ifname`, None when there is none."""
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_name(ipr: IPRoute, index: int) -> str:
    """The name of interface `index` (``#INDEX`` when it vanished)."""
    try:
        msg: Any = ipr.link("get", index=index)[0]
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return f"#{index}"
        raise
    return str(msg.get("ifname"))
