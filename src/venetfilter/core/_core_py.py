"""The venet verdict core in plain Python: the readable specification of `_core.pyx`.

Both implementations must agree on every input; `tests/test_core_agreement.py` checks it.

An address key is its packed form: 4 bytes for IPv4, 16 for IPv6, so the two families never meet
(``::ffff:192.0.2.5`` is 16 bytes and is not ``192.0.2.5``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from operator import index as _as_index
from typing import Union

from ..errors import (
    AddressInUseError,
    InvalidAddressError,
    InvalidContainerError,
    LinkInUseError,
    UnknownContainerError,
)
from ._types import Container, Ours, Verdict

__all__ = ["AddressTable", "format_address", "parse_address", "parse_addresses"]

Address = Union[str, IPv4Address, IPv6Address]

ACCEPT = Verdict.ACCEPT
DROP_SOURCE = Verdict.DROP_SOURCE
DROP_DESTINATION = Verdict.DROP_DESTINATION
DROP_MULTICAST = Verdict.DROP_MULTICAST
DROP_MALFORMED = Verdict.DROP_MALFORMED
DROP_NOT_IP = Verdict.DROP_NOT_IP
DROP_UNKNOWN_LINK = Verdict.DROP_UNKNOWN_LINK

MAX_IFINDEX = 0xFFFFFFFF
_NVERDICTS = len(Verdict)


def parse_address(value: object) -> bytes:
    """Return the packed key of an address given as text or an `ipaddress` object.

    Text is IPv6 when it contains ':' and is read with inet_pton, exactly as vzctl does; no prefix
    length, no zone id. Raises `InvalidAddressError` (a ValueError) naming the value otherwise.
    """
    if isinstance(value, str):
        if "\0" in value:
            raise InvalidAddressError(value)
        family = socket.AF_INET6 if ":" in value else socket.AF_INET
        try:
            return socket.inet_pton(family, value)
        except (OSError, UnicodeError, ValueError):
            raise InvalidAddressError(value) from None
    if isinstance(value, IPv6Address):
        if value.scope_id:
            raise InvalidAddressError(value, "zone ids are not allowed")
        return value.packed
    if isinstance(value, IPv4Address):
        return value.packed
    raise InvalidAddressError(value)


def parse_addresses(addresses: Iterable[Address]) -> list[bytes]:
    """The keys of `addresses`, in order, each once."""
    if isinstance(addresses, (str, bytes)):
        raise InvalidAddressError(addresses, "expected an iterable of addresses, not one string")
    return list(dict.fromkeys(parse_address(a) for a in addresses))


def format_address(key: bytes) -> str:
    """The canonical text of a packed key (inet_ntop: IPv6 compressed, lower case)."""
    return socket.inet_ntop(socket.AF_INET if len(key) == 4 else socket.AF_INET6, key)


def _check_ctid(ctid: object) -> str:
    if not isinstance(ctid, str) or not ctid:
        raise InvalidContainerError(f"invalid container id {ctid!r}: must be a non-empty string")
    return ctid


def _check_ifindex(ifindex: object) -> int:
    try:
        value = _as_index(ifindex)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidContainerError(f"invalid interface index {ifindex!r}") from None
    if not 1 <= value <= MAX_IFINDEX:
        raise InvalidContainerError(f"invalid interface index {ifindex!r}: must be 1..{MAX_IFINDEX}")
    return value


def _check_ours(ours: object) -> int:
    """An `ours` argument: an `Ours` flag or an integer 0..3, as the Cython version checks it."""
    try:
        value = _as_index(ours)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"ours must be an Ours flag, not {type(ours).__name__}") from None
    if not 0 <= value <= 3:
        raise ValueError(f"ours = {value} is not an Ours flag (0 to 3)")
    return value


def _check_device(dev: object) -> int:
    """An `indev`/`outdev` argument: 0..2**32-1, as the Cython signature converts it."""
    value = _as_index(dev)  # type: ignore[arg-type]
    if not 0 <= value <= MAX_IFINDEX:
        raise OverflowError(f"interface index out of range: {value}")
    return value


@dataclass(frozen=True)
class _State:
    """One consistent table: replaced as a whole, never changed in place."""

    links: dict[int, str]  # ifindex -> ctid
    ifindex: dict[str, int]  # ctid -> ifindex
    owners: dict[bytes, str]  # packed address -> ctid


_EMPTY = _State({}, {}, {})


def decide(packet: bytes, owners: Mapping[bytes, str], leaving: str | None, entering: str | None) -> Verdict:
    """venet's rule for a packet leaving container `leaving` and/or entering container `entering`."""
    if not packet:
        return DROP_MALFORMED
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            return DROP_MALFORMED
        header_length = (packet[0] & 0x0F) * 4
        total_length = (packet[2] << 8) | packet[3]
        if header_length < 20 or header_length > len(packet) or total_length < header_length:
            return DROP_MALFORMED
        source, destination = packet[12:16], packet[16:20]
        multicast = destination[0] & 0xF0 == 0xE0  # 224.0.0.0/4
    elif version == 6:
        if len(packet) < 40:
            return DROP_MALFORMED
        source, destination = packet[8:24], packet[24:40]
        multicast = destination[0] == 0xFF  # ff00::/8
    else:
        return DROP_NOT_IP
    if multicast:
        return DROP_MULTICAST
    if leaving is not None and owners.get(source) != leaving:
        return DROP_SOURCE
    if entering is not None and owners.get(destination) != entering:
        return DROP_DESTINATION
    return ACCEPT


