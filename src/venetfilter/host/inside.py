"""Inside the container: loopback up, addresses on ``venet0`` as /32 and /128, default routes via it.

What vzctl's distribution scripts did: every address on the venet device with a full-length
prefix, and ``default dev venet0`` with no gateway for both families.
"""

from __future__ import annotations

import errno
import socket

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from ._netlink import netlink_step
from .ipaddr import Address, host_prefixlen

__all__ = [
    "LOOPBACK_INDEX",
    "RT_SCOPE_LINK",
    "add_default_routes",
    "add_inside_address",
    "delete_inside_address",
    "raise_loopback",
    "set_loopback_down",
]

LOOPBACK_INDEX = 1
RT_SCOPE_LINK = 253


def raise_loopback(ipr: IPRoute) -> bool:
    """Bring ``lo`` up; True when it was down (so that the caller can undo it)."""
    with netlink_step("bring up the container's loopback"):
        flags = ipr.link("get", index=LOOPBACK_INDEX)[0]["flags"]
        if flags & IFF_UP:
            return False
        ipr.link("set", index=LOOPBACK_INDEX, state="up")
    return True


def set_loopback_down(ipr: IPRoute) -> None:
    """Bring ``lo`` down again (undo of `raise_loopback`)."""
    with netlink_step("bring down the container's loopback"):
        ipr.link("set", index=LOOPBACK_INDEX, state="down")


def add_default_routes(ipr: IPRoute, index: int) -> None:
    """``default dev venet0`` for IPv4 and IPv6, no gateway."""
    with netlink_step("add the container's IPv4 default route"):
        ipr.route("add", dst="0.0.0.0/0", oif=index, scope=RT_SCOPE_LINK)
    with netlink_step("add the container's IPv6 default route"):
        ipr.route("add", family=socket.AF_INET6, dst="::/0", oif=index)


def add_inside_address(ipr: IPRoute, index: int, address: Address) -> None:
    """Put `address` on the container link as /32 or /128 (IPv6: no DAD)."""
    extra = {"flags": IFA_F_NODAD} if address.version == 6 else {}
    with netlink_step(f"add address {address} inside the container"):
        ipr.addr("add", index=index, address=str(address), prefixlen=host_prefixlen(address), **extra)


def delete_inside_address(ipr: IPRoute, index: int, address: Address) -> None:
    """Remove `address` from the container link; a missing one is not an error."""
    with netlink_step(f"delete address {address} inside the container"):
        try:
            ipr.addr("del", index=index, address=str(address), prefixlen=host_prefixlen(address))
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                raise
