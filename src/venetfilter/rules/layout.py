"""What venetfilter puts in the kernel: one nftables table, described by a `Layout`.

``table inet venetfilter`` has two base chains, both at priority -450, before anything else the
kernel does with a packet (conntrack's defragmentation runs at -400, iptables' raw table at -300):

- ``leaving`` (prerouting) sees every packet that comes in on a container link, fragment by
  fragment, before routing, reassembly, conntrack or any ICMP error;
- ``entering`` (postrouting) sees every packet that goes out on one, after routing.

Packets of other links are accepted at once (``accept`` ends only this base chain: every other
table, iptables' included, still sees them). In the default mode, a packet whose (link, source)
-- leaving -- or (link, destination) -- entering -- is in the sets ``own4``/``own6`` and is not
multicast is accepted in the kernel: one hash lookup. Everything else jumps to ``judge``, whose
first rule sends it to the worker's NFQUEUE (an xtables NFQUEUE target: this kernel's nftables
has no ``queue`` statement of its own) and whose last rule drops it: a packet the queue rule does
not take (rule missing, being restored) is dropped, never passed. In the queue mode every packet
of a container link goes to the worker.

The sets hold the address table compiled to (interface index, address) pairs, each with a
counter: the accepts per container.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config.ctid import validate_link_prefix
from ..errors import InvalidContainerError, VenetfilterError

__all__ = [
    "CHAINS",
    "SETS",
    "Element",
    "render_elements",
    "FAMILY",
    "MODES",
    "PRIORITY",
    "TABLE",
    "Layout",
    "Mode",
    "QueueSpec",
    "RulesError",
    "render_table",
]

TABLE = "venetfilter"
FAMILY = "inet"
PRIORITY = -450  # before conntrack's defragmentation (-400) and iptables' raw table (-300)
CHAINS = ("leaving", "entering", "judge")
SETS = {4: "own4", 6: "own6"}
Mode = Literal["default", "queue"]
MODES: tuple[Mode, ...] = ("default", "queue")

NFQ_FLAG_BYPASS = 0x01
NFQ_FLAG_CPU_FANOUT = 0x02


class RulesError(VenetfilterError):
    """The kernel layout could not be read, installed or restored; the message says why."""


@dataclass(frozen=True)
class QueueSpec:
    """Where the judged packets go: one queue, or a range balanced by flow (or by CPU with cpu_fanout)."""

    queue: int = 0
    balance: tuple[int, int] | None = None
    cpu_fanout: bool = False
    fail_open: bool = False

    def __post_init__(self) -> None:
        numbers = self.balance or (self.queue, self.queue)
        if not all(type(n) is int and 0 <= n <= 65535 for n in numbers) or numbers[0] > numbers[1]:
            raise RulesError(f"invalid queue {numbers[0]}:{numbers[1]}: queues are 0..65535, first <= last")
        if self.cpu_fanout and not self.balance:
            raise RulesError("cpu fanout needs a queue range (--queue-balance)")

    @property
    def queues(self) -> range:
        first, last = self.balance or (self.queue, self.queue)
        return range(first, last + 1)

    def target_info(self) -> bytes:
        """The xt_NFQ_info_v3 of the NFQUEUE target (queue number, queues, flags; host byte order)."""
        flags = (NFQ_FLAG_BYPASS if self.fail_open else 0) | (NFQ_FLAG_CPU_FANOUT if self.cpu_fanout else 0)
        return b"".join(n.to_bytes(2, "little") for n in (self.queues[0], len(self.queues), flags, 0))

    def describe(self) -> str:
        where = f"queues {self.queues[0]}-{self.queues[-1]}" if self.balance else f"queue {self.queue}"
        return where + (" (cpu fanout)" if self.cpu_fanout else "") + (", fail-open" if self.fail_open else "")


@dataclass(frozen=True)
class Layout:
    """Everything that decides the table's rules (not its set elements)."""

    link_prefix: str
    mode: Mode = "default"
    queue: QueueSpec = field(default_factory=QueueSpec)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RulesError(f"invalid mode {self.mode!r}: choose one of {', '.join(MODES)}")
        try:
            validate_link_prefix(self.link_prefix)
        except InvalidContainerError as exc:
            raise RulesError(str(exc)) from None

    def describe(self) -> str:
        return f"{self.mode} mode, links {self.link_prefix}*, {self.queue.describe()}"


Element = tuple[int, int, str]
"""A set element: (address family 4 or 6, interface index, address text)."""


def render_elements(
    elements: list[Element], counters: dict[Element, tuple[int, int]] | None = None, *, with_counters: bool = True
) -> dict[int, str]:
    """The element lists of ``own4``/``own6`` in nft syntax (`counters`: packets and bytes to keep;
    `with_counters` False for deletions, where a counter is not part of the key)."""
    texts: dict[int, list[str]] = {4: [], 6: []}
    for element in elements:
        family, ifindex, address = element
        text = f"{ifindex} . {address}"
        if with_counters:
            packets, octets = (counters or {}).get(element, (0, 0))
            text += f" counter packets {packets} bytes {octets}"
        texts[family].append(text)
    return {family: ", ".join(items) for family, items in texts.items() if items}


def render_table(layout: Layout, elements: list[Element], counters: dict[Element, tuple[int, int]] | None = None) -> str:
    """The whole table in nft syntax: one transaction replaces whatever table of ours there was."""
    prefix = layout.link_prefix + "*"
    allow = layout.mode == "default"
    lists = render_elements(elements, counters)

    def set_block(family: int) -> str:
        content = f" elements = {{ {lists[family]} }};" if family in lists else ""
        return f"    set {SETS[family]} {{ type iface_index . ipv{family}_addr; counter;{content} }}"

    leaving = [f'iifname != "{prefix}" accept']
    entering = [f'oifname != "{prefix}" accept']
    if allow:
        leaving += [
            f"ip daddr != 224.0.0.0/4 iif . ip saddr @{SETS[4]} accept",
            f"ip6 daddr != ff00::/8 iif . ip6 saddr @{SETS[6]} accept",
        ]
        entering += [
            f"ip daddr != 224.0.0.0/4 oif . ip daddr @{SETS[4]} accept",
            f"ip6 daddr != ff00::/8 oif . ip6 daddr @{SETS[6]} accept",
        ]

    def chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
        head = [f"    chain {name} {{"]
        if hook:
            head.append(f"        type filter hook {hook} priority {PRIORITY}; policy accept;")
        return head + [f"        {rule}" for rule in rules] + ["    }"]

    lines = [
        f"add table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        set_block(4),
        set_block(6),
        *chain("leaving", "prerouting", [*leaving, "jump judge"]),
        *chain("entering", "postrouting", [*entering, "jump judge"]),
        *chain("judge", None, ["counter drop"]),
        "}",
    ]
    return "\n".join(lines) + "\n"
