"""The address table compiled to (link, address) pairs, as the kernel holds it.

In the queue mode they are the elements of the sets ``own4``/``own6`` (and ``links``); in the
default mode, the accept rules of the per-link chains (`venetfilter.rules.netdev`). `read_elements`
reads either, with their counters: the accepts per container.

`sync` brings the queue mode's sets to what the table says in the order that never drops an
honest packet nor passes a forbidden one: elements to remove first, then (`between`) the worker
swaps its table, then the elements to add.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..netns import run_in_netns
from .layout import FAMILY, LINKS, OVER_RATE_SET, SETS, TABLE, Element, RulesError, render_elements
from .netdev import FAMILY as NETDEV
from .netdev import parse_accepts
from .nft import Nft, NftError

__all__ = ["ElementChanges", "desired_elements", "read_elements", "read_over_rate", "sync"]

NetnsArg = str | int | None
Counters = dict[Element, tuple[int, int]]


def desired_elements(entries: Mapping[str, tuple[int, Iterable[str]]]) -> set[Element]:
    """The elements of a table given as ``{ctid: (ifindex, addresses)}`` (`AddressTable.load`'s input)."""
    found: set[Element] = set()
    for ifindex, addresses in entries.values():
        found.add((LINKS, ifindex, ""))
        for text in addresses:
            address = ipaddress.ip_address(text)
            found.add((address.version, ifindex, address.compressed))
    return found


def _ifindex(token: str | int) -> int:
    """An interface as nft lists it: its name when it exists (resolved in this namespace), else its index."""
    if isinstance(token, int) or str(token).isdigit():
        return int(token)
    try:
        return socket.if_nametoindex(token)
    except OSError:
        raise RulesError(f"the set lists interface {token!r}, which does not exist") from None


def _read_netdev(nft: Nft) -> Counters | None:
    """The default mode's elements (None: no netdev table)."""
    try:
        items = nft.list_json(f"table {NETDEV} {TABLE}")
    except NftError:
        return None
    found: Counters = {}
    for item in items:
        direction, _, index = str((item.get("chain") or {}).get("name", "")).partition("_")
        if direction == "in" and index.isdigit():
            found[(LINKS, int(index), "")] = (0, 0)
    found.update(parse_accepts(items))
    return found


def _read(nft: Nft) -> Counters:
    netdev = _read_netdev(nft)
    if netdev is not None:
        return netdev
    found: Counters = {}
    for family, name in SETS.items():
        try:
            items = nft.list_json(f"set {FAMILY} {TABLE} {name}")
        except NftError as exc:
            raise RulesError(f"cannot read set {name}: {exc}") from None
        for item in items:
            for entry in item.get("set", {}).get("elem", ()):
                elem = entry.get("elem", entry) if isinstance(entry, dict) else entry
                value = elem.get("val", elem) if isinstance(elem, dict) else elem
                if family == LINKS:
                    found[(LINKS, _ifindex(value), "")] = (0, 0)
                    continue
                link, address = value["concat"]
                counter = elem.get("counter") or {} if isinstance(elem, dict) else {}
                key = (family, _ifindex(link), ipaddress.ip_address(address).compressed)
                found[key] = (int(counter.get("packets", 0)), int(counter.get("bytes", 0)))
    return found


def read_elements(netns: NetnsArg = None) -> Counters:
    """Every element of our sets with its counter (packets, bytes); `RulesError` when there is no table."""

    def work() -> Counters:
        with Nft() as nft:
            return _read(nft)

    return run_in_netns(netns, work)


def read_over_rate(netns: NetnsArg = None) -> dict[int, int]:
    """Packets each link sent over the judging rate (dropped in the kernel, unjudged), by ifindex."""

    def work() -> dict[int, int]:
        found: dict[int, int] = {}
        with Nft() as nft:
            try:
                items = nft.list_json(f"set {NETDEV} {TABLE} {OVER_RATE_SET}")
            except NftError:
                return found  # no table (the queue mode has no limit)
        for item in items:
            for entry in item.get("set", {}).get("elem", ()):
                elem = entry.get("elem", entry) if isinstance(entry, dict) else entry
                link = elem.get("val", elem) if isinstance(elem, dict) else elem
                counter = elem.get("counter") or {} if isinstance(elem, dict) else {}
                found[_ifindex(link)] = int(counter.get("packets", 0))
        return found

    return run_in_netns(netns, work)


@dataclass(frozen=True)
class ElementChanges:
    """What `sync` changed."""

    removed: frozenset[Element]
    added: frozenset[Element]

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


def _apply(nft: Nft, verb: str, elements: Iterable[Element]) -> None:
    for family, text in render_elements(sorted(elements), with_counters=verb == "add").items():
        try:
            nft.run(f"{verb} element {FAMILY} {TABLE} {SETS[family]} {{ {text} }}")
        except NftError as exc:
            raise RulesError(f"cannot {verb} elements of set {SETS[family]}: {exc}") from None


def sync(
    wanted: set[Element], netns: NetnsArg = None, between: Callable[[], None] | None = None
) -> ElementChanges:
    """Make the queue mode's sets hold exactly `wanted`: removals, then `between()`, then additions.

    Each of the two steps is one transaction per family. Raises `RulesError` when the table is
    missing (the guard reinstalls it whole).
    """

    def work() -> ElementChanges:
        with Nft() as nft:
            current = set(_read(nft))
            removed, added = current - wanted, wanted - current
            if removed:
                _apply(nft, "delete", removed)
            if between is not None:
                between()
            if added:
                _apply(nft, "add", added)
        return ElementChanges(frozenset(removed), frozenset(added))

    return run_in_netns(netns, work)
