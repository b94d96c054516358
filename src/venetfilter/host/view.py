"""What the host's namespace looks like, read once per operation: local addresses, host routes,
proxy entries and links. Every check of an operation is a lookup in it, however many addresses it
concerns (one dump of each kind, not one per address)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOOPBACK, IFF_NOARP, IFF_SLAVE, IFF_UP

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE

from ..config.ctid import DEFAULT_LINK_PREFIX, FOREIGN_LINK_PREFIXES
from ..errors import AddressRoutedError, InterfaceNotFoundError
from ..netns import run_in_netns
from ._netlink import netlink_step
from .ipaddr import Address

__all__ = ["HostView", "Link", "read_view"]

RT_TABLE_MAIN = 254
NTF_PROXY = 0x08
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
NDA_DST = 1
IFLA_IFNAME = 3


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


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The netlink attributes of a message body, by type (nested flag bit dropped)."""
    found: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x7FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _dump(sock: socket.socket, kind: int, body: bytes, seq: int) -> Iterator[tuple[bytes, int, int]]:
    """The messages of one rtnetlink dump: (buffer, start of body, end)."""
    sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type, _, msg_seq, _ = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                return
            if msg_seq == seq:
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    raise OSError(code, os.strerror(code))
                yield data, offset + 16, offset + length
            offset += (length + 3) & ~3


def _address(family: int, raw: bytes) -> Address:
    return ipaddress.IPv4Address(raw) if family == socket.AF_INET else ipaddress.IPv6Address(raw)


def read_view(netns: str | int | os.PathLike[str] | None) -> HostView:
    """One dump of each kind (links, addresses, routes, proxy entries) from `netns`, read on a
    plain netlink socket: parsing thousands of routes with pyroute2's message classes took half a
    second, this takes milliseconds."""
    return run_in_netns(netns, _read)


def _read() -> HostView:
    view = HostView()
    routable: set[int] = set()
    with netlink_step("read the host's links, addresses, routes and proxy entries"), socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0
    ) as sock:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        for data, start, end in _dump(sock, RTM_GETADDR, struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0), 1):
            family, _, _, _, index = struct.unpack_from("=BBBBI", data, start)
            attrs = _attrs(data, start + 8, end)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None and family in (socket.AF_INET, socket.AF_INET6):
                address = _address(family, raw)
                view.local[address] = index
                if not address.is_link_local:
                    routable.add(index)
        for family in (socket.AF_INET, socket.AF_INET6):
            body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
            for data, start, end in _dump(sock, RTM_GETROUTE, body, 2 + family):
                _, dst_len, _, _, table, _, _, _, _ = struct.unpack_from("=BBBBBBBBI", data, start)
                attrs = _attrs(data, start + 12, end)
                if RTA_TABLE in attrs:
                    table = struct.unpack("=I", attrs[RTA_TABLE])[0]
                if table != RT_TABLE_MAIN:
                    continue
                dst = attrs.get(RTA_DST)
                oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
                base = _address(family, dst) if dst is not None else _address(family, bytes(4 if family == socket.AF_INET else 16))
                network = ipaddress.ip_network(f"{base}/{dst_len}", strict=False)
                view.networks.append((network, oif))
                if dst is not None and dst_len == network.max_prefixlen:
                    view.routes[base] = oif
            body = struct.pack("=BxxxiHBB", family, 0, 0, NTF_PROXY, 0)
            for data, start, end in _dump(sock, RTM_GETNEIGH, body, 20 + family):
                _, index, _, flags, _ = struct.unpack_from("=BxxxiHBB", data, start)
                attrs = _attrs(data, start + 12, end)
                if flags & NTF_PROXY and NDA_DST in attrs:
                    view.proxies.setdefault(_address(family, attrs[NDA_DST]), set()).add(index)
        for data, start, end in _dump(sock, RTM_GETLINK, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0), 40):
            _, _, index, flags, _ = struct.unpack_from("=BxHiII", data, start)
            attrs = _attrs(data, start + 16, end)
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
            view.links[index] = Link(index, name, flags, index in routable)
    view.networks.sort(key=lambda item: item[0].prefixlen, reverse=True)
    return view
