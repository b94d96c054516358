"""A container's network, brought up, changed and taken down as one transaction each.

`start` does what OpenVZ's kernel and vzctl scripts did at container start: a namespace (created
as ``venet-CTID`` unless one is given), the venet-like link (`venetfilter.host.link`), the
addresses and default routes inside (`venetfilter.host.inside`), one host route per address
(`venetfilter.host.routes`) and its neighbour proxy entries (`venetfilter.host.neighbours`).
Every check that can fail runs before the first change; a later failure rolls back what was done.
`stop` undoes exactly that; `change_addresses` is the runtime ``--ipadd``/``--ipdel``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pyroute2 import IPRoute

from ..errors import HostNetworkError, InterfaceExistsError, NetnsExistsError, NotStartedError
from ._netlink import link_index
from .inside import (
    add_default_routes,
    add_inside_address,
    delete_inside_address,
    ensure_default_routes,
    raise_loopback,
    set_loopback_down,
)
from .ipaddr import Address, AddressLike, parse_address, parse_addresses
from .link import CONTAINER_IFNAME, DEFAULT_LINK_PREFIX, check_link_free, create_link, delete_link, host_ifname
from .neighbours import (
    NeighbourDevs,
    add_proxy,
    delete_proxy,
    format_neighbour_devs,
    parse_neighbour_devs,
    proxy_devices,
    proxy_entries,
)
from .netns import (
    NetnsSpec,
    create_netns,
    describe_netns,
    netns_exists,
    netns_file,
    open_iproute,
    remove_netns,
    same_netns,
)
from .rollback import Rollback
from .routes import add_host_route, check_unrouted, delete_host_route, routed_addresses

__all__ = [
    "DEFAULT_NETNS_PREFIX",
    "ContainerNetwork",
    "change_addresses",
    "default_netns_name",
    "network_of",
    "start",
    "stop",
]

DEFAULT_NETNS_PREFIX = "venet-"


def default_netns_name(ctid: str) -> str:
    """``venet-CTID``: the namespace `start` creates when none is given."""
    return DEFAULT_NETNS_PREFIX + ctid


def _spec(netns: NetnsSpec) -> str | None:
    return None if netns is None else os.fspath(netns) if isinstance(netns, os.PathLike) else str(netns)


@dataclass(frozen=True)
class ContainerNetwork:
    """What `start` set up, enough for `stop` and `change_addresses` (see `to_json`)."""

    ctid: str
    netns: str
    """The container's namespace (NAME, PATH or PID as given, or the created name)."""
    host_netns: str | None = None
    """The host's namespace (None: the current one)."""
    netns_created: bool = False
    """`start` created `netns`; `stop` removes it."""
    loopback_raised: bool = False
    """`start` brought the container's ``lo`` up; `stop` brings it down again (kept namespace only)."""
    loopback_address_added: bool = False
    """Bringing ``lo`` up gave it 127.0.0.1/8; `stop` removes it again."""
    neighbour_devs: NeighbourDevs = "all"
    addresses: tuple[Address, ...] = field(default=())
    host_index: int = 0
    """The interface index of the host link in the host's namespace (0: unknown)."""
    link_prefix: str = DEFAULT_LINK_PREFIX

    @property
    def host_ifname(self) -> str:
        """``PREFIX+CTID``: the host end of the container link."""
        return host_ifname(self.ctid, self.link_prefix)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json` reads it back."""
        return {
            "ctid": self.ctid,
            "netns": self.netns,
            "host_netns": self.host_netns,
            "netns_created": self.netns_created,
            "loopback_raised": self.loopback_raised,
            "loopback_address_added": self.loopback_address_added,
            "neighbour_devs": format_neighbour_devs(self.neighbour_devs),
            "addresses": [str(a) for a in self.addresses],
            "host_index": self.host_index,
            "link_prefix": self.link_prefix,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerNetwork:
        """The network `to_json` described; `HostNetworkError` when `data` is not such a dict."""
        try:
            host_netns = data["host_netns"]
            if not isinstance(data["ctid"], str) or not isinstance(data["netns"], str):
                raise TypeError("ctid and netns must be strings")
            if host_netns is not None and not isinstance(host_netns, str):
                raise TypeError("host_netns must be a string or null")
            return cls(
                ctid=data["ctid"],
                netns=data["netns"],
                host_netns=host_netns,
                netns_created=bool(data["netns_created"]),
                loopback_raised=bool(data["loopback_raised"]),
                loopback_address_added=bool(data["loopback_address_added"]),
                neighbour_devs=parse_neighbour_devs(data["neighbour_devs"]),
                addresses=tuple(parse_address(a) for a in data["addresses"]),
                host_index=int(data["host_index"]),
                link_prefix=str(data.get("link_prefix", DEFAULT_LINK_PREFIX)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HostNetworkError(f"bad container network record: {exc}") from exc


def _add_address(
    host: IPRoute, container: IPRoute, host_index: int, container_index: int,
    address: Address, devices: Iterable[int], undo: Rollback,
) -> None:
    """Address inside, host route, proxy entries; each with its undo."""
    if add_inside_address(container, container_index, address):
        undo.push(f"delete {address} inside", lambda: delete_inside_address(container, container_index, address))
    add_host_route(host, address, host_index)
    undo.push(f"delete the route to {address}", lambda: delete_host_route(host, address, host_index))
    for device in devices:
        if add_proxy(host, address, device):
            undo.push(f"delete the proxy of {address}", partial(delete_proxy, host, address, device))


def _remove_address(
    host: IPRoute, container: IPRoute, host_index: int, container_index: int, address: Address, undo: Rollback,
) -> None:
    """Proxy entries, host route, address inside; each with its undo (re-adding it)."""
    for entry, device in proxy_entries(host):
        if entry == address:
            delete_proxy(host, address, device)
            undo.push(f"re-add the proxy of {address}", partial(add_proxy, host, address, device))
    delete_host_route(host, address, host_index)
    undo.push(f"re-add the route to {address}", lambda: add_host_route(host, address, host_index))
    delete_inside_address(container, container_index, address)
    undo.push(f"re-add {address} inside", lambda: add_inside_address(container, container_index, address))


def start(
    ctid: str,
    addresses: Iterable[AddressLike] = (),
    *,
    netns: NetnsSpec = None,
    host_netns: NetnsSpec = None,
    neighbour_devs: NeighbourDevs | str = "all",
    link_prefix: str = DEFAULT_LINK_PREFIX,
) -> ContainerNetwork:
    """Bring container `ctid`'s network up with `addresses`; returns what was set up.

    `netns` is the container's namespace (NAME, PATH or PID); None creates ``venet-CTID``.
    `host_netns` is the hardware node's (None: the current one). Raises `InvalidContainerError`,
    `InvalidAddressError`, `NetnsNotFoundError`, `NetnsExistsError`, `InterfaceExistsError`,
    `InterfaceNotFoundError`, `AddressRoutedError` or `HostNetworkError`; after any of them
    nothing has changed.
    """
    name = host_ifname(ctid, link_prefix)
    wanted = parse_addresses(addresses)
    devs = parse_neighbour_devs(neighbour_devs)
    host_where = describe_netns(host_netns)
    netns_file(host_netns)
    created = netns is None
    if netns is None:
        netns = default_netns_name(ctid)
        if netns_exists(netns):
            raise NetnsExistsError(netns)
    elif same_netns(netns, host_netns):
        raise HostNetworkError(f"the container's namespace ({describe_netns(netns)}) is the host's")
    with open_iproute(host_netns) as host:
        if link_index(host, name) is not None:
            raise InterfaceExistsError(name, host_where)
        for address in wanted:
            check_unrouted(host, address, None)
        devices = {a: proxy_devices(host, a, devs, where=host_where, own_prefix=link_prefix) for a in wanted}
        path = create_netns(str(netns)) if created else netns_file(netns)
        try:
            with open_iproute(path) as container, Rollback() as undo:
                check_link_free(host, container, name, host_where, describe_netns(netns))
                link = create_link(host, container, path, ctid, name, host_where)
                undo.push(f"delete link {name}", lambda: delete_link(host, link.host_index))
                raised, lo_address = raise_loopback(container)
                if raised:
                    undo.push("bring the container's lo down", lambda: set_loopback_down(container, lo_address))
                add_default_routes(container, link.container_index)
                for address in wanted:
                    _add_address(host, container, link.host_index, link.container_index, address, devices[address], undo)
        except BaseException:
            if created:
                remove_netns(str(netns))
            raise
    return ContainerNetwork(
        ctid, _spec(netns) or "", _spec(host_netns), created, raised, lo_address, devs, tuple(wanted), link.host_index,
        link_prefix,
    )


def network_of(
    ctid: str, *, netns: NetnsSpec = None, host_netns: NetnsSpec = None, link_prefix: str = DEFAULT_LINK_PREFIX
) -> ContainerNetwork:
    """The network of a started container read back from the host (when no record was kept).

    The addresses are those routed to its host link; nothing is known to have been created.
    `NotStartedError` when the link does not exist.
    """
    name = host_ifname(ctid, link_prefix)
    with open_iproute(host_netns) as host:
        index = link_index(host, name)
        if index is None:
            raise NotStartedError(ctid, describe_netns(host_netns))
        addresses = tuple(routed_addresses(host, index))
    return ContainerNetwork(
        ctid, _spec(netns) or default_netns_name(ctid), _spec(host_netns), addresses=addresses, host_index=index,
        link_prefix=link_prefix,
    )


def stop(network: ContainerNetwork) -> None:
    """Undo `start`: proxy entries, host routes, the link, and the namespace if `start` created it.

    Nothing else is touched. What is already gone is skipped; `NotStartedError` when nothing of
    the container's network was there at all.
    """
    found = False
    with open_iproute(network.host_netns) as host:
        index = link_index(host, network.host_ifname)
        addresses = set(network.addresses)
        if index is not None:
            found = True
            addresses.update(routed_addresses(host, index))
        for address, device in proxy_entries(host):
            if address in addresses:
                found = True
                delete_proxy(host, address, device)
        if index is not None:
            for address in sorted(addresses, key=lambda a: (a.version, a)):
                delete_host_route(host, address, index)
            delete_link(host, index)
    if network.netns_created and netns_exists(network.netns):
        found = True
        remove_netns(network.netns)
    elif found and network.loopback_raised and netns_exists(network.netns):
        with open_iproute(network.netns) as container:
            set_loopback_down(container, network.loopback_address_added)
    if not found:
        raise NotStartedError(network.ctid, describe_netns(network.host_netns))


def change_addresses(
    network: ContainerNetwork, added: Iterable[AddressLike] = (), removed: Iterable[AddressLike] = ()
) -> ContainerNetwork:
    """Remove `removed`, then add `added`, inside and on the host at once; returns the new network.

    Addresses are compared with what the host routes to the container now (an address both
    removed and added stays as it is). Every check runs first; a failure part way undoes every
    step (removed addresses come back, and the default routes the kernel dropped), then raises.
    """
    to_add, to_remove = parse_addresses(added), parse_addresses(removed)
    host_where = describe_netns(network.host_netns)
    with open_iproute(network.host_netns) as host:
        host_index = link_index(host, network.host_ifname)
        if host_index is None:
            raise NotStartedError(network.ctid, host_where)
        with open_iproute(network.netns) as container, Rollback() as undo:
            container_index = link_index(container, CONTAINER_IFNAME)
            if container_index is None:
                raise NotStartedError(network.ctid, describe_netns(network.netns))
            current = routed_addresses(host, host_index)
            removing = [a for a in to_remove if a in current and a not in to_add]  # del+add of one: kept
            adding = [a for a in to_add if a not in current]
            for address in adding:
                check_unrouted(host, address, host_index)
            devices = {
                a: proxy_devices(
                    host, a, network.neighbour_devs, exclude=(host_index,), where=host_where,
                    own_prefix=network.link_prefix,
                )
                for a in adding
            }
            undo.push("restore the default routes", lambda: ensure_default_routes(container, container_index))
            for address in removing:
                _remove_address(host, container, host_index, container_index, address, undo)
            for address in adding:
                _add_address(host, container, host_index, container_index, address, devices[address], undo)
            ensure_default_routes(container, container_index)
    live = [a for a in network.addresses if a in current] + [a for a in current if a not in network.addresses]
    now = [a for a in live if a not in removing and a not in adding] + adding
    return replace(network, addresses=tuple(now), host_index=host_index)
