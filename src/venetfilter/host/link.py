"""The container link: a veth pair, ``PREFIX+CTID`` (``vnf101``) on the host and ``venet0`` in the container.

Both ends are IFF_NOARP and share one MAC address. That pairing is what makes a veth behave like
venet's point-to-point device for IPv4 *and* IPv6 with no neighbour discovery at all: on a NOARP
device the kernel gives every neighbour (ARP and NDP alike, see ``arp_constructor`` and
``ndisc_constructor``) the state NOARP and the device's *own* MAC as destination, so each frame
is addressed to the sender's MAC. The receiving veth end accepts it as PACKET_HOST only when that
is its own MAC too; with different MACs it would be PACKET_OTHERHOST and dropped. With one MAC on
both ends, routes "dev venet0" / "dev ve-CTID" with no gateway work for any destination, and no
static neighbour entries are needed. IPv6 duplicate address detection is skipped on NOARP devices
(addresses are never tentative); the addresses are still added with IFA_F_NODAD to say so. Like
venet, the ends get no IPv6 link-local address (address generation mode "none"): nothing on the
link needs one, and nothing then appears on the link after `create_link` returns.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_NOARP, IFF_UP

from ..config.ctid import DEFAULT_LINK_PREFIX, LINK_GROUP, host_ifname
from ..errors import HostNetworkError, InterfaceExistsError
from ._netlink import link_index, netlink_step

__all__ = [
    "CONTAINER_IFNAME",
    "DEFAULT_LINK_PREFIX",
    "ContainerLink",
    "create_link",
    "delete_link",
    "host_ifname",
    "random_mac",
    "set_link_up",
]

CONTAINER_IFNAME = "venet0"

def random_mac() -> str:
    """A random locally administered unicast MAC address."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


@dataclass(frozen=True)
class ContainerLink:
    """The two ends of a container link."""

    ctid: str
    host_ifname: str
    host_index: int
    container_index: int
    mac: str


IN6_ADDR_GEN_MODE_NONE = 1


def _noarp(ipr: IPRoute, index: int) -> None:
    no_link_local = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]}]]}
    ipr.link("set", index=index, IFLA_AF_SPEC=no_link_local)
    ipr.link("set", index=index, flags=IFF_NOARP, change=IFF_NOARP)


def set_link_up(host: IPRoute, container: IPRoute, link: ContainerLink) -> None:
    """Bring both ends up: from now on the link carries packets (the filter must know it)."""
    with netlink_step(f"bring up link {link.host_ifname}/{CONTAINER_IFNAME}"):
        container.link("set", index=link.container_index, flags=IFF_UP, change=IFF_UP)
        host.link("set", index=link.host_index, flags=IFF_UP, change=IFF_UP)


def create_link(
    host: IPRoute, container: IPRoute, container_netns: str | None, ctid: str, name: str, host_where: str
) -> ContainerLink:
    """Create the pair `name` / ``venet0`` (peer moved into `container_netns`, a namespace file),
    NOARP, in our interface group, and down: nothing passes before `set_link_up`. Either the whole
    link exists afterwards or nothing does.
    """
    mac = random_mac()
    fd = os.open(container_netns, os.O_RDONLY | os.O_CLOEXEC) if container_netns is not None else None
    try:
        peer: dict[str, object] = {"ifname": CONTAINER_IFNAME, "address": mac}
        if fd is not None:
            peer["net_ns_fd"] = fd
        host.link("add", ifname=name, kind="veth", address=mac, group=LINK_GROUP, peer=peer)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise InterfaceExistsError(name, host_where) from exc
        raise HostNetworkError(f"cannot create link {name}: {os.strerror(exc.code)}") from exc
    finally:
        if fd is not None:
            os.close(fd)
    host_index = link_index(host, name)
    if host_index is None:
        raise HostNetworkError(f"link {name} vanished after it was created")
    try:
        with netlink_step(f"set up link {name}/{CONTAINER_IFNAME}"):
            container_index = link_index(container, CONTAINER_IFNAME)
            if container_index is None:
                raise HostNetworkError(f"{CONTAINER_IFNAME} of link {name} is not in the container's netns")
            _noarp(container, container_index)
            _noarp(host, host_index)
    except BaseException:
        delete_link(host, host_index)
        raise
    return ContainerLink(ctid, name, host_index, container_index, mac)


def delete_link(host: IPRoute, index: int) -> None:
    """Delete the pair by its host end (the peer goes with it); a missing link is not an error."""
    try:
        host.link("del", index=index)
    except NetlinkError as exc:
        if exc.code not in (errno.ENODEV, errno.ENOENT):
            raise HostNetworkError(f"cannot delete link #{index}: {os.strerror(exc.code)}") from exc
