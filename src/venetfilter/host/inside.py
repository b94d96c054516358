"""Inside the container: loopback up, addresses on ``venet0`` as /32 and /128, default routes via it.

What vzctl's distribution scripts did: every address on the venet device with a full-length
prefix, and ``default dev venet0`` with no gateway for both families.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from ._netlink import netlink_step
from .ipaddr import Address, host_prefixlen
from .view import read_view

__all__ = [
    "LOOPBACK_INDEX",
    "RT_SCOPE_LINK",
    "add_default_routes",
    "ensure_default_routes",
    "add_inside_address",
    "delete_inside_address",
    "raise_loopback",
    "set_loopback_down",
]

LOOPBACK_INDEX = 1
RT_SCOPE_LINK = 253


def _loopback_ipv4(ipr: IPRoute) -> list[Any]:
    return list(ipr.addr("dump", family=socket.AF_INET, index=LOOPBACK_INDEX))


def raise_loopback(ipr: IPRoute) -> tuple[bool, bool]:
    """Bring ``lo`` up; returns (it was down, the kernel gave it 127.0.0.1/8 on the way) for the undo."""
    with netlink_step("bring up the container's loopback"):
        flags = ipr.link("get", index=LOOPBACK_INDEX)[0]["flags"]
        if flags & IFF_UP:
            return False, False
        had_ipv4 = bool(_loopback_ipv4(ipr))
        ipr.link("set", index=LOOPBACK_INDEX, state="up")
        return True, not had_ipv4 and bool(_loopback_ipv4(ipr))


def set_loopback_down(ipr: IPRoute, drop_address: bool) -> None:
    """Undo `raise_loopback`: ``lo`` down, and the 127.0.0.1/8 it got removed when `drop_address`."""
    with netlink_step("bring down the container's loopback"):
        ipr.link("set", index=LOOPBACK_INDEX, state="down")
        if drop_address:
            for msg in _loopback_ipv4(ipr):
                ipr.addr("del", index=LOOPBACK_INDEX, address=msg.get_attr("IFA_LOCAL"), prefixlen=msg["prefixlen"])


def add_default_routes(ipr: IPRoute, index: int) -> None:
    """``default dev venet0`` for IPv4 and IPv6, no gateway."""
    with netlink_step("add the container's IPv4 default route"):
        ipr.route("add", dst="0.0.0.0/0", oif=index, scope=RT_SCOPE_LINK)
    with netlink_step("add the container's IPv6 default route"):
        ipr.route("add", family=socket.AF_INET6, dst="::/0", oif=index)


def ensure_default_routes(ipr: IPRoute, index: int, netns: str | int | os.PathLike[str] | None = None) -> None:
    """Add back a default route the kernel dropped (in `netns`, the namespace of `ipr`).

    Linux flushes every IPv4 route through a device when its last IPv4 address goes, so after
    ``--ipdel`` of the last IPv4 address (or a rollback that re-adds one) the route must return.
    The routes are read with one fast dump (a container with thousands of addresses has thousands
    of local routes).
    """
    with netlink_step("check the container's default routes"):
        present = {(network.version, oif) for network, oif in read_view(netns).networks if network.prefixlen == 0}
        for family, version, dst, extra in (
            (socket.AF_INET, 4, "0.0.0.0/0", {"scope": RT_SCOPE_LINK}),
            (socket.AF_INET6, 6, "::/0", {}),
        ):
            if (version, index) not in present:
                ipr.route("add", family=family, dst=dst, oif=index, **extra)


def add_inside_address(ipr: IPRoute, index: int, address: Address) -> bool:
    """Put `address` on the container link as /32 or /128 (IPv6: no DAD). False when it was there
    already (its root put it there by hand): the admin's grant makes it work, nothing to add."""
    extra = {"flags": IFA_F_NODAD} if address.version == 6 else {}
    with netlink_step(f"add address {address} inside the container"):
        try:
            ipr.addr("add", index=index, address=str(address), prefixlen=host_prefixlen(address), **extra)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise
    return True


def delete_inside_address(ipr: IPRoute, index: int, address: Address) -> None:
    """Remove `address` from the container link; a missing one is not an error."""
    with netlink_step(f"delete address {address} inside the container"):
        try:
            ipr.addr("del", index=index, address=str(address), prefixlen=host_prefixlen(address))
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                raise
