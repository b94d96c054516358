"""What venetfilter puts in the kernel: one nftables table, described by a `Layout`.

The default mode's table is ``table netdev venetfilter``, one chain per link and direction: see
`venetfilter.rules.netdev`. The queue mode's, rendered here, is ``table inet venetfilter``, with two
base chains at priority -450, before anything else the kernel does with a packet at those hooks
(conntrack's defragmentation runs at -400, iptables' raw table at -300):

- ``leaving`` (prerouting) sees every packet that comes in on a container link, fragment by
  fragment, before routing, reassembly, conntrack or any ICMP error;
- ``entering`` (postrouting) sees every packet that goes out on one, after routing.

A container link is one in our interface group (`LINK_GROUP`: one integer compare per packet for
container traffic) or one registered in the set ``links`` (by ifindex: a registered link moved out
of the group by someone else is still judged; other traffic pays that one lookup).
Packets of other links are accepted at once (``accept`` ends only this base chain: every other
table, iptables' included, still sees them). Every packet of a container link jumps to ``judge``,
whose first rule sends it to the worker's NFQUEUE (an xtables NFQUEUE target: this kernel's
nftables has no ``queue`` statement of its own) and whose last rule drops it: a packet the queue
rule does not take (rule missing, being restored) is dropped, never passed.

The sets ``own4``/``own6`` hold the address table compiled to (interface index, address) pairs;
in this mode they decide nothing (the worker does), and their counters stay at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config.ctid import LINK_GROUP, validate_link_prefix
from ..errors import InvalidContainerError, RulesError

__all__ = [
    "CHAINS",
    "DEFAULT_JUDGE_RATE",
    "OVER_RATE_SET",
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
FAMILY = "inet"  # the queue mode's table; the default mode's is netdev (`family_of`)
PRIORITY = -450  # before conntrack's defragmentation (-400) and iptables' raw table (-300)
CHAINS = ("leaving", "entering", "judge")
RATE_SET = "judge_rate"  # per link: how fast its refused packets are being sent to the worker
OVER_RATE_SET = "over_rate"  # per link: packets dropped in the kernel, unjudged, over that rate
MAX_LINKS = 65536
LINKS = 0  # the "family" of a link element: (LINKS, ifindex, "")
SETS = {LINKS: "links", 4: "own4", 6: "own6"}  # links: the registered container links, by ifindex
DEFAULT_JUDGE_RATE = 1000
Mode = Literal["default", "queue"]
MODES: tuple[Mode, ...] = ("default", "queue")
FAMILIES = ("netdev", "inet")  # every family a table of ours may be in

NFQ_FLAG_BYPASS = 0x01
NFQ_FLAG_CPU_FANOUT = 0x02




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
    judge_rate: int = DEFAULT_JUDGE_RATE
    """Default mode: at most this many refused packets a second per link are copied to the worker
    (all are dropped); the rest are counted per link, unjudged (0: no limit). A flood then costs the
    worker, and the CPUs it shares with honest containers, next to nothing."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RulesError(f"invalid mode {self.mode!r}: choose one of {', '.join(MODES)}")
        try:
            validate_link_prefix(self.link_prefix)
        except InvalidContainerError as exc:
            raise RulesError(str(exc)) from None
        if type(self.judge_rate) is not int or not 0 <= self.judge_rate <= 10_000_000:
            raise RulesError(f"invalid judge rate {self.judge_rate!r}: 0 (no limit) to 10000000 packets a second")

    @property
    def family(self) -> str:
        """The nftables family of the table: netdev (default mode), inet (queue mode)."""
        return "netdev" if self.mode == "default" else FAMILY

    def describe(self) -> str:
        links = f"links {self.link_prefix}* (group {LINK_GROUP})"
        if self.mode == "queue":
            return f"queue mode, table inet, {links}, {self.queue.describe()}"
        rate = f", at most {self.judge_rate}/s per link" if self.judge_rate else ""
        return f"default mode, table netdev, {links}, refused packets logged to group {self.queue.queue}{rate}"


Element = tuple[int, int, str]
"""A set element: (address family 4 or 6, interface index, address text), or (LINKS, interface
index, "") for the set of registered links."""


def render_elements(elements: list[Element], *, with_counters: bool = True) -> dict[int, str]:
    """The element lists of the queue mode's ``links``/``own4``/``own6`` in nft syntax (`with_counters`
    False for deletions, where a counter is not part of the key; the counters of this mode stay 0:
    its rules look nothing up in ``own4``/``own6``)."""
    texts: dict[int, list[str]] = {4: [], 6: []}
    for family, ifindex, address in elements:
        if family == LINKS:
            texts.setdefault(LINKS, []).append(str(ifindex))
            continue
        texts[family].append(f"{ifindex} . {address}" + (" counter packets 0 bytes 0" if with_counters else ""))
    return {family: ", ".join(items) for family, items in texts.items() if items}


def render_table(
    layout: Layout,
    elements: list[Element],
    counters: dict[Element, tuple[int, int]] | None = None,
    over_rate: dict[int, int] | None = None,
    names: dict[int, str] | None = None,
) -> str:
    """The whole table in nft syntax: one transaction replaces whatever table of ours there was, in
    either family. `counters` and `over_rate` carry the counters of a table being replaced over;
    `names` ({ifindex: name}) are the links the default mode's table gives chains to."""
    from . import netdev  # noqa: PLC0415 (netdev imports this module)

    lines = []
    for family in FAMILIES:
        lines += [f"add table {family} {TABLE}", f"delete table {family} {TABLE}"]
    if layout.mode == "default":
        return "\n".join(lines) + "\n" + netdev.render(layout, elements, names or {}, counters, over_rate)
    return "\n".join(lines) + "\n" + _render_inet(elements)


def _render_inet(elements: list[Element]) -> str:
    """The queue mode's table."""
    lists = render_elements(elements)

    def set_block(family: int) -> str:
        content = f" elements = {{ {lists[family]} }};" if family in lists else ""
        if family == LINKS:
            return f"    set {SETS[LINKS]} {{ type iface_index;{content} }}"
        return f"    set {SETS[family]} {{ type iface_index . ipv{family}_addr; counter;{content} }}"

    # not a container link: neither in our group nor a registered link (whatever its group now)
    leaving = [f"iifgroup != {LINK_GROUP} iif != @{SETS[LINKS]} accept", "jump judge"]
    entering = [f"oifgroup != {LINK_GROUP} oif != @{SETS[LINKS]} accept", "jump judge"]

    def chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
        head = [f"    chain {name} {{"]
        if hook:
            head.append(f"        type filter hook {hook} priority {PRIORITY}; policy accept;")
        return head + [f"        {rule}" for rule in rules] + ["    }"]

    lines = [
        f"table {FAMILY} {TABLE} {{",
        set_block(LINKS),
        set_block(4),
        set_block(6),
        *chain("leaving", "prerouting", leaving),
        *chain("entering", "postrouting", entering),
        *chain("judge", None, ["counter drop"]),
        "}",
    ]
    return "\n".join(lines) + "\n"
