"""Neighbour proxying: per-address proxy ARP (IPv4) and proxy NDP (IPv6) entries on the host uplinks.

Which uplinks, as vzctl's ``NEIGHBOUR_DEVS``:

* ``all``: every interface that is up, not loopback, not a bonding slave, not NOARP, not a
  container link (ours, named by our prefix, or another tool's: `FOREIGN_LINK_PREFIXES`) and has a
  non-link-local address;
* ``detect``: the interface of the host's route to the address (looked up before the container's
  own host route exists);
* an explicit list of interface names (``list:eth0 eth1`` on the command line).

The kernel answers for a proxy entry only with forwarding on (and, for NDP, proxy_ndp on): see
`venetfilter.host.sysctl`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Collection, Sequence
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOOPBACK, IFF_NOARP, IFF_SLAVE, IFF_UP

from ..config.ctid import DEFAULT_LINK_PREFIX, FOREIGN_LINK_PREFIXES
from ..errors import HostNetworkError, InterfaceNotFoundError
from ._netlink import link_index, netlink_step
from .ipaddr import Address, family_of

__all__ = [
    "NTF_PROXY",
    "NeighbourDevs",
    "add_proxy",
    "all_uplinks",
    "is_container_link",
    "delete_proxy",
    "detect_uplink",
    "format_neighbour_devs",
    "parse_neighbour_devs",
    "proxy_devices",
    "proxy_entries",
]

NTF_PROXY = 0x08
NeighbourDevs = str | tuple[str, ...]
"""``"all"``, ``"detect"``, or a tuple of interface names."""


def parse_neighbour_devs(value: str | Sequence[str]) -> NeighbourDevs:
    """``all``, ``detect``, ``list:eth0 eth1`` (or ``eth0,eth1``, or a sequence of names)."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("all", "detect"):
            return text
        text = text.removeprefix("list:")
        names = tuple(n for n in text.replace(",", " ").split() if n)
    else:
        names = tuple(value)
    if not names or any(not n or "/" in n or len(n) > 15 or n in ("all", "detect") for n in names):
        raise HostNetworkError(f"invalid neighbour devices {value!r}: give all, detect or list:IFNAME...")
    return names


def format_neighbour_devs(devs: NeighbourDevs) -> str:
    """The text `parse_neighbour_devs` reads back."""
    return devs if isinstance(devs, str) else "list:" + " ".join(devs)


def _has_routable_address(ipr: IPRoute, index: int) -> bool:
    for msg in ipr.addr("dump", index=index):
        text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if text and not ipaddress.ip_address(text).is_link_local:
            return True
    return False


def is_container_link(name: str, own_prefix: str = DEFAULT_LINK_PREFIX) -> bool:
    """True for a container's host link: ours (`own_prefix`) or another tool's."""
    return name.startswith((own_prefix, *FOREIGN_LINK_PREFIXES))


def all_uplinks(ipr: IPRoute, exclude: Collection[int] = (), own_prefix: str = DEFAULT_LINK_PREFIX) -> list[int]:
    """The interfaces ``all`` selects, by index, `exclude` left out."""
    found = []
    for link in ipr.link("dump"):
        flags = link["flags"]
        if link["index"] in exclude or not flags & IFF_UP or flags & (IFF_LOOPBACK | IFF_NOARP | IFF_SLAVE):
            continue
        if is_container_link(link.get_attr("IFLA_IFNAME") or "", own_prefix):
            continue
        if _has_routable_address(ipr, link["index"]):
            found.append(link["index"])
    return found


def detect_uplink(
    ipr: IPRoute, address: Address, exclude: Collection[int] = (), own_prefix: str = DEFAULT_LINK_PREFIX
) -> list[int]:
    """The interface of the host's route to `address` ([] when unroutable, loopback, NOARP or a
    container link)."""
    try:
        route = ipr.route("get", dst=str(address))[0]
    except NetlinkError as exc:
        if exc.code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESRCH, errno.EINVAL, errno.EACCES):
            return []
        raise
    oif = route.get_attr("RTA_OIF")
    if oif is None or oif in exclude:
        return []
    link = ipr.link("get", index=oif)[0]
    if link["flags"] & (IFF_LOOPBACK | IFF_NOARP) or is_container_link(link.get_attr("IFLA_IFNAME") or "", own_prefix):
        return []
    return [oif]


def proxy_devices(
    ipr: IPRoute, address: Address, devs: NeighbourDevs, exclude: Collection[int] = (), where: str = "the host",
    own_prefix: str = DEFAULT_LINK_PREFIX,
) -> list[int]:
    """The interfaces (indexes) to proxy `address` on; `InterfaceNotFoundError` for a missing listed one."""
    with netlink_step(f"choose the neighbour proxy devices of {address}"):
        if devs == "all":
            return all_uplinks(ipr, exclude, own_prefix)
        if devs == "detect":
            return detect_uplink(ipr, address, exclude, own_prefix)
        found = []
        for name in devs:
            index = link_index(ipr, name)
            if index is None:
                raise InterfaceNotFoundError(name, where)
            found.append(index)
        return found


def add_proxy(ipr: IPRoute, address: Address, index: int) -> bool:
    """Add a proxy entry for `address` on link `index`; False when it was already there."""
    try:
        ipr.neigh("add", family=family_of(address), dst=str(address), ifindex=index, flags=NTF_PROXY)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return False
        raise HostNetworkError(f"cannot add a proxy entry for {address} on #{index}: {os.strerror(exc.code)}") from exc
    return True


def delete_proxy(ipr: IPRoute, address: Address, index: int) -> None:
    """Remove the proxy entry of `address` on link `index`; a missing one is not an error."""
    try:
        ipr.neigh("del", family=family_of(address), dst=str(address), ifindex=index, flags=NTF_PROXY)
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
            raise HostNetworkError(
                f"cannot delete the proxy entry for {address} on #{index}: {os.strerror(exc.code)}"
            ) from exc


def _accept(msg: Any) -> bool:
    return True


def proxy_entries(ipr: IPRoute) -> list[tuple[Address, int]]:
    """Every proxy entry of the namespace, as (address, link index).

    Proxy entries are only dumped when the request itself carries NTF_PROXY (``ip neigh show
    proxy``); pyroute2 turns dump keywords into a match filter unless ``dump_filter`` is given.
    """
    found = []
    with netlink_step("list the neighbour proxy entries"):
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in ipr.neigh("dump", family=family, flags=NTF_PROXY, dump_filter=_accept):
                dst = msg.get_attr("NDA_DST")
                if dst is not None and msg["flags"] & NTF_PROXY:
                    found.append((ipaddress.ip_address(dst), msg["ifindex"]))
    return found
