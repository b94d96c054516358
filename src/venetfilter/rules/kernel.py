"""The table in the kernel: install it, remove it, read back what is there.

The table itself (sets, chains, rules, elements) is one libnftables transaction, which also removes
a table of ours in the other family. In the queue mode, the NFQUEUE rule of ``judge`` is an
xtables target, which nft's language cannot write, so it is added through netlink (pyroute2) right
after: until it is there, ``judge`` drops what it gets. What is there is compared through netlink
dumps too (`fingerprint`): nft's own listing shows neither the queue number of an xtables target
nor (nft 1.0.6, JSON) the device of a netdev chain.

The default mode's table has chains for the links of the namespace as they are when it is
installed (`our_links`): `update` replaces the chains of the links that changed whenever the
address table or the links change.

Every function takes the network namespace to act in (None: the caller's).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETGEN, nft_gen_msg
from pyroute2.nftables.main import NFTables

from ..config.ctid import LINK_GROUP
from ..netns import run_in_netns
from .elements import read_elements, read_over_rate, sync
from .layout import FAMILIES, FAMILY, TABLE, Element, Layout, QueueSpec, RulesError, render_table
from .links import dump_links
from .netdev import FAMILY as NETDEV
from .netdev import changes, without_counts
from .nft import Nft, NftError

__all__ = [
    "Fingerprint",
    "fingerprint",
    "generation",
    "install",
    "installed_family",
    "installed_layout",
    "installed_queue",
    "nft_writable",
    "our_links",
    "remove",
    "replace",
    "table_exists",
    "update",
]

NetnsArg = str | int | None
_T = TypeVar("_T")
_NFPROTO_INET = 1
Fingerprint = tuple[Any, ...]
"""Everything the kernel says of our table but handles, use counts and counter values."""

# attributes that change without anyone changing the rules
_VOLATILE = {
    "header",
    "NFTA_TABLE_HANDLE",
    "NFTA_TABLE_USE",
    "NFTA_CHAIN_HANDLE",
    "NFTA_CHAIN_USE",
    "NFTA_CHAIN_COUNTERS",
    "NFTA_RULE_HANDLE",
    "NFTA_RULE_POSITION",
    "NFTA_SET_HANDLE",
    "NFTA_COUNTER_BYTES",
    "NFTA_COUNTER_PACKETS",
}


def _in(netns: NetnsArg, func: Callable[[], _T]) -> _T:
    return run_in_netns(netns, func)


def _queue_expression(spec: QueueSpec) -> dict[str, Any]:
    data = [("NFTA_TARGET_NAME", "NFQUEUE"), ("NFTA_TARGET_REV", 3), ("NFTA_TARGET_INFO", spec.target_info())]
    return {"attrs": [("NFTA_EXPR_NAME", "target"), ("NFTA_EXPR_DATA", {"attrs": data})]}


_WRITABLE = re.compile(r'[!#-\[\]-~]+')  # printable ASCII but '"' and '\': what an nft string can hold


def nft_writable(name: str) -> bool:
    """Whether nft's language can name a device called `name` (Linux allows '"' in link names,
    nft has no escape for it); the worker's link watch sets a container link that cannot down."""
    return _WRITABLE.fullmatch(name) is not None


def our_links(prefix: str, elements: Iterable[Element] = ()) -> dict[int, str]:
    """{ifindex: name} of the links of the current namespace that are container links: registered
    in `elements` (under any name), named with `prefix`, or in our interface group; but those nft
    cannot name (the worker's link watch sets them down)."""
    registered = {ifindex for _, ifindex, _ in elements}
    try:
        links = dump_links()
    except OSError as exc:
        raise RulesError(f"cannot list the links: {exc}") from None
    return {link.ifindex: link.name for link in links
            if (link.ifindex in registered or link.name.startswith(prefix) or link.group == LINK_GROUP)
            and nft_writable(link.name)}


def install(
    layout: Layout,
    elements: Iterable[Element] = (),
    netns: NetnsArg = None,
    counters: dict[Element, tuple[int, int]] | None = None,
    over_rate: dict[int, int] | None = None,
) -> Fingerprint:
    """Replace our table (if any, in either family) with `layout` holding `elements`; returns what
    was installed.

    `counters` carries element counters over (packets, bytes), `over_rate` the per-link counts of
    packets dropped over the judging rate. Other tables are not touched.
    """
    elements = sorted(elements)

    def work() -> Fingerprint:
        names = our_links(layout.link_prefix, elements) if layout.mode == "default" else None
        text = render_table(layout, elements, counters, over_rate, names)
        with Nft() as nft:
            try:
                nft.run(text)
            except NftError as exc:
                raise RulesError(f"cannot install the nftables table {layout.family} {TABLE}: {exc}") from None
        if layout.mode == "default":
            found = _netdev_fingerprint()
        else:
            with NFTables(nfgen_family=_NFPROTO_INET) as sock:
                try:
                    sock.rule("insert", table=TABLE, chain="judge", expressions=([_queue_expression(layout.queue)],))
                except NetlinkError as exc:
                    raise RulesError(
                        f"cannot add the NFQUEUE rule: {exc} (is the kernel's nft_compat/xt_NFQUEUE support there?)"
                    ) from None
                found = _fingerprint(sock)
        if found is None:
            raise RulesError("the table vanished while it was installed")
        return found

    return _in(netns, work)


