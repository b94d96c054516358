"""What `Node` does to the host, behind one small interface: `HostNetwork` (the real one, through
`venetfilter.host` and `venetfilter.rules`) and `DryNetwork` (records only; nothing on the host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from ..config.addresses import ConfigAddress
from ..config.ctid import host_ifname
from ..config.neighbourdevs import format_neighbour_devs, parse_neighbour_devs
from ..config.nodeconf import NodeConfig
from ..config.runtime import RunningContainer, load_state
from ..errors import AddressAnsweredError
from ..host import ContainerNetwork, change_addresses, default_netns_name, proxy_devices_of, start, stop
from ..host.announce import announce, probe
from ..host.ipaddr import Address, parse_address
from ..host.view import HostView, read_view
from ..rules import RulesError, desired_elements, table_exists, update

__all__ = ["DryNetwork", "HostNetwork", "Network"]

Checkpoint = Callable[[str], None]


class Network(Protocol):
    """The host side of the lifecycle."""

    def check_neighbour_devs(self, devs: str) -> None: ...
    def check_start(
        self, ctid: str, addresses: Sequence[ConfigAddress], netns: str | None, devs: str, host_netns: str | None,
        warnings: list[str],
    ) -> None: ...
    def starting_record(
        self, ctid: str, addresses: Sequence[ConfigAddress], netns: str | None, devs: str, host_netns: str | None
    ) -> RunningContainer: ...
    def start(self, record: RunningContainer, register: Callable[[int], None], checkpoint: Checkpoint) -> RunningContainer: ...
    def stop(self, record: RunningContainer, checkpoint: Checkpoint) -> bool: ...
    def check_addresses(self, record: RunningContainer, added: Sequence[ConfigAddress], warnings: list[str]) -> None: ...
    def change(
        self, record: RunningContainer, added: Sequence[ConfigAddress], removed: Sequence[ConfigAddress],
        commit: Callable[[], None], checkpoint: Checkpoint,
    ) -> None: ...
    def announce(self, record: RunningContainer, addresses: Sequence[ConfigAddress], warnings: list[str]) -> None: ...
    def sync_filter(self, entries: Mapping[str, tuple[int, list[str]]], host_netns: str | None) -> list[str]: ...


def _addresses(addresses: Iterable[ConfigAddress]) -> list[Address]:
    return [parse_address(a.address) for a in addresses]


def network_of_record(record: RunningContainer, prefix: str) -> ContainerNetwork:
    """The host layer's view of a record."""
    link_prefix = record.link[: -len(record.ctid)] if record.link.endswith(record.ctid) else prefix
    return ContainerNetwork(
        record.ctid, record.netns or default_netns_name(record.ctid), record.host_netns, record.netns_created,
        record.loopback_raised, record.loopback_address_added, parse_neighbour_devs(record.neighbour_devs),
        tuple(_addresses(record.addresses)), record.ifindex, link_prefix,
    )


