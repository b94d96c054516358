"""A container process's network namespace, the check that the runtime left it bare, and the
check that the node filters at all before a hook gives a container a link."""

from __future__ import annotations

import os
from typing import Any

from ..errors import HostNetworkError, InvalidOptionError, NetnsNotFoundError
from ..host import open_iproute
from ..host.netns import NetnsSpec, same_netns
from ..rules import RulesError, table_exists

__all__ = ["FALLBACK_TUNNELS", "NO_FILTER_MESSAGE", "check_bare_netns", "check_filter", "check_startable", "pid_netns"]

NO_FILTER_MESSAGE = (
    "no kernel table venetfilter is installed, so nothing would isolate the container: start the "
    "worker (systemctl start venetfilter-worker, or 'venetctl worker') or run 'venetctl rules install'"
)


def pid_netns(pid: int) -> str:
    """``/proc/PID/ns/net``; `NetnsNotFoundError` (exit 21) when no process `pid` runs."""
    path = f"/proc/{pid}/ns/net"
    if not os.path.exists(path):
        raise NetnsNotFoundError(f"process {pid} does not exist: the container's process is gone")
    return path


FALLBACK_TUNNELS = frozenset({
    ("tunl0", "ipip"), ("sit0", "sit"), ("ip6tnl0", "ip6tnl"), ("gre0", "gre"), ("gretap0", "gretap"),
    ("erspan0", "erspan"), ("ip6gre0", "ip6gre"), ("ip6gretap0", "ip6gretap"), ("ip6erspan0", "ip6erspan"),
    ("ip_vti0", "vti"), ("ip6_vti0", "vti6"),
})
"""The (name, kind) of the tunnel devices the kernel puts in every new network namespace while
their module is loaded (``net.core.fb_tunnels_only_for_init_net = 0``, the default)."""
_IFF_UP = 0x1


def _fallback_tunnel(link: Any) -> bool:
    """A kernel fallback tunnel, down as the kernel makes it: it leads nowhere but through the
    namespace's other links (here only venet0, filtered), so it is no way around venetfilter."""
    name = str(link.get_attr("IFLA_IFNAME"))
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    local = link.get_attr("IFLA_LINK_NETNSID") is None  # else it encapsulates in another namespace
    return (name, kind) in FALLBACK_TUNNELS and local and not link["flags"] & _IFF_UP


def check_bare_netns(path: str, host_netns: NetnsSpec, hint: str) -> None:
    """Refuse (`InvalidOptionError`, exit 21) a namespace that is the host's or has a link other
    than ``lo``: a link venetfilter did not make would carry the container's packets unjudged.
    `hint` tells the user how to give the container a namespace of its own with nothing in it.
    The kernel's fallback tunnels (`FALLBACK_TUNNELS`, down) are no such link: a host that loaded
    ipip, sit, gre or vti has them in every namespace, so refusing them would refuse every container."""
    if same_netns(path, host_netns):
        raise InvalidOptionError(f"the container shares the host's network namespace: {hint}")
    with open_iproute(path) as ipr:
        links = [link for link in ipr.link("dump") if not _fallback_tunnel(link)]
    names = sorted(str(link.get_attr("IFLA_IFNAME")) for link in links)
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


def check_startable(path: str, host_netns: str | None, hint: str) -> None:
    """What every runtime hook checks before it gives a container its link: the namespace at `path`
    is bare (`check_bare_netns`, `hint` for the user) and the node filters (`check_filter`)."""
    check_bare_netns(path, host_netns, hint)
    check_filter(host_netns)
