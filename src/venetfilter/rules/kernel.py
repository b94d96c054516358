"""The table in the kernel: install it, remove it, read back what is there.

The table itself (sets, chains, rules, elements) is one libnftables transaction; the NFQUEUE rule
of ``judge`` is an xtables target, which nft's language cannot write, so it is added through
netlink (pyroute2) right after: until it is there, ``judge`` drops what it gets. What is there is
compared through netlink dumps too (`fingerprint`): nft's own listing does not show the queue
number of an xtables target.

Every function takes the network namespace to act in (None: the caller's).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETGEN, nft_gen_msg
from pyroute2.nftables.main import NFTables

from ..netns import run_in_netns
from .layout import FAMILY, TABLE, Element, Layout, QueueSpec, RulesError, render_table
from .nft import Nft, NftError

__all__ = ["Fingerprint", "fingerprint", "generation", "install", "installed_queue", "remove", "table_exists"]

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


def install(
    layout: Layout,
    elements: Iterable[Element] = (),
    netns: NetnsArg = None,
    counters: dict[Element, tuple[int, int]] | None = None,
    over_rate: dict[int, int] | None = None,
) -> Fingerprint:
    """Replace our table (if any) with `layout` holding `elements`; returns what was installed.

    `counters` carries element counters over (packets, bytes), `over_rate` the per-link counts of
    packets dropped over the judging rate. Other tables are not touched.
    """
    text = render_table(layout, sorted(elements), counters, over_rate)

    def work() -> Fingerprint:
        with Nft() as nft:
            try:
                nft.run(text)
            except NftError as exc:
                raise RulesError(f"cannot install the nftables table {FAMILY} {TABLE}: {exc}") from None
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


def remove(netns: NetnsArg = None) -> bool:
    """Delete our table; False when there was none."""

    def work() -> bool:
        with Nft() as nft:
            try:
                nft.run(f"delete table {FAMILY} {TABLE}")
            except NftError as exc:
                if "No such file or directory" in str(exc):
                    return False
                raise RulesError(f"cannot remove the nftables table {FAMILY} {TABLE}: {exc}") from None
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


def fingerprint(netns: NetnsArg = None) -> Fingerprint | None:
    """What the kernel has of our table (None: no table), to compare with what `install` returned."""

    def work() -> Fingerprint | None:
        with NFTables(nfgen_family=_NFPROTO_INET) as sock:
            try:
                return _fingerprint(sock)
            except NetlinkError as exc:
                if exc.code == errno.ENOENT:  # removed while we read it
                    return None
                raise RulesError(f"cannot read the nftables table: {exc}") from None

    return _in(netns, work)


def generation(netns: NetnsArg = None) -> int:
    """The ruleset generation of the namespace: it changes with every nftables transaction there
    (anyone's), not with counters or the kernel's own updates of dynamic sets."""

    def work() -> int:
        with NFTables(nfgen_family=0) as sock:
            return int(sock.request_get(nft_gen_msg(), NFT_MSG_GETGEN, NLM_F_REQUEST)[0].get_attr("NFTA_GEN_ID"))

    return _in(netns, work)


def table_exists(netns: NetnsArg = None) -> bool:
    """Whether a table called ``inet venetfilter`` exists."""
    return fingerprint(netns) is not None


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
