"""``venetctl set``, ``show`` and ``list``: a thin layer over `venetfilter.lifecycle.Node`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ..config import ConfigAddress, parse_address_tokens, split_tokens, validate_ctid
from ..errors import InvalidAddressError
from ..lifecycle import ContainerInfo
from ._common import EXIT_INVALID, EXIT_OK, common_options, error, make_node, warn

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``set``, ``show`` and ``list`` to the ``venetctl`` subcommands."""
    parents = [common_options()]
    p = subparsers.add_parser(
        "set", parents=parents, help="add or delete a container's addresses (vzctl set)",
        description="Change a container's addresses as vzctl set does: deletes first, then adds.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument(
        "--ipadd", action="append", default=[], metavar="IP[,IP...]",
        help="add addresses (IPv4 or IPv6, optional /PREFIX); may be repeated",
    )
    p.add_argument(
        "--ipdel", action="append", default=[], metavar="IP[,IP...]|all",
        help="delete addresses, or all of them; may be repeated",
    )
    p.add_argument("--save", action="store_true", help="also write the container's config file")
    p.set_defaults(func=run_set)

    p = subparsers.add_parser("show", parents=parents, help="a container's saved and runtime addresses")
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)

    p = subparsers.add_parser("list", parents=parents, help="every container's saved and runtime addresses")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)


def _parse_option(option: str, values: Sequence[str], keywords: frozenset[str] = frozenset()) -> list[ConfigAddress]:
    """The addresses of every value of `option`; `InvalidAddressError` is reported as vzctl does."""
    addresses: list[ConfigAddress] = []
    for value in values:
        if not split_tokens(value):
            raise _BadParameter(option, value, "no address given")
    for token in split_tokens(values):
        if token in keywords:
            continue
        try:
            addresses.extend(parse_address_tokens(token))
        except InvalidAddressError as exc:
            raise _BadParameter(option, token, exc.reason) from None
    return addresses


class _BadParameter(InvalidAddressError):
    def __init__(self, option: str, value: str, reason: str) -> None:
        super().__init__(value, reason)
        self.args = (f"Bad parameter for {option}: {value} ({reason})",)


def _join(addresses: Sequence[object]) -> str:
    return " ".join(str(a) for a in addresses)


def run_set(args: argparse.Namespace) -> int:
    """``venetctl set``."""
    if not args.ipadd and not args.ipdel:
        error("set: nothing to do: give --ipadd and/or --ipdel")
        return EXIT_INVALID
    validate_ctid(args.ctid)
    delete_all = "all" in split_tokens(args.ipdel)
    to_delete = _parse_option("--ipdel", args.ipdel, frozenset({"all"}))
    to_add = _parse_option("--ipadd", args.ipadd)
    result = make_node(args).set(args.ctid, to_add, to_delete, delete_all=delete_all, save=args.save)
    if delete_all:
        print("Deleting all IP addresses")
    elif to_delete:
        print(f"Deleting IP address(es): {_join(to_delete)}")
    if to_add:
        print(f"Adding IP address(es): {_join(to_add)}")
    if result.saved is not None:
        print(f"Saved parameters for CT {result.ctid}")
    for message in result.warnings:
        warn(message)
    return EXIT_OK


def _to_json(info: ContainerInfo) -> dict[str, Any]:
    runtime = info.runtime
    return {
        "ctid": info.ctid,
        "running": info.running,
        "phase": "stopped" if runtime is None else runtime.phase,
        "saved": None if info.saved is None else [str(a) for a in info.saved],
        "runtime": None if runtime is None else [str(a) for a in runtime.addresses],
        "ifindex": None if runtime is None else runtime.ifindex,
        "link": None if runtime is None else runtime.link,
        "netns": None if runtime is None else runtime.netns,
    }


def _cell(addresses: Sequence[ConfigAddress] | None) -> str:
    return ",".join(str(a) for a in addresses) if addresses else "-"


def run_show(args: argparse.Namespace) -> int:
    """``venetctl show``."""
    info = make_node(args).info(args.ctid)
    for message in info.warnings:
        warn(message)
    if args.json:
        print(json.dumps(_to_json(info), indent=2))
        return EXIT_OK
    runtime = info.runtime
    if runtime is None:
        print(f"CT {info.ctid}: stopped")
    else:
        netns = f", netns {runtime.netns}" if runtime.netns else ""
        print(f"CT {info.ctid}: {runtime.phase} (link {runtime.link}, ifindex {runtime.ifindex}{netns})")
    print(f"  saved:   {'(no config file)' if info.saved is None else _join(info.saved) or '-'}")
    print(f"  runtime: {'-' if runtime is None else _join(runtime.addresses) or '-'}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    """``venetctl list``."""
    infos = make_node(args).containers()
    for info in infos:
        for message in info.warnings:
            warn(message)
    if args.json:
        print(json.dumps([_to_json(i) for i in infos], indent=2))
        return EXIT_OK
    rows = [("CTID", "STATE", "SAVED", "RUNTIME")]
    rows += [
        (i.ctid, i.runtime.phase if i.runtime else "stopped", _cell(i.saved),
         _cell(i.runtime.addresses if i.runtime else None))
        for i in infos
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return EXIT_OK
