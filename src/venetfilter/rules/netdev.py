"""The default mode's table: ``table netdev venetfilter``, one ingress and one egress chain per link.

Each container link gets two base chains of its own, bound to the device by name at priority -500:
``in_IFINDEX`` (hook ingress: what leaves the container, fragment by fragment, before the node's IP
stack sees anything -- no routing, no reassembly, no conntrack, no ICMP error; non-IP frames too)
and ``out_IFINDEX`` (hook egress: what enters it, after the node's routing and firewall). Their
rules compare addresses, one rule per address with a counter::

    ip daddr != 224.0.0.0/4 ip saddr 192.0.2.1 counter accept        # in_IFINDEX
    ip daddr 192.0.2.1 counter accept                                 # out_IFINDEX
    goto refused_in / refused_out

A link with more than MAX_COMPARES addresses of a family gets a set of them instead
(``own4_IFINDEX``, elements with counters), so that a packet costs one lookup, not one compare
per address.

A packet on a link whose chain accepts it goes on through the node exactly as if we were not there
(``accept`` ends only this chain). Everything else ends in ``refused_in``/``refused_out``: at most
`Layout.judge_rate` packets a second per link are copied to the worker (``log group``, NFLOG; there
is no NFQUEUE in this family), which gives the reason and counts it; the rest are counted per link
in ``over_rate``; all are dropped. No packet waits for user space, and a dead worker changes nothing.

Chains are per link because that is what measured cheapest (bench/README.md, "Layout
experiments"): a per-link hook costs only the links it is on, and a few compares beat a
concatenated set lookup. Links named with our prefix or in our interface group that the table does
not know get the same two chains with no accepts: everything on them is refused (DROP_UNKNOWN_LINK).

Base chains have policy accept and end in an explicit ``goto``: replacing a link's chains (`changes`)
or the whole table swaps old and new chains in one transaction without a moment in which either
drops an honest packet (a chain being added has no active rules until the commit) or passes a
forbidden one (the old chain's rules stay active until then, the new chain's from then on).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .layout import LINKS, MAX_LINKS, OVER_RATE_SET, RATE_SET, TABLE, Element, Layout

__all__ = ["FAMILY", "PRIORITY", "changes", "link_chains", "parse_accepts", "render", "without_counts"]

FAMILY = "netdev"
PRIORITY = -500  # before any other netdev chain someone may add at the usual priorities
MAX_COMPARES = 4  # addresses of one family a link's chains compare one by one; more go in a set
_MULTICAST = {4: "ip daddr != 224.0.0.0/4", 6: "ip6 daddr != ff00::/8"}
_PROTO = {4: "ip", 6: "ip6"}
Counters = Mapping[Element, tuple[int, int]]


def _refused(layout: Layout, direction: str, device: str) -> list[str]:
    rules = []
    if layout.judge_rate:
        limit = f"limit rate over {layout.judge_rate}/second burst {layout.judge_rate} packets"
        rules.append(f"update @{RATE_SET} {{ {device} {limit} }} update @{OVER_RATE_SET} {{ {device} }} drop")
    rules.append(f"log group {layout.queue.queue} drop")
    return [f"    chain refused_{direction} {{", *(f"        {r}" for r in rules), "    }"]


def _link_chains(ifindex: int, name: str, owned: list[tuple[int, str]], counters: Counters) -> list[str]:
    def counter(family: int, address: str, keep: bool) -> str:
        packets, octets = counters.get((family, ifindex, address), (0, 0)) if keep else (0, 0)
        return f"counter packets {packets} bytes {octets}"

    lines: list[str] = []
    leaving: list[str] = []
    entering: list[str] = []
    for family in (4, 6):
        addresses = [a for f, a in owned if f == family]
        if len(addresses) > MAX_COMPARES:  # one set lookup instead of a compare per address
            set_name = f"own{family}_{ifindex}"
            items = ", ".join(f"{a} {counter(family, a, True)}" for a in addresses)
            lines += [f"    set {set_name} {{", f"        type ipv{family}_addr", "        counter",
                      f"        elements = {{ {items} }}", "    }"]
            leaving.append(f"{_MULTICAST[family]} {_PROTO[family]} saddr @{set_name} accept")
            entering.append(f"{_PROTO[family]} daddr @{set_name} accept")
            continue
        leaving += [f"{_MULTICAST[family]} {_PROTO[family]} saddr {a} {counter(family, a, True)} accept"
                    for a in addresses]
        entering += [f"{_PROTO[family]} daddr {a} {counter(family, a, False)} accept" for a in addresses]
    for direction, hook, rules in (("in", "ingress", leaving), ("out", "egress", entering)):
        lines += [
            f"    chain {direction}_{ifindex} {{",
            f'        type filter hook {hook} device "{name}" priority {PRIORITY}; policy accept;',
            *(f"        {rule}" for rule in rules),
            f"        goto refused_{direction}",
            "    }",
        ]
    return lines


def link_chains(
    elements: Iterable[Element], names: Mapping[int, str], counters: Counters | None = None
) -> dict[int, list[str]]:
    """{ifindex: the lines of its two chains (and sets)} for the links in `names` ({ifindex: name}, as they
    are now). A link of `elements` missing from `names` is gone and gets no chains; a link of
    `names` with no element is one of ours the table does not know: its chains refuse everything.
    `counters` (accepts per element: they go on its ingress rule, or its set element) are carried over."""
    owned: dict[int, list[tuple[int, str]]] = {ifindex: [] for ifindex in names}
    for family, ifindex, address in sorted(elements):
        if family != LINKS and ifindex in owned:
            owned[ifindex].append((family, address))
    return {i: _link_chains(i, names[i], owned[i], counters or {}) for i in sorted(owned)}


def render(
    layout: Layout,
    elements: Iterable[Element],
    names: Mapping[int, str],
    counters: Counters | None = None,
    over_rate: Mapping[int, int] | None = None,
) -> str:
    """The table in nft syntax, with chains for the links in `names` (see `link_chains`);
    `counters` and `over_rate` are carried over."""
    over = ", ".join(f"{i} counter packets {n} bytes 0" for i, n in sorted((over_rate or {}).items()))
    lines = [
        f"table {FAMILY} {TABLE} {{",
        f"    set {RATE_SET} {{ type iface_index; flags dynamic; size {MAX_LINKS}; }}",
        f"    set {OVER_RATE_SET} {{ type iface_index; flags dynamic; size {MAX_LINKS}; counter;"
        + (f" elements = {{ {over} }};" if over else "") + " }",
        *_refused(layout, "in", "iif"),
        *_refused(layout, "out", "oif"),
    ]
    for chains in link_chains(elements, names, counters).values():
        lines += chains
    return "\n".join([*lines, "}"]) + "\n"


_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
_DYNAMIC_ELEMENTS = re.compile(r"(set (?:judge_rate|over_rate) \{[^}]*?)\n\s*elements = \{[^}]*\}")


def without_counts(listing: str) -> str:
    """nft's listing of our table without what the kernel changes by itself: counter values and
    the elements of the dynamic sets ``judge_rate``/``over_rate``."""
    return _DYNAMIC_ELEMENTS.sub(r"\1", _COUNTER.sub("counter", listing))


_OWN_SET = re.compile(r"own[46]_(\d+)")
_BLOCK = re.compile(r"(\s*)(chain (?:in|out)|set own[46])_(\d+) \{")


def _per_link(text: str) -> dict[int, tuple[str, ...]]:
    """{ifindex: the normalised lines of its chains and sets} of a table in nft syntax (ours or
    nft's listing): whitespace, counter values and the order of set elements aside, the two are
    written alike."""
    found: dict[int, list[str]] = {}
    current: list[str] | None = None
    closing, body, in_set = "", "", False
    for line in text.splitlines():
        if current is None:
            match = _BLOCK.fullmatch(line)
            if match:
                current = found.setdefault(int(match[3]), [])
                current.append(line.strip())
                closing, body, in_set = match[1] + "}", "", match[2].startswith("set")
        elif line.rstrip() == closing:
            if in_set and "elements = {" in body:
                items = body.split("elements = {", 1)[1].rsplit("}", 1)[0].split(",")
                current.append("elements " + " ".join(sorted(item.split()[0] for item in items if item.strip())))
            current = None
        elif in_set:
            body += " " + line.strip()
        elif line.strip():
            current.append(_COUNTER.sub("counter", " ".join(line.split())))
    return {ifindex: tuple(lines) for ifindex, lines in found.items()}


def changes(
    listing: str, elements: Iterable[Element], names: Mapping[int, str], counters: Counters | None = None
) -> str:
    """The transaction that brings the per-link chains and sets of the table `listing` shows to
    what `elements` and `names` ask ("" when they are already there). Only the links that differ
    are touched: the counters of the others keep counting, and only their hooks are registered again."""
    wanted = link_chains(elements, names, counters)
    have = _per_link(listing)
    want = _per_link("\n".join(line for lines in wanted.values() for line in lines))
    commands = []
    for ifindex in sorted(i for i in have if have[i] != want.get(i)):
        heads = [line[:-2] for line in have[ifindex] if line.startswith(("chain ", "set ")) and line.endswith(" {")]
        commands += [f"delete {head.split()[0]} {FAMILY} {TABLE} {head.split()[1]}"
                     for head in sorted(heads, key=lambda h: h.startswith("set "))]  # chains first: they use the sets
    added = [line for i, lines in wanted.items() if have.get(i) != want[i] for line in lines]
    if added:
        commands += [f"table {FAMILY} {TABLE} {{", *added, "}"]
    return "\n".join(commands) + "\n" if commands else ""


def parse_accepts(items: Iterable[dict[str, Any]]) -> dict[Element, tuple[int, int]]:
    """The accepts per element, summed over both directions, from ``nft -j list table netdev venetfilter``."""
    found: dict[Element, tuple[int, int]] = {}

    def add(address: str, ifindex: int, counter: dict[str, Any]) -> None:
        parsed = ipaddress.ip_address(address)
        key = (parsed.version, ifindex, parsed.compressed)
        packets, octets = found.get(key, (0, 0))
        found[key] = (packets + int(counter.get("packets", 0)), octets + int(counter.get("bytes", 0)))

    for item in items:
        named = _OWN_SET.fullmatch(str((item.get("set") or {}).get("name", "")))
        if named:  # a link with more addresses than compares: its set's elements count both directions
            for entry in item["set"].get("elem", ()):
                elem = entry.get("elem", {}) if isinstance(entry, dict) else {}
                if isinstance(elem.get("val"), str):
                    add(elem["val"], int(named[1]), elem.get("counter") or {})
            continue
        rule = item.get("rule")
        if not rule:
            continue
        direction, _, index = str(rule.get("chain", "")).partition("_")
        if direction not in ("in", "out") or not index.isdigit():
            continue
        field = "saddr" if direction == "in" else "daddr"
        address = counter = None
        for expr in rule.get("expr", ()):
            match = expr.get("match")
            if match and match.get("op") == "==" and isinstance(match.get("right"), str) \
                    and not match["right"].startswith("@"):
                payload = (match.get("left") or {}).get("payload") or {}
                if payload.get("field") == field and payload.get("protocol") in ("ip", "ip6"):
                    address = match["right"]
            if "counter" in expr:
                counter = expr["counter"] or {}
        if address is not None and counter is not None:
            add(address, int(index), counter)
    return found