class HostNetwork:
    """The real host: links, namespaces, routes, proxy entries, announcements and the kernel table."""

    def __init__(self, node: NodeConfig) -> None:
        self.node = node

    def check_neighbour_devs(self, devs: str) -> None:
        parse_neighbour_devs(devs)

    def starting_record(
        self, ctid: str, addresses: Sequence[ConfigAddress], netns: str | None, devs: str, host_netns: str | None
    ) -> RunningContainer:
        return RunningContainer(
            ctid, 0, tuple(addresses), netns if netns is not None else default_netns_name(ctid),
            host_ifname(ctid, self.node.link_prefix), "starting", host_netns, netns is None, False, False,
            format_neighbour_devs(parse_neighbour_devs(devs)),
        )

    def _uplinks(
        self, view: HostView, addresses: Iterable[Address], devs: str, exclude: Iterable[int] = ()
    ) -> dict[str, list[Address]]:
        """{uplink name: addresses proxied there}."""
        chosen: dict[str, list[Address]] = {}
        for address in addresses:
            for index in proxy_devices_of(view, address, parse_neighbour_devs(devs), own_prefix=self.node.link_prefix,
                                          exclude=tuple(exclude)):
                chosen.setdefault(view.name(index), []).append(address)
        return chosen

    def _detect_duplicates(
        self, view: HostView, addresses: Sequence[ConfigAddress], devs: str, host_netns: str | None,
        exclude: Iterable[int], warnings: list[str],
    ) -> None:
        if self.node.skip_arpdetect or not addresses:
            return
        answers = probe(host_netns, self._uplinks(view, _addresses(addresses), devs, exclude))
        for answer in sorted(answers, key=lambda a: (a.address.version, a.address)):
            if self.node.error_on_arpfail:
                raise AddressAnsweredError(str(answer.address), answer.device, answer.mac)
            warnings.append(f"address {answer.address} is in use: {answer.mac} answers for it on {answer.device}")

    def check_start(
        self, ctid: str, addresses: Sequence[ConfigAddress], netns: str | None, devs: str, host_netns: str | None,
        warnings: list[str],
    ) -> None:
        view = read_view(host_netns)
        for address in _addresses(addresses):
            view.check_unrouted(address, None)
        self._detect_duplicates(view, addresses, devs, host_netns, (), warnings)

    def start(self, record: RunningContainer, register: Callable[[int], None], checkpoint: Checkpoint) -> RunningContainer:
        network = start(
            record.ctid, _addresses(record.addresses),
            netns=None if record.netns_created else record.netns, host_netns=record.host_netns,
            neighbour_devs=record.neighbour_devs, link_prefix=self.node.link_prefix,
            register=lambda n: register(n.host_index), step=checkpoint,
        )
        return replace(
            record, ifindex=network.host_index, phase="running", loopback_raised=network.loopback_raised,
            loopback_address_added=network.loopback_address_added,
        )

    def stop(self, record: RunningContainer, checkpoint: Checkpoint) -> bool:
        return stop(network_of_record(record, self.node.link_prefix), checkpoint)

    def check_addresses(self, record: RunningContainer, added: Sequence[ConfigAddress], warnings: list[str]) -> None:
        view = read_view(record.host_netns)
        self._detect_duplicates(view, added, record.neighbour_devs, record.host_netns, (record.ifindex,), warnings)

    def change(
        self, record: RunningContainer, added: Sequence[ConfigAddress], removed: Sequence[ConfigAddress],
        commit: Callable[[], None], checkpoint: Checkpoint,
    ) -> None:
        change_addresses(
            network_of_record(record, self.node.link_prefix), _addresses(added), _addresses(removed),
            commit=commit, step=checkpoint,
        )

    def announce(self, record: RunningContainer, addresses: Sequence[ConfigAddress], warnings: list[str]) -> None:
        """Gratuitous ARP / unsolicited NA on the uplinks of `addresses`; a failure is a warning."""
        if not addresses:
            return
        try:
            view = read_view(record.host_netns)
            chosen = self._uplinks(view, _addresses(addresses), record.neighbour_devs, (record.ifindex,))
            sources: dict[str, ipaddress.IPv6Address] = {}
            for address, index in view.local.items():
                if isinstance(address, ipaddress.IPv6Address) and address.is_link_local:
                    sources.setdefault(view.name(index), address)
            announce(record.host_netns, chosen, sources)
        except OSError as exc:
            warnings.append(f"cannot announce the new addresses on the uplinks: {exc.strerror or exc}")

    def sync_filter(self, entries: Mapping[str, tuple[int, list[str]]], host_netns: str | None) -> list[str]:
        """No worker confirmed: bring the kernel table (if it is there) to `entries` here;
        returns warnings that say what is missing."""
        try:
            if not table_exists(host_netns):
                return ["no kernel table venetfilter is installed: nothing isolates the containers "
                        "(start 'venetctl worker', or 'venetctl rules install')"]
            update(desired_elements(entries), self.node.link_prefix, host_netns)
        except RulesError as exc:
            return [f"cannot update the kernel table: {exc}"]
        return ["no worker is running: the kernel table was updated here, and refused packets are dropped "
                "unjudged (no reasons, no counters, no guard)"]


class DryNetwork:
    """Nothing on the host: records only, with made-up link indexes (above every index the runtime
    state has, from 1001). For tests and planning."""

    FIRST_INDEX = 1000

    def __init__(self, run_dir: Path, node_config: NodeConfig) -> None:
        self.run_dir = run_dir
        self.node_config = node_config

    def check_neighbour_devs(self, devs: str) -> None:
        parse_neighbour_devs(devs)

    def check_start(self, *args: object) -> None:
        pass

    def starting_record(
        self, ctid: str, addresses: Sequence[ConfigAddress], netns: str | None, devs: str, host_netns: str | None
    ) -> RunningContainer:
        return RunningContainer(ctid, 0, tuple(addresses), netns, host_ifname(ctid, self.node_config.link_prefix), "starting",
                                host_netns,
                                neighbour_devs=format_neighbour_devs(parse_neighbour_devs(devs)))

    def start(self, record: RunningContainer, register: Callable[[int], None], checkpoint: Checkpoint) -> RunningContainer:
        used = [c.ifindex for c in load_state(self.run_dir).containers.values()]
        ifindex = max([self.FIRST_INDEX, *used]) + 1
        register(ifindex)
        return replace(record, ifindex=ifindex, phase="running")

    def stop(self, record: RunningContainer, checkpoint: Checkpoint) -> bool:
        return True

    def check_addresses(self, *args: object) -> None:
        pass

    def change(
        self, record: RunningContainer, added: Sequence[ConfigAddress], removed: Sequence[ConfigAddress],
        commit: Callable[[], None], checkpoint: Checkpoint,
    ) -> None:
        commit()

    def announce(self, *args: object) -> None:
        pass

    def sync_filter(self, entries: Mapping[str, tuple[int, list[str]]], host_netns: str | None) -> list[str]:
        return []
