"""What the host's namespace looks like, read once per operation: local addresses, host routes,
proxy entries and links. Every check of an operation is a lookup in it, however many addresses it
concerns (one dump of each kind, not one per address)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOOPBACK, IFF_NOARP, IFF_SLAVE, IFF_UP

from ..config.ctid import DEFAULT_LINK_PREFIX, FOREIGN_LINK_PREFIXES
from ..errors import AddressRoutedError, InterfaceNotFoundError
from ._netlink import netlink_step
from .ipaddr import Address

__all__ = ["HostView", "Link", "read_view"]

RT_TABLE_MAIN = 254
NTF_PROXY = 0x08


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    flags: int
    routable: bool  # has an address that is not link-local


@dataclass
class HostView:
    links: dict[int, Link] = field(default_factory=dict)
    local: dict[Address, int] = field(default_factory=dict)  # the host's own addresses -> link
    routes: dict[Address, int | None] = field(default_factory=dict)  # /32 and /128 main routes -> oif
    proxies: dict[Address, set[int]] = field(default_factory=dict)  # proxy entries -> links
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = field(default_factory=list)
    """Every main-table route (the default one as 0.0.0.0/0 and ::/0) -> oif, longest prefix first."""

    def index(self, name: str) -> int | None:
        return next((link.index for link in self.links.values() if link.name == name), None)

    def name(self, index: int | None) -> str:
        link = self.links.get(index) if index is not None else None
        return link.name if link else f"#{index}"

    def check_unrouted(self, address: Address, own_index: int | None) -> None:
        """`AddressRoutedError` when the host has `address` itself or routes it other than via `own_index`."""
        if address in self.local:
            raise AddressRoutedError(str(address), f"it is a local address of {self.name(self.local[address])}")
        if address in self.routes and self.routes[address] != own_index:
            oif = self.routes[address]
            where = f"dev {self.name(oif)}" if oif is not None else "a route without a single device"
            raise AddressRoutedError(str(address), f"there is a route {address}/{address.max_prefixlen} via {where}")

    def routed_to(self, index: int) -> list[Address]:
        """The single addresses routed to link `index`."""
        return [address for address, oif in self.routes.items() if oif == index]

    def uplinks(self, own_prefix: str = DEFAULT_LINK_PREFIX, exclude: Collection[int] = ()) -> list[int]:
        """The links ``NEIGHBOUR_DEVS=all`` selects: up, not loopback, a bonding slave or NOARP, not a
        container link (ours or another tool's), with an address that is not link-local."""
        return [
            link.index
            for link in self.links.values()
            if link.index not in exclude
            and link.flags & IFF_UP
            and not link.flags & (IFF_LOOPBACK | IFF_NOARP | IFF_SLAVE)
            and not link.name.startswith((own_prefix, *FOREIGN_LINK_PREFIXES))
            and link.routable
        ]

    def route_device(
        self, address: Address, own_prefix: str = DEFAULT_LINK_PREFIX, exclude: Collection[int] = ()
    ) -> list[int]:
        """``NEIGHBOUR_DEVS=detect``: the link of the host's route to `address` (longest prefix),
        [] when there is none or it is loopback, NOARP or a container link (`exclude` too)."""
        for network, oif in self.networks:
            if address.version == network.version and address in network:
                link = self.links.get(oif) if oif is not None else None
                if link is None or oif in exclude or link.flags & (IFF_LOOPBACK | IFF_NOARP):
                    return []
                if link.name.startswith((own_prefix, *FOREIGN_LINK_PREFIXES)):
                    return []
                return [link.index]
        return []

    def listed(self, names: Collection[str], where: str) -> list[int]:
        """The indexes of the links `names`; `InterfaceNotFoundError` for a missing one."""
        found = []
        for name in names:
            index = self.index(name)
            if index is None:
                raise InterfaceNotFoundError(name, where)
            found.append(index)
        return found


def read_view(ipr: IPRoute) -> HostView:
    """One dump of each kind from `ipr`'s namespace."""
    view = HostView()
    with netlink_step("read the host's links, addresses, routes and proxy entries"):
        routable: set[int] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in ipr.addr("dump", family=family):
                text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if text:
                    address = ipaddress.ip_address(text)
                    view.local[address] = msg["index"]
                    if not address.is_link_local:
                        routable.add(msg["index"])
            for route in ipr.route("dump", family=family):
                table = int(route.get_attr("RTA_TABLE") or route["table"])
                if table != RT_TABLE_MAIN:
                    continue
                dst = route.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
                network = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
                view.networks.append((network, route.get_attr("RTA_OIF")))
                if route["dst_len"] == network.max_prefixlen and route.get_attr("RTA_DST") is not None:
                    view.routes[network.network_address] = route.get_attr("RTA_OIF")
            for msg in ipr.neigh("dump", family=family, flags=NTF_PROXY, dump_filter=lambda _: True):
                dst = msg.get_attr("NDA_DST")
                if dst is not None and msg["flags"] & NTF_PROXY:
                    view.proxies.setdefault(ipaddress.ip_address(dst), set()).add(msg["ifindex"])
        for msg in ipr.link("dump"):
            index = msg["index"]
            view.links[index] = Link(index, msg.get_attr("IFLA_IFNAME") or "", msg["flags"], index in routable)
    view.networks.sort(key=lambda item: item[0].prefixlen, reverse=True)
    return view
