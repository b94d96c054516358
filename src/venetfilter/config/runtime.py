"""Runtime state: one record per running container, all in ``RUN_DIR/state.json``.

The file is what the worker reads and what every lifecycle command changes, under the global lock,
by replacing it atomically; each change increments ``generation``::

    {"generation": N,
     "containers": {CTID: {"phase": "starting" | "running" | "stopping",
                           "link": "vnf101", "ifindex": int (0: no link yet),
                           "addresses": ["192.0.2.1", "2001:db8::1/64"],
                           "netns": str | null, "netns_created": bool, "host_netns": str | null,
                           "loopback_raised": bool, "loopback_address_added": bool,
                           "neighbour_devs": "all" | "detect" | "list:eth0 eth1"}}}

A container is in the file from the first step of its start to the last step of its stop; the
phase says which ("starting" or "stopping" left behind means a command was interrupted: the next
one finishes or undoes it). The worker passes the addresses of every container that has a link.
A missing file means nothing runs; a file that does not parse is a `CorruptStateError`, never an
empty state. A record of CT 0 (the node itself) is left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import CorruptStateError, InvalidAddressError, InvalidContainerError, LinkInUseError
from .addresses import ConfigAddress, parse_address_token
from .ctid import validate_ctid
from .store import atomic_write, ensure_dir

__all__ = [
    "PHASES",
    "STATE_NAME",
    "Phase",
    "RunningContainer",
    "RuntimeState",
    "check_link",
    "load_state",
    "save_state",
    "state_path",
    "table_entries",
]

STATE_NAME = "state.json"
_MAX_IFINDEX = 0xFFFFFFFF
Phase = Literal["starting", "running", "stopping"]
PHASES: tuple[Phase, ...] = ("starting", "running", "stopping")


@dataclass(frozen=True)
class RunningContainer:
    """One container's runtime record: its host link, its namespaces, its live addresses, and
    what its start created (so that a stop, or a repair after a crash, undoes exactly that)."""

    ctid: str
    ifindex: int = 0
    addresses: tuple[ConfigAddress, ...] = ()
    netns: str | None = None
    link: str = ""
    phase: Phase = "running"
    host_netns: str | None = None
    netns_created: bool = False
    loopback_raised: bool = False
    loopback_address_added: bool = False
    neighbour_devs: str = "all"

    def to_json(self) -> dict[str, Any]:
        """The container's entry in state.json."""
        return {
            "phase": self.phase,
            "link": self.link,
            "ifindex": self.ifindex,
            "addresses": [str(a) for a in self.addresses],
            "netns": self.netns,
            "netns_created": self.netns_created,
            "host_netns": self.host_netns,
            "loopback_raised": self.loopback_raised,
            "loopback_address_added": self.loopback_address_added,
            "neighbour_devs": self.neighbour_devs,
        }


_KEYS = set(RunningContainer("x").to_json())
_REQUIRED = {"ifindex", "addresses", "netns", "link"}
_STRINGS_OR_NULL = ("netns", "host_netns")
_BOOLEANS = ("netns_created", "loopback_raised", "loopback_address_added")


@dataclass(frozen=True)
class RuntimeState:
    """The whole runtime state; changed by building a new one."""

    generation: int = 0
    containers: Mapping[str, RunningContainer] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The document written to state.json."""
        return {
            "generation": self.generation,
            "containers": {ctid: c.to_json() for ctid, c in sorted(self.containers.items())},
        }

    def with_container(self, container: RunningContainer) -> RuntimeState:
        """A new state (next generation) where `container` has this record."""
        return RuntimeState(self.generation + 1, {**self.containers, container.ctid: container})

    def without_container(self, ctid: str) -> RuntimeState:
        """A new state (next generation) where `ctid` has no record."""
        return RuntimeState(self.generation + 1, {c: v for c, v in self.containers.items() if c != ctid})


def state_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/state.json``."""
    return Path(run_dir) / STATE_NAME


