"""Host routes: one /32 or /128 route per container address to the container's host link.

As vzctl's ``ip route add IP dev venet0``: no gateway (scope link for IPv4), main table. Before
adding, `check_unrouted` refuses an address the host already routes elsewhere or owns itself.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from ..errors import AddressRoutedError
from ._netlink import link_name, netlink_step
from .ipaddr import Address, family_of, host_prefixlen

__all__ = ["RT_TABLE_MAIN", "RTPROT_STATIC", "add_host_route", "check_unrouted", "delete_host_route", "routed_addresses"]

RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
_RT_SCOPE_LINK = 253


def _table(msg: Any) -> int:
    return int(msg.get_attr("RTA_TABLE") or msg["table"])


def _main_routes(ipr: IPRoute, family: int) -> list[Any]:
    return [r for r in ipr.route("dump", family=family) if _table(r) == RT_TABLE_MAIN]


def _local_addresses(ipr: IPRoute, family: int) -> dict[Address, int]:
    found: dict[Address, int] = {}
    for msg in ipr.addr("dump", family=family):
        text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if text:
            found[ipaddress.ip_address(text)] = msg["index"]
    return found


def check_unrouted(ipr: IPRoute, address: Address, own_index: int | None) -> None:
    """`AddressRoutedError` when the host has `address` itself or routes it other than via `own_index`."""
    with netlink_step(f"look up the routes of {address}"):
        local = _local_addresses(ipr, family_of(address))
        if address in local:
            raise AddressRoutedError(str(address), f"it is a local address of {link_name(ipr, local[address])}")
        for route in _main_routes(ipr, family_of(address)):
            if route["dst_len"] != host_prefixlen(address) or route.get_attr("RTA_DST") is None:
                continue
            if ipaddress.ip_address(route.get_attr("RTA_DST")) != address:
                continue
            oif = route.get_attr("RTA_OIF")
            if oif is None or oif != own_index:
                where = f"dev {link_name(ipr, oif)}" if oif is not None else "a route without a single device"
                raise AddressRoutedError(str(address), f"there is a route {address}/{route['dst_len']} via {where}")


def add_host_route(ipr: IPRoute, address: Address, index: int) -> None:
    """Route `address` (/32, /128) to link `index`, no gateway."""
    extra = {"scope": _RT_SCOPE_LINK} if address.version == 4 else {}
    try:
        with netlink_step(f"add the host route to {address}"):
            ipr.route(
                "add", family=family_of(address), dst=f"{address}/{host_prefixlen(address)}",
                oif=index, proto=RTPROT_STATIC, **extra,
            )
    except Exception as exc:
        if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == errno.EEXIST:
            raise AddressRoutedError(str(address), "a route to it already exists") from exc
        raise


def delete_host_route(ipr: IPRoute, address: Address, index: int) -> None:
    """Remove the route of `address` via link `index`; a missing one is not an error."""
    extra = {"scope": _RT_SCOPE_LINK} if address.version == 4 else {}
    with netlink_step(f"delete the host route to {address}"):
        try:
            ipr.route("del", family=family_of(address), dst=f"{address}/{host_prefixlen(address)}", oif=index, **extra)
        except NetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
                raise


def routed_addresses(ipr: IPRoute, index: int) -> list[Address]:
    """The single addresses (/32, /128) the main table routes to link `index`."""
    found: list[Address] = []
    with netlink_step(f"list the routes via link #{index}"):
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in _main_routes(ipr, family):
                dst = route.get_attr("RTA_DST")
                if dst is None or route.get_attr("RTA_OIF") != index:
                    continue
                address = ipaddress.ip_address(dst)
                if route["dst_len"] == address.max_prefixlen:
                    found.append(address)
    return found
