"""Put the filters on a link, swap them, read them back, take them off (pyroute2, tc netlink).

A link's filters live under its `clsact` qdisc: one cls_bpf filter per direction, in direct-action
mode, at priority 1 with handle 1. `put` replaces a filter in place (one netlink request, so the
kernel swaps programs between two packets: no moment without a filter). Call these in the
namespace of the link (`run_in_netns`); the program fds are the caller's.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .program import Address, link_filter
from .syscall import load_program, program_id

__all__ = ["Filter", "INGRESS", "EGRESS", "ensure_clsact", "filters", "put", "put_link_filters", "remove_clsact"]

INGRESS, EGRESS = "ffff:fff2", "ffff:fff3"  # clsact's two parents
PRIORITY, HANDLE = 1, 1
ETH_P_ALL = 0x0003


class Filter(NamedTuple):
    """One filter as the kernel lists it."""

    kind: str
    priority: int
    handle: int
    name: str
    prog_id: int | None
    direct_action: bool


_TCA_BPF_TAG, _TCA_BPF_ID = 10, 11  # newer than pyroute2's map of cls_bpf options: read raw


def _raw_attributes(nested: Any) -> dict[int, bytes]:
    """{type: payload} of the attributes inside a nested netlink attribute, from the message's bytes
    (pyroute2 decodes only the attribute types it knows)."""
    data, start, end = bytes(nested.data), nested.offset + 4, nested.offset + nested.length
    found = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4 or start + length > end:
            break
        found[kind & 0x3FFF] = data[start + 4:start + length]
        start += (length + 3) & ~3
    return found


def ensure_clsact(ipr: IPRoute, index: int) -> None:
    """A clsact qdisc on link `index` (kept if there is one)."""
    try:
        ipr.tc("add", "clsact", index)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def put(ipr: IPRoute, index: int, parent: str, prog_fd: int, name: str) -> None:
    """Our filter on one direction of link `index`, running `prog_fd`: added, or replaced in place."""
    ipr.tc("replace-filter", "bpf", index, HANDLE, parent=parent, prio=PRIORITY, protocol=ETH_P_ALL,
           fd=prog_fd, name=name, classid=1, direct_action=True)


def put_link_filters(
    ipr: IPRoute, index: int, sink: int, addresses: Sequence[Address], counters: int | None, name: str
) -> dict[str, int]:
    """Both directions' filters of link `index` (`program.link_filter`), a clsact qdisc made if
    needed; {parent: the id of the program now there}."""
    ensure_clsact(ipr, index)
    ids = {}
    for egress, parent in ((False, INGRESS), (True, EGRESS)):
        fd = load_program(link_filter(egress, index, sink, addresses, counters), name.replace("-", "_"))
        try:
            put(ipr, index, parent, fd, name)
            ids[parent] = program_id(fd)
        finally:
            os.close(fd)
    return ids


def filters(ipr: IPRoute, index: int, parent: str) -> list[Filter]:
    """Every filter on one direction of link `index` (none without a clsact qdisc)."""
    try:
        messages = ipr.get_filters(index=index, parent=parent)
    except NetlinkError as exc:
        if exc.code in (errno.EINVAL, errno.ENOENT):
            return []
        raise
    found = []
    for message in messages:
        kind = message.get_attr("TCA_KIND")
        options: Any = message.get_attr("TCA_OPTIONS")
        if options is None:  # the chain's head entry, one per priority: no filter of its own
            continue
        flags = options.get_attr("TCA_BPF_FLAGS") or 0 if kind == "bpf" else 0
        raw = _raw_attributes(options) if kind == "bpf" else {}
        prog_id = struct.unpack("=I", raw[_TCA_BPF_ID])[0] if len(raw.get(_TCA_BPF_ID, b"")) == 4 else None
        found.append(Filter(
            kind=kind,
            priority=message["info"] >> 16,
            handle=message["handle"],
            name=(options.get_attr("TCA_BPF_NAME") or "") if kind == "bpf" else "",
            prog_id=prog_id,
            direct_action=bool(flags & 1),
        ))
    return found


def remove_clsact(ipr: IPRoute, index: int) -> bool:
    """Take the clsact qdisc (and every filter under it) off link `index`; False if there was none."""
    try:
        ipr.tc("del", "clsact", index)
    except NetlinkError as exc:
        if exc.code in (errno.EINVAL, errno.ENOENT):
            return False
        raise
    return True