def replace(layout: Layout, elements: Iterable[Element] = (), netns: NetnsArg = None) -> Fingerprint:
    """`install`, with the counters of the table in place (if any) carried over."""
    try:
        counters = read_elements(netns)
    except RulesError:
        counters = {}  # no table yet, or a broken one
    return install(layout, elements, netns, counters, read_over_rate(netns))


def update(
    wanted: Iterable[Element], prefix: str, netns: NetnsArg = None, between: Callable[[], None] | None = None
) -> Fingerprint | None:
    """Bring the table in place (whichever mode installed it) to the elements `wanted`.

    Queue mode: its sets are synced (`sync`: removals, `between()`, additions); returns None.
    Default mode: `between()`, then the chains of the links whose chains differ from what
    `wanted` and the links as they are now ask are replaced, in one transaction, their counters
    carried over; the other links' chains are not touched. Returns the table's fingerprint.
    `RulesError` when there is no table.
    """
    wanted = set(wanted)
    family = installed_family(netns)
    if family is None:
        raise RulesError(f"no table {TABLE} is installed")
    if family == FAMILY:
        sync(wanted, netns, between)
        return None
    if between is not None:
        between()
    return _in(netns, lambda: _update_links(prefix, wanted))


def _update_links(prefix: str, wanted: set[Element]) -> Fingerprint:
    with Nft() as nft:
        try:
            listing = nft.run(f"list table {NETDEV} {TABLE}")
            text = changes(listing, wanted, our_links(prefix, wanted), read_elements())
            if text:
                nft.run(text)
        except NftError as exc:
            raise RulesError(f"cannot update the nftables table {NETDEV} {TABLE}: {exc}") from None
    found = _netdev_fingerprint()
    if found is None:
        raise RulesError("the table vanished while it was updated")
    return found


def remove(netns: NetnsArg = None) -> bool:
    """Delete our table; False when there was none."""

    def work() -> bool:
        found = installed_family(None)
        if found is None:
            return False
        with Nft() as nft:
            try:
                nft.run("\n".join(f"add table {f} {TABLE}\ndelete table {f} {TABLE}" for f in FAMILIES))
            except NftError as exc:
                raise RulesError(f"cannot remove the nftables table {found} {TABLE}: {exc}") from None
        return True

    return _in(netns, work)


def _normal(value: Any) -> Any:
    """A comparable, hashable form of a netlink message or attribute value."""
    if isinstance(value, dict) or hasattr(value, "keys"):
        attrs = value.get("attrs") if "attrs" in value else None
        if attrs is not None:
            return tuple((name, _normal(v)) for name, v in attrs if name not in _VOLATILE)
        return tuple(sorted((k, _normal(v)) for k, v in value.items() if k not in _VOLATILE))
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(str(v) for v in value))
    return value


def _fingerprint(sock: NFTables) -> Fingerprint | None:
    def ours(messages: Iterable[Any], key: str) -> list[Any]:
        return [m for m in messages if m.get_attr(key) == TABLE]

    tables = [t for t in sock.get_tables() if t.get_attr("NFTA_TABLE_NAME") == TABLE]
    if not tables:
        return None
    chains = sorted(_normal(c) for c in ours(sock.get_chains(), "NFTA_CHAIN_TABLE"))
    sets = sorted(_normal(s) for s in ours(sock.get_sets(), "NFTA_SET_TABLE"))
    rules = [_normal(r) for r in ours(sock.get_rules(), "NFTA_RULE_TABLE")]  # in order: order matters
    return (_normal(tables[0]), tuple(chains), tuple(sets), tuple(rules))


def _netdev_fingerprint() -> Fingerprint | None:
    """The default mode's table as nft lists it (every chain with its device, hook, priority and
    policy; every rule; the table's flags), without counters and the elements the kernel itself
    adds to the dynamic sets. nft's listing shows everything our table can hold, and is 50 times
    faster than parsing the netlink dumps of a table with a chain per link."""
    with Nft() as nft:
        try:
            text = nft.run(f"list table {NETDEV} {TABLE}")
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise RulesError(f"cannot read the nftables table: {exc}") from None
    return (NETDEV, without_counts(text))


