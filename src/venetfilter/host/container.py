"""A container's network, brought up, changed and taken down step by step, each step undone when a
later one fails.

`start` does what OpenVZ's kernel and vzctl scripts did at container start: a namespace (created
as ``venet-CTID`` unless one is given), the venet-like link (`venetfilter.host.link`), created
down; then the caller's `register` (the filter learns the link before it can carry anything);
then the link up, the addresses and default routes inside (`venetfilter.host.inside`), one host
route per address and its neighbour proxy entries. `stop` deletes the proxy entries and the link
first (its routes go with it), then the namespace. `change_addresses` adds (inside, route, proxy),
calls the caller's `commit` (the filter's change), then removes.

Every check reads the host once (`venetfilter.host.view`) and runs before the first change; the
address work goes to the kernel in batches (`venetfilter.host.batch`), so thousands of addresses
take well under a second. `step(name)` is called after each step: the lifecycle's checkpoints.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import HostNetworkError, InterfaceExistsError, NetnsExistsError, NotStartedError, PartialChangeError
from ._netlink import link_index
from .batch import Batch, Failure, Op
from .inside import add_default_routes, ensure_default_routes, raise_loopback, set_loopback_down
from .ipaddr import Address, AddressLike, parse_address, parse_addresses
from .link import CONTAINER_IFNAME, DEFAULT_LINK_PREFIX, create_link, delete_link, host_ifname, set_link_up
from .neighbours import NeighbourDevs, format_neighbour_devs, parse_neighbour_devs
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
from .view import HostView, read_view

__all__ = [
    "DEFAULT_NETNS_PREFIX",
    "ContainerNetwork",
    "PartialChangeError",
    "Step",
    "change_addresses",
    "default_netns_name",
    "network_of",
    "proxy_devices_of",
    "start",
    "stop",
]

DEFAULT_NETNS_PREFIX = "venet-"
Step = Callable[[str], None]


def _no_step(name: str) -> None:
    """The default `step`: nothing to do between steps."""




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


def proxy_devices_of(
    view: HostView, address: Address, devs: NeighbourDevs, *, own_prefix: str, exclude: Iterable[int] = (),
    where: str = "the host",
) -> list[int]:
    """The links to proxy `address` on (vzctl's ``NEIGHBOUR_DEVS``: all, detect or a list)."""
    if devs == "all":
        return view.uplinks(own_prefix, tuple(exclude))
    if devs == "detect":
        return view.route_device(address, own_prefix, tuple(exclude))
    return view.listed(devs, where)


def _raise_failures(failures: list[Failure]) -> None:
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise HostNetworkError(f"{failures[0]}{more}")


def _apply(netns: NetnsSpec, ops: list[Op], undo: Rollback, what: str) -> None:
    """Send `ops` in one batch and push the undo of those that took effect; raise on any failure.
    An address inside that is already there (its root put it there) is adopted: no failure, no undo."""
    batch = Batch()
    batch.extend(ops)
    failures = batch.run(netns)
    adopted = {f.op for f in failures if f.op.kind == "address" and f.op.add and f.error == errno.EEXIST}
    failed = {f.op for f in failures}
    done = [op for op in ops if op not in failed]
    undo.push(what, lambda: _undo(netns, done))
    _raise_failures([f for f in failures if f.op not in adopted])


def _undo(netns: NetnsSpec, done: list[Op]) -> None:
    batch = Batch()
    batch.extend(op.inverse() for op in reversed(done))
    _raise_failures(batch.run(netns, missing_ok=True))


def _address_ops(container_index: int, addresses: Iterable[Address], add: bool) -> list[Op]:
    return [Op("address", add, address, container_index) for address in addresses]


def _host_ops(
    host_index: int, addresses: Iterable[Address], devices: Mapping[Address, Iterable[int]], add: bool
) -> list[Op]:
    ops = []
    for address in addresses:
        ops.append(Op("route", add, address, host_index))
        ops.extend(Op("proxy", add, address, device) for device in devices.get(address, ()))
    return ops


def start(
    ctid: str,
    addresses: Iterable[AddressLike] = (),
    *,
    netns: NetnsSpec = None,
    host_netns: NetnsSpec = None,
    neighbour_devs: NeighbourDevs | str = "all",
    link_prefix: str = DEFAULT_LINK_PREFIX,
    register: Callable[[ContainerNetwork], None] | None = None,
    step: Step = _no_step,
) -> ContainerNetwork:
    """Bring container `ctid`'s network up with `addresses`; returns what was set up.

    `netns` is the container's namespace (NAME, PATH or PID); None creates ``venet-CTID``.
    `host_netns` is the hardware node's (None: the current one). `register(network)` is called
    once the link exists and is down, before anything can pass on it. Raises
    `InvalidContainerError`, `InvalidAddressError`, `NetnsNotFoundError`, `NetnsExistsError`,
    `InterfaceExistsError`, `InterfaceNotFoundError`, `AddressRoutedError` or `HostNetworkError`
    (or what `register` raises); after any of them the host is as it was.
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
        view = read_view(host_netns)
        if view.index(name) is not None:
            raise InterfaceExistsError(name, host_where)
        for address in wanted:
            view.check_unrouted(address, None)
        devices = {a: proxy_devices_of(view, a, devs, own_prefix=link_prefix, where=host_where) for a in wanted}
        step("checked")
        path = create_netns(str(netns)) if created else netns_file(netns)
        try:
            with open_iproute(path) as container, Rollback() as undo:
                step("netns")
                if link_index(container, CONTAINER_IFNAME) is not None:
                    raise InterfaceExistsError(CONTAINER_IFNAME, describe_netns(netns))
                link = create_link(host, container, path, ctid, name, host_where)
                undo.push(f"delete link {name}", lambda: delete_link(host, link.host_index))
                network = ContainerNetwork(
                    ctid, _spec(netns) or "", _spec(host_netns), created, False, False, devs, tuple(wanted),
                    link.host_index, link_prefix,
                )
                step("link")
                if register is not None:
                    register(network)
                step("registered")
                raised, lo_address = raise_loopback(container)
                if raised:
                    undo.push("bring the container's lo down", lambda: set_loopback_down(container, lo_address))
                set_link_up(host, container, link)
                add_default_routes(container, link.container_index)
                step("up")
                _apply(path, _address_ops(link.container_index, wanted, True), undo, "delete the addresses inside")
                _apply(host_netns, _host_ops(link.host_index, wanted, devices, True), undo,
                       "delete the host routes and proxy entries")
                step("addresses")
        except BaseException:
            if created:
                remove_netns(str(netns))
            raise
    return replace(network, loopback_raised=raised, loopback_address_added=lo_address)


def network_of(
    ctid: str, *, netns: NetnsSpec = None, host_netns: NetnsSpec = None, link_prefix: str = DEFAULT_LINK_PREFIX
) -> ContainerNetwork:
    """The network of a started container read back from the host (when no record was kept).

    The addresses are those routed to its host link; nothing is known to have been created.
    `NotStartedError` when the link does not exist.
    """
    name = host_ifname(ctid, link_prefix)
    view = read_view(host_netns)
    index = view.index(name)
    if index is None:
        raise NotStartedError(ctid, describe_netns(host_netns))
    return ContainerNetwork(
        ctid, _spec(netns) or default_netns_name(ctid), _spec(host_netns), addresses=tuple(view.routed_to(index)),
        host_index=index, link_prefix=link_prefix,
    )


def _holds_peer(netns: str, host_index: int) -> bool:
    """Whether `netns` holds ``venet0`` whose veth peer is the host's link `host_index`."""
    if not netns_exists(netns):
        return False
    try:
        with open_iproute(netns) as container:
            links: Any = container.get_links(ifname=CONTAINER_IFNAME)
    except (OSError, HostNetworkError):
        return False
    return any(link.get_attr("IFLA_LINK") == host_index for link in links)


def stop(network: ContainerNetwork, step: Step = _no_step) -> bool:
    """Undo `start`: proxy entries, the link (its host routes go with it), and the namespace if
    `start` created it (else its ``lo`` as it was). What is already gone is skipped; returns False
    when nothing of the container's network was there at all."""
    found = False
    with open_iproute(network.host_netns) as host:
        view = read_view(network.host_netns)
        index = view.index(network.host_ifname)
        addresses = set(network.addresses)
        if index is not None:
            addresses.update(view.routed_to(index))
        batch = Batch()
        for address in sorted(addresses, key=lambda a: (a.version, a)):
            for device in sorted(view.proxies.get(address, ())):
                batch.delete("proxy", address, device)
            if index is not None:
                batch.delete("route", address, index)
        found = index is not None or any(op.kind == "proxy" for op in batch.ops)
        # the container's lo is put back only in the namespace that holds this link's peer: a
        # /proc/PID/ns/net path may name another process's namespace once the container is gone
        restore_loopback = (
            not network.netns_created and network.loopback_raised and index is not None
            and _holds_peer(network.netns, index)
        )
        _raise_failures(batch.run(network.host_netns, missing_ok=True))
        step("proxies")
        if index is not None:
            delete_link(host, index)
        step("link")
    if network.netns_created and netns_exists(network.netns):
        found = True
        remove_netns(network.netns)
    elif restore_loopback and netns_exists(network.netns):
        with open_iproute(network.netns) as container:
            set_loopback_down(container, network.loopback_address_added)
    step("netns")
    return found


def change_addresses(
    network: ContainerNetwork,
    added: Iterable[AddressLike] = (),
    removed: Iterable[AddressLike] = (),
    *,
    commit: Callable[[], None] | None = None,
    step: Step = _no_step,
) -> ContainerNetwork:
    """Add `added` (inside, host route, proxy entries), call `commit()`, then remove `removed`;
    returns the new network.

    Addresses are compared with what the host routes to the container now (an address both removed
    and added stays as it is). Every check runs first. A failure before `commit` returns undoes
    every step and raises; a failure in the removals after it raises `PartialChangeError` (the
    default routes the kernel dropped are put back either way).
    """
    to_add, to_remove = parse_addresses(added), parse_addresses(removed)
    host_where = describe_netns(network.host_netns)
    view = read_view(network.host_netns)  # one read of the host: the checks and the removals work from it
    host_index = view.index(network.host_ifname)
    if host_index is None:
        raise NotStartedError(network.ctid, host_where)
    container_path = netns_file(network.netns)
    with open_iproute(container_path) as container:
        container_index = link_index(container, CONTAINER_IFNAME)
        if container_index is None:
            raise NotStartedError(network.ctid, describe_netns(network.netns))
        current = set(view.routed_to(host_index))
        keep = set(to_add)
        removing = [a for a in to_remove if a in current and a not in keep]  # del+add of one: kept
        adding = [a for a in to_add if a not in current]
        for address in adding:
            view.check_unrouted(address, host_index)
        devices = {
            a: proxy_devices_of(view, a, network.neighbour_devs, own_prefix=network.link_prefix,
                                exclude=(host_index,), where=host_where)
            for a in adding
        }
        with Rollback() as undo:
            undo.push("restore the default routes",
                      lambda: ensure_default_routes(container, container_index, container_path))
            _apply(container_path, _address_ops(container_index, adding, True), undo, "delete the added addresses inside")
            _apply(network.host_netns, _host_ops(host_index, adding, devices, True), undo,
                   "delete the added host routes and proxy entries")
            step("added")
            if commit is not None:
                commit()
            step("committed")
        batch = Batch()
        batch.extend(Op("proxy", False, a, device) for a in removing for device in sorted(view.proxies.get(a, ())))
        batch.extend(Op("route", False, a, host_index) for a in removing)
        failures = batch.run(network.host_netns, missing_ok=True)
        inside = Batch()
        inside.extend(_address_ops(container_index, removing, False))
        failures += inside.run(container_path, missing_ok=True)
        ensure_default_routes(container, container_index, container_path)
        if failures:
            raise PartialChangeError(f"the filter no longer passes them, but {failures[0]}")
        step("removed")
    known = set(network.addresses)
    live = [a for a in network.addresses if a in current] + [a for a in current if a not in known]
    gone = set(removing)
    now = [a for a in live if a not in gone] + adding
    return replace(network, addresses=tuple(now), host_index=host_index)