class AddressTable:
    """Which container owns which address, and which interface is each container's link.

    Every change builds a new state and installs it with one assignment, so a classification running
    in another thread sees the old table or the new one, never a half-built one.
    """

    def __init__(self) -> None:
        self._state = _EMPTY
        self._counters: dict[str, list[int]] = {}
        self._unknown_links = 0
        self._lock = threading.Lock()  # serialises writers; readers never wait

    # -- changes -----------------------------------------------------------------------------------

    def set_container(self, ctid: str, ifindex: int, addresses: Iterable[Address]) -> None:
        """Give container `ctid` the link `ifindex` and exactly `addresses`, replacing what it had."""
        ctid = _check_ctid(ctid)
        ifindex = _check_ifindex(ifindex)
        keys = parse_addresses(addresses)
        with self._lock:
            state = self._state
            other = state.links.get(ifindex)
            if other is not None and other != ctid:
                raise LinkInUseError(ifindex, other)
            self._check_free(state, ctid, keys)
            owners = {k: c for k, c in state.owners.items() if c != ctid}
            owners.update(dict.fromkeys(keys, ctid))
            links = {i: c for i, c in state.links.items() if c != ctid}
            links[ifindex] = ctid
            ifindexes = dict(state.ifindex)
            ifindexes[ctid] = ifindex
            self._state = _State(links, ifindexes, owners)
            self._counters.setdefault(ctid, [0] * _NVERDICTS)

    def remove_container(self, ctid: str) -> bool:
        """Forget container `ctid` and its addresses; False when it was not there."""
        ctid = _check_ctid(ctid)
        with self._lock:
            state = self._state
            if ctid not in state.ifindex:
                return False
            owners = {k: c for k, c in state.owners.items() if c != ctid}
            links = {i: c for i, c in state.links.items() if c != ctid}
            ifindexes = {c: i for c, i in state.ifindex.items() if c != ctid}
            self._state = _State(links, ifindexes, owners)
            del self._counters[ctid]
            return True

    def add_addresses(self, ctid: str, addresses: Iterable[Address]) -> None:
        """Give `ctid` these addresses too; re-adding one it already has is not an error."""
        ctid = _check_ctid(ctid)
        with self._lock:
            state = self._state
            if ctid not in state.ifindex:
                raise UnknownContainerError(ctid)
            keys = parse_addresses(addresses)
            self._check_free(state, ctid, keys)
            owners = dict(state.owners)
            owners.update(dict.fromkeys(keys, ctid))
            self._state = _State(state.links, state.ifindex, owners)

    def remove_addresses(self, ctid: str, addresses: Iterable[Address]) -> int:
        """Take these addresses from `ctid`; returns how many it had. Absent ones are ignored."""
        ctid = _check_ctid(ctid)
        with self._lock:
            state = self._state
            if ctid not in state.ifindex:
                raise UnknownContainerError(ctid)
            gone = {k for k in parse_addresses(addresses) if state.owners.get(k) == ctid}
            if gone:
                owners = {k: c for k, c in state.owners.items() if k not in gone}
                self._state = _State(state.links, state.ifindex, owners)
            return len(gone)

    def load(self, containers: Mapping[str, tuple[int, Iterable[Address]]]) -> None:
        """Replace the whole table at once; counters of containers that stay are kept."""
        fresh = AddressTable()
        for ctid, (ifindex, addresses) in containers.items():
            fresh.set_container(ctid, ifindex, addresses)
        with self._lock:
            self._state = fresh._state
            self._counters = {c: self._counters.get(c, fresh._counters[c]) for c in fresh._counters}

    @staticmethod
    def _check_free(state: _State, ctid: str, keys: Iterable[bytes]) -> None:
        for key in keys:
            owner = state.owners.get(key, ctid)
            if owner != ctid:
                raise AddressInUseError(format_address(key), owner)

    # -- lookups -----------------------------------------------------------------------------------

    def owner(self, address: Address) -> str | None:
        """The container that owns `address`, or None."""
        return self._state.owners.get(parse_address(address))

    def containers(self) -> dict[str, Container]:
        """Every container with its link and its addresses."""
        state = self._state
        keys: dict[str, list[bytes]] = {ctid: [] for ctid in state.ifindex}
        for key, ctid in state.owners.items():
            keys[ctid].append(key)
        return {
            ctid: Container(
                ctid,
                state.ifindex[ctid],
                tuple(format_address(k) for k in sorted(keys[ctid], key=lambda k: (len(k), k))),
            )
            for ctid in sorted(state.ifindex)
        }

    def counters(self) -> dict[str, dict[Verdict, int]]:
        """Packets classified per container and verdict (containers' own packets only)."""
        return {ctid: dict(zip(Verdict, counts)) for ctid, counts in sorted(self._counters.items())}

    @property
    def unknown_links(self) -> int:
        """How many packets were DROP_UNKNOWN_LINK (they are charged to no container)."""
        return self._unknown_links

    def __len__(self) -> int:
        return len(self._state.owners)

    # -- the per-packet path -----------------------------------------------------------------------

    def classify(self, packet: bytes, indev: int, outdev: int, ours: int = Ours.NONE) -> Verdict:
        """venet's verdict for one IP packet that came in on `indev` and goes out on `outdev` (0: none).

        `ours` says which of the two devices the caller knows to be container links: such a device
        the table does not know makes the packet DROP_UNKNOWN_LINK, counted in `unknown_links`.
        Any other packet is counted once: a DROP_DESTINATION for the container it enters, anything
        else for the container it leaves or, when it leaves none, the one it enters.
        """
        if not isinstance(packet, bytes):
            packet = memoryview(packet).tobytes()
        state = self._state
        leaving = state.links.get(_check_device(indev))
        entering = state.links.get(_check_device(outdev))
        flags = _check_ours(ours)
        if (flags & Ours.IN and leaving is None) or (flags & Ours.OUT and entering is None):
            self._unknown_links += 1
            return DROP_UNKNOWN_LINK
        if leaving is None and entering is None:
            return ACCEPT  # not a container's packet: not our business
        verdict = decide(packet, state.owners, leaving, entering)
        charged = entering if verdict == DROP_DESTINATION or leaving is None else leaving
        counts = self._counters.get(charged)  # type: ignore[arg-type]
        if counts is not None:
            counts[verdict] += 1
        return verdict

    def classify_batch(
        self, data: bytes, offsets: object, indevs: object, outdevs: object, out: object, ours: object = None
    ) -> None:
        """Classify n packets in one call; no Python object is made per packet by the Cython version.

        Packet i is ``data[offsets[i]:offsets[i + 1]]`` (`offsets` holds n + 1 unsigned 32-bit
        integers, non-decreasing, within `data`); `indevs` and `outdevs` hold n unsigned 32-bit
        integers; the verdicts are written as bytes to `out` (n bytes, writable). `ours`, when
        given, holds n bytes of `Ours` flags (0 to 3).
        """
        data_view = _buffer(data, "B", "data")
        offs = _buffer(offsets, "I", "offsets")
        ins = _buffer(indevs, "I", "indevs")
        outs = _buffer(outdevs, "I", "outdevs")
        result = _buffer(out, "B", "out", writable=True)
        flags = None if ours is None else _buffer(ours, "B", "ours")
        n = len(ins)
        if len(offs) != n + 1 or len(outs) != n or len(result) < n or (flags is not None and len(flags) != n):
            raise ValueError(
                f"batch sizes disagree: {len(offs)} offsets, {n} indevs, {len(outs)} outdevs, {len(result)} out"
                + ("" if flags is None else f", {len(flags)} ours")
            )
        if flags is not None:
            for i, flag in enumerate(flags):
                if flag > 3:
                    raise ValueError(f"ours[{i}] = {flag} is not an Ours flag (0 to 3)")
        previous = 0
        for i, offset in enumerate(offs):
            if offset < previous or offset > len(data_view):
                raise ValueError(
                    f"offsets[{i}] = {offset} is out of order or beyond the data ({len(data_view)} bytes)"
                )
            previous = offset
        for i in range(n):
            packet = data_view[offs[i] : offs[i + 1]].tobytes()
            result[i] = self.classify(packet, ins[i], outs[i], 0 if flags is None else flags[i])


_ITEMSIZE = {"B": 1, "I": 4}


def _buffer(value: object, fmt: str, name: str, writable: bool = False) -> memoryview:
    """A one-dimensional contiguous buffer of unsigned bytes ("B") or 32-bit integers ("I")."""
    view = memoryview(value)  # type: ignore[arg-type]
    if view.ndim != 1 or not view.c_contiguous or view.format.lstrip("@=") != fmt or view.itemsize != _ITEMSIZE[fmt]:
        raise ValueError(f"{name}: expected a contiguous buffer of format {fmt!r}, got {view.format!r}")
    if writable and view.readonly:
        raise ValueError(f"{name}: buffer is read-only")
    return view