def _fingerprints() -> dict[str, Fingerprint]:
    found = {}
    netdev = _netdev_fingerprint()
    if netdev is not None:
        found["netdev"] = netdev
    with NFTables(nfgen_family=_NFPROTO_INET) as sock:
        try:
            inet = _fingerprint(sock)
        except NetlinkError as exc:
            if exc.code != errno.ENOENT:  # ENOENT: removed while we read it
                raise RulesError(f"cannot read the nftables table: {exc}") from None
            inet = None
    if inet is not None:
        found[FAMILY] = inet
    return found


def fingerprint(netns: NetnsArg = None) -> Fingerprint | None:
    """What the kernel has of our table (None: no table; both families' tables when there are two),
    to compare with what `install` returned."""

    def work() -> Fingerprint | None:
        found = _fingerprints()
        if len(found) > 1:
            return tuple(found.values())
        return next(iter(found.values()), None)

    return _in(netns, work)


def installed_family(netns: NetnsArg = None) -> str | None:
    """The family of our table (netdev: default mode, inet: queue mode); None when there is none."""

    def work() -> str | None:
        with Nft() as nft:  # nft's text, not its JSON: nft 1.0.6 garbles a dormant netdev table's JSON
            try:
                tables = set(nft.run("list tables").splitlines())
            except NftError as exc:
                raise RulesError(f"cannot list the nftables tables: {exc}") from None
        return next((family for family in FAMILIES if f"table {family} {TABLE}" in tables), None)

    return _in(netns, work)


def installed_layout(prefix: str, netns: NetnsArg = None) -> Layout | None:
    """The settings of the table in place, read back from the kernel (None: no table)."""
    family = installed_family(netns)
    if family is None:
        return None
    if family == FAMILY:
        return Layout(prefix, "queue", installed_queue(netns) or QueueSpec())
    group, rate = _refused_settings(netns)
    return Layout(prefix, "default", QueueSpec(group), rate)


def _refused_settings(netns: NetnsArg) -> tuple[int, int]:
    """(log group, judging rate) of the default mode's ``refused_in`` chain."""
    def work() -> tuple[int, int]:
        with Nft() as nft:
            try:
                items = nft.list_json(f"chain {NETDEV} {TABLE} refused_in")
            except NftError as exc:
                raise RulesError(f"cannot read the chain refused_in: {exc}") from None
        group, rate = 0, 0
        for item in items:
            for expr in (item.get("rule") or {}).get("expr", ()):
                if "log" in expr:
                    group = int((expr["log"] or {}).get("group", 0))
                if "set" in expr:
                    for statement in expr["set"].get("stmt", ()):
                        if "limit" in statement:
                            rate = int(statement["limit"]["rate"])
        return group, rate

    return _in(netns, work)


def generation(netns: NetnsArg = None) -> int:
    """The ruleset generation of the namespace: it changes with every nftables transaction there
    (anyone's), not with counters or the kernel's own updates of dynamic sets."""

    def work() -> int:
        with NFTables(nfgen_family=0) as sock:
            return int(sock.request_get(nft_gen_msg(), NFT_MSG_GETGEN, NLM_F_REQUEST)[0].get_attr("NFTA_GEN_ID"))

    return _in(netns, work)


def table_exists(netns: NetnsArg = None) -> bool:
    """Whether a table of ours (``netdev venetfilter`` or ``inet venetfilter``) exists."""
    return installed_family(netns) is not None


def installed_queue(netns: NetnsArg = None) -> QueueSpec | None:
    """The queue the ``judge`` chain sends to, read from the kernel (None: no such rule)."""

    def work() -> QueueSpec | None:
        with NFTables(nfgen_family=_NFPROTO_INET) as sock:
            for rule in sock.get_rules():
                if rule.get_attr("NFTA_RULE_TABLE") != TABLE or rule.get_attr("NFTA_RULE_CHAIN") != "judge":
                    continue
                for expression in rule.get_attr("NFTA_RULE_EXPRESSIONS") or ():
                    if expression.get_attr("NFTA_EXPR_NAME") == "target":
                        info = expression.get_attr("NFTA_EXPR_DATA").get_attr("NFTA_TARGET_INFO")
                        return _queue_from_info(bytes.fromhex(info.replace(":", "")) if isinstance(info, str) else info)
        return None

    return _in(netns, work)


def _queue_from_info(info: bytes) -> QueueSpec:
    first, total, flags = (int.from_bytes(info[i : i + 2], "little") for i in (0, 2, 4))
    balance = (first, first + total - 1) if total > 1 else None
    return QueueSpec(first, balance, bool(flags & 0x02) and balance is not None, bool(flags & 0x01))