def load_state(run_dir: str | Path) -> RuntimeState:
    """The current runtime state; empty (generation 0) when the file does not exist."""
    path = state_path(run_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return RuntimeState()
    except OSError as exc:
        raise CorruptStateError(path, f"cannot read it: {exc.strerror or exc}") from None
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise CorruptStateError(path, f"not JSON ({exc})") from None
    return _from_json(document, path)


def _from_json(document: object, path: Path) -> RuntimeState:
    def bad(reason: str) -> CorruptStateError:
        return CorruptStateError(path, reason)

    if not isinstance(document, dict) or set(document) != {"generation", "containers"}:
        raise bad('expected an object with exactly "generation" and "containers"')
    generation, entries = document["generation"], document["containers"]
    if type(generation) is not int or generation < 0:
        raise bad(f"generation {generation!r} is not a non-negative integer")
    if not isinstance(entries, dict):
        raise bad('"containers" is not an object')
    containers: dict[str, RunningContainer] = {}
    links: dict[int, str] = {}
    owners: dict[str, str] = {}
    for ctid, entry in entries.items():
        try:
            validate_ctid(ctid)
        except InvalidContainerError as exc:
            raise bad(str(exc)) from None
        if ctid.lstrip("0") == "":
            continue  # CT 0 is the node itself (an old version could record it): never a container, gone at the next write
        if not isinstance(entry, dict) or not _REQUIRED <= set(entry) <= _KEYS:
            raise bad(f"container {ctid}: expected the keys {', '.join(sorted(_KEYS))} ({', '.join(sorted(_REQUIRED))} at least)")
        ifindex, addresses, netns, link = entry["ifindex"], entry["addresses"], entry["netns"], entry["link"]
        phase = entry.get("phase", "running")
        if type(ifindex) is not int or not 0 <= ifindex <= _MAX_IFINDEX or (ifindex == 0 and phase == "running"):
            raise bad(f"container {ctid}: bad ifindex {ifindex!r}")
        if ifindex and ifindex in links:
            raise bad(f"container {ctid}: ifindex {ifindex} is also the link of {links[ifindex]}")
        if phase not in PHASES:
            raise bad(f"container {ctid}: bad phase {phase!r}")
        if not isinstance(link, str) or any(not (entry.get(k) is None or isinstance(entry.get(k), str)) for k in _STRINGS_OR_NULL):
            raise bad(f"container {ctid}: netns and host_netns must be strings or null, link a string")
        if any(type(entry.get(k, False)) is not bool for k in _BOOLEANS):
            raise bad(f"container {ctid}: {', '.join(_BOOLEANS)} must be true or false")
        devs = entry.get("neighbour_devs", "all")
        if not isinstance(devs, str) or not devs:
            raise bad(f"container {ctid}: neighbour_devs must be a non-empty string")
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise bad(f"container {ctid}: addresses must be a list of strings")
        parsed: list[ConfigAddress] = []
        for text in addresses:
            try:
                address = parse_address_token(text)
            except InvalidAddressError as exc:
                raise bad(f"container {ctid}: {exc}") from None
            if address.is_unspecified or str(address) != text:
                raise bad(f"container {ctid}: address {text!r} is not in canonical form")
            if address.address in owners:  # another container's, or this one's twice
                raise bad(f"container {ctid}: address {text} is also listed for container {owners[address.address]}")
            owners[address.address] = ctid
            parsed.append(address)
        if ifindex:
            links[ifindex] = ctid
        containers[ctid] = RunningContainer(
            ctid, ifindex, tuple(parsed), netns, link, phase, entry.get("host_netns"),
            entry.get("netns_created", False), entry.get("loopback_raised", False),
            entry.get("loopback_address_added", False), devs,
        )
    return RuntimeState(generation, containers)


def save_state(run_dir: str | Path, state: RuntimeState) -> None:
    """Write `state` atomically (0600); call it under `global_lock`."""
    ensure_dir(run_dir)
    text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    atomic_write(state_path(run_dir), text.encode())


def check_link(state: RuntimeState, ctid: str, ifindex: object) -> int:
    """`ifindex` when it is a valid interface index that no other container uses.

    Raises `InvalidContainerError` for a bad index, `LinkInUseError` for one in use.
    """
    if type(ifindex) is not int or not 1 <= ifindex <= _MAX_IFINDEX:
        raise InvalidContainerError(f"invalid interface index {ifindex!r}: must be 1..{_MAX_IFINDEX}")
    for other in state.containers.values():
        if other.ctid != ctid and other.ifindex == ifindex:
            raise LinkInUseError(ifindex, other.ctid)
    return ifindex


def table_entries(state: RuntimeState | str | Path) -> dict[str, tuple[int, list[str]]]:
    """``{ctid: (ifindex, [address without prefix, ...])}`` of every container that has a link,
    ready for `AddressTable.load`."""
    if not isinstance(state, RuntimeState):
        state = load_state(state)
    return {
        ctid: (c.ifindex, [a.address for a in c.addresses])
        for ctid, c in sorted(state.containers.items())
        if c.ifindex
    }
