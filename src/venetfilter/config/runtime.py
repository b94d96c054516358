"""Runtime state: which containers run, with which link and addresses, in ``RUN_DIR/state.json``.

The file is the one source the worker reads::

    {"generation": N,
     "containers": {CTID: {"ifindex": int, "addresses": ["192.0.2.1", "2001:db8::1/64"],
                           "netns": str | null, "link": "ve-CTID"}}}

A container is running when it is in the file. It is always replaced atomically, and changed only
under the global lock; every change increments ``generation``. A missing file means nothing runs;
a file that does not parse is a `CorruptStateError`, never an empty state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import CorruptStateError, InvalidAddressError, InvalidContainerError, LinkInUseError, NotRunningError
from .addresses import ConfigAddress, merge_addresses, parse_address_token
from .ctid import host_ifname, validate_ctid
from .store import atomic_write, ensure_dir, global_lock

__all__ = [
    "STATE_NAME",
    "RunningContainer",
    "RuntimeState",
    "check_link",
    "load_state",
    "mark_running",
    "mark_stopped",
    "save_state",
    "set_runtime_addresses",
    "state_path",
    "table_entries",
]

STATE_NAME = "state.json"
_MAX_IFINDEX = 0xFFFFFFFF


@dataclass(frozen=True)
class RunningContainer:
    """One running container: its host link, its network namespace and its live addresses."""

    ctid: str
    ifindex: int
    addresses: tuple[ConfigAddress, ...] = ()
    netns: str | None = None
    link: str = ""

    def to_json(self) -> dict[str, Any]:
        """The container's entry in state.json."""
        return {
            "ifindex": self.ifindex,
            "addresses": [str(a) for a in self.addresses],
            "netns": self.netns,
            "link": self.link,
        }


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
        """A new state (next generation) where `container` runs as given."""
        return RuntimeState(self.generation + 1, {**self.containers, container.ctid: container})

    def without_container(self, ctid: str) -> RuntimeState:
        """A new state (next generation) where `ctid` does not run."""
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
        if not isinstance(entry, dict) or set(entry) != {"ifindex", "addresses", "netns", "link"}:
            raise bad(f'container {ctid}: expected "ifindex", "addresses", "netns" and "link"')
        ifindex, addresses, netns, link = entry["ifindex"], entry["addresses"], entry["netns"], entry["link"]
        if type(ifindex) is not int or not 1 <= ifindex <= _MAX_IFINDEX:
            raise bad(f"container {ctid}: bad ifindex {ifindex!r}")
        if ifindex in links:
            raise bad(f"container {ctid}: ifindex {ifindex} is also the link of {links[ifindex]}")
        if not (netns is None or isinstance(netns, str)) or not isinstance(link, str):
            raise bad(f"container {ctid}: netns must be a string or null, link a string")
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
            owner = owners.setdefault(address.address, ctid)
            if owner != ctid or any(p.address == address.address for p in parsed):
                raise bad(f"container {ctid}: address {text} is also listed for container {owner}")
            parsed.append(address)
        links[ifindex] = ctid
        containers[ctid] = RunningContainer(ctid, ifindex, tuple(parsed), netns, link)
    return RuntimeState(generation, containers)


def save_state(run_dir: str | Path, state: RuntimeState) -> None:
    """Write `state` atomically (0600); call it under `global_lock`."""
    ensure_dir(run_dir)
    text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    atomic_write(state_path(run_dir), text.encode())


def mark_running(
    run_dir: str | Path,
    ctid: str,
    ifindex: int,
    addresses: Iterable[ConfigAddress] = (),
    *,
    netns: str | None = None,
    link: str | None = None,
) -> int:
    """Record that `ctid` runs (replacing any previous entry); returns the new generation.

    `link` defaults to ``ve-CTID``. Uniqueness of addresses across containers is the caller's
    business (`ContainerManager.start` checks it); a repeated ifindex is refused here.
    """
    ctid = validate_ctid(ctid)
    unique = tuple(a for a in merge_addresses([], addresses) if not a.is_unspecified)
    entry = RunningContainer(ctid, ifindex, unique, netns, host_ifname(ctid) if link is None else link)
    with global_lock(run_dir):
        state = load_state(run_dir)
        check_link(state, ctid, ifindex)
        state = state.with_container(entry)
        save_state(run_dir, state)
        return state.generation


def check_link(state: RuntimeState, ctid: str, ifindex: object) -> int:
    """`ifindex` when it is a valid interface index that no other running container uses.

    Raises `InvalidContainerError` for a bad index, `LinkInUseError` for one in use.
    """
    if type(ifindex) is not int or not 1 <= ifindex <= _MAX_IFINDEX:
        raise InvalidContainerError(f"invalid interface index {ifindex!r}: must be 1..{_MAX_IFINDEX}")
    for other in state.containers.values():
        if other.ctid != ctid and other.ifindex == ifindex:
            raise LinkInUseError(ifindex, other.ctid)
    return ifindex


def mark_stopped(run_dir: str | Path, ctid: str) -> int:
    """Record that `ctid` no longer runs; returns the new generation (unchanged when it was not running)."""
    ctid = validate_ctid(ctid)
    with global_lock(run_dir):
        state = load_state(run_dir)
        if ctid not in state.containers:
            return state.generation
        state = state.without_container(ctid)
        save_state(run_dir, state)
        return state.generation


def set_runtime_addresses(run_dir: str | Path, ctid: str, addresses: Iterable[ConfigAddress]) -> int:
    """Give running container `ctid` exactly `addresses`; returns the new generation."""
    ctid = validate_ctid(ctid)
    with global_lock(run_dir):
        state = load_state(run_dir)
        if ctid not in state.containers:
            raise NotRunningError(ctid)
        unique = tuple(a for a in merge_addresses([], addresses) if not a.is_unspecified)
        state = state.with_container(replace(state.containers[ctid], addresses=unique))
        save_state(run_dir, state)
        return state.generation


def table_entries(state: RuntimeState | str | Path) -> dict[str, tuple[int, list[str]]]:
    """``{ctid: (ifindex, [address without prefix, ...])}``, ready for `AddressTable.load`."""
    if not isinstance(state, RuntimeState):
        state = load_state(state)
    return {
        ctid: (c.ifindex, [a.address for a in c.addresses]) for ctid, c in sorted(state.containers.items())
    }
