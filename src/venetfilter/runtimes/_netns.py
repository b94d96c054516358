"""A container process's network namespace, the check that the runtime left it bare, and the
check that the node filters at all before a hook gives a container a link."""

from __future__ import annotations

import os

from ..errors import HostNetworkError, InvalidOptionError, NetnsNotFoundError
from ..host import open_iproute
from ..host.netns import NetnsSpec, same_netns
from ..rules import RulesError, table_exists

__all__ = ["NO_FILTER_MESSAGE", "check_bare_netns", "check_filter", "pid_netns"]

NO_FILTER_MESSAGE = (
    "the kernel table inet venetfilter is not installed, so nothing would isolate the container: start the "
    "worker (systemctl start venetfilter-worker, or 'venetctl worker') or run 'venetctl rules install'"
)


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


def check_filter(host_netns: str | None) -> None:
    """Refuse (`HostNetworkError`, exit 3) to start a container when the node has no kernel table.

    ``venetctl start`` then starts it anyway with a warning, which its user reads; a runtime shows
    a hook's output only when the hook fails (podman), or logs it at debug level (LXC), so that
    warning is lost and the container would send with any source address unseen. The table stays
    when the worker stops or dies: only a node where neither the worker nor ``rules install`` ever
    ran (the unit not enabled, failed at boot) has none."""
    try:
        installed = table_exists(host_netns)
    except RulesError as exc:
        raise HostNetworkError(f"cannot tell whether the kernel table is installed: {exc}") from None
    if not installed:
        raise HostNetworkError(NO_FILTER_MESSAGE)
