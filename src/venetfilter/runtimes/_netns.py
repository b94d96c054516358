"""A container process's network namespace, and the check that the runtime left it bare."""

from __future__ import annotations

import os

from ..errors import InvalidOptionError, NetnsNotFoundError
from ..host import open_iproute
from ..host.netns import NetnsSpec, same_netns

__all__ = ["check_bare_netns", "pid_netns"]


def pid_netns(pid: int) -> str:
    """``/proc/PID/ns/net``; `NetnsNotFoundError` (exit 21) when no process `pid` runs."""
    path = f"/proc/{pid}/ns/net"
    if not os.path.exists(path):
        raise NetnsNotFoundError(f"process {pid} does not exist: the container's process is gone")
    return path


def check_bare_netns(path: str, host_netns: NetnsSpec, hint: str) -> None:
    """Refuse (`InvalidOptionError`, exit 21) a namespace that is the host's or has a link other
    than ``lo``: a link venetfilter did not make would carry the container's packets unjudged.
    `hint` tells the user how to give the container a namespace of its own with nothing in it."""
    if same_netns(path, host_netns):
        raise InvalidOptionError(f"the container shares the host's network namespace: {hint}")
    with open_iproute(path) as ipr:
        names = sorted(str(link.get_attr("IFLA_IFNAME")) for link in ipr.link("dump"))
    others = [name for name in names if name != "lo"]
    if others:
        raise InvalidOptionError(
            f"the container's network namespace already has {', '.join(others)}, which venetfilter would not "
            f"filter: {hint}"
        )
