"""``venetctl set``, ``show`` and ``list``: a thin layer over `venetfilter.lifecycle.Node`.

They keep vzctl's and vzlist's habits so that existing scripts run: ``set --ip`` is ``--ipadd``;
``set --hostname/--nameserver/--searchdomain`` are accepted with a warning (venetfilter manages
addresses only); ``list`` shows running containers unless ``-a`` (``-S``: stopped ones), with
``-H``, ``-o FIELD,...``, ``-1`` and ``-L`` as vzlist has them. The keys of ``--json`` are
`JSON_KEYS`, documented in docs/json.md and in venetctl(8), and kept stable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ConfigAddress, parse_address_tokens, split_tokens, validate_ctid
from ..errors import InvalidAddressError
from ..lifecycle import ContainerInfo
from ._common import EXIT_INVALID, EXIT_OK, common_options, error, make_node, warn

__all__ = ["DEFAULT_FIELDS", "FIELDS", "FIELD_ALIASES", "JSON_KEYS", "UNMANAGED_OPTIONS", "register"]

UNMANAGED_OPTIONS = ("--hostname", "--nameserver", "--searchdomain")
"""vzctl ``set`` options that venetfilter accepts, warns about and ignores: it manages addresses only."""

JSON_KEYS: dict[str, str] = {
    "ctid": "the container id (a string)",
    "running": "true when the container has a runtime record, in any phase",
    "phase": '"stopped"; "running"; "starting" or "stopping" when a command was interrupted '
             "(the next start or stop finishes or undoes it)",
    "saved": "the addresses of its config file (canonical text, optional /PREFIX); null when it has no config file",
    "runtime": "the addresses in force; null when stopped",
    "ifindex": "the interface index of its link on the node; null when stopped",
    "link": "the name of its link on the node (vnfCTID); null when stopped",
    "netns": "the network namespace given to start (name, path or pid); null when stopped or none was given",
}
"""The keys of one container in ``show --json`` and ``list --json`` (a list of them), with their meaning.
Stable: scripts rely on them; tests pin the set."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``set``, ``show`` and ``list`` to the ``venetctl`` subcommands."""
    parents = [common_options()]
    p = subparsers.add_parser(
        "set", parents=parents, help="add or delete a container's addresses (vzctl set)",
        description="Change a container's addresses as vzctl set does: deletes first, then adds.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument(
        "--ipadd", "--ip", dest="ipadd", action="append", default=[], metavar="IP[,IP...]",
        help="add addresses (IPv4 or IPv6, optional /PREFIX); may be repeated",
    )
    p.add_argument(
        "--ipdel", action="append", default=[], metavar="IP[,IP...]|all",
        help="delete addresses, or all of them; may be repeated",
    )
    p.add_argument("--save", action="store_true", help="also write the container's config file")
    unmanaged = p.add_argument_group(
        "vzctl options venetfilter does not manage",
        "Accepted so that vzctl scripts run: each one given prints a warning and is ignored; the exit "
        "code is that of the address change (0 when these are the only options).",
    )
    unmanaged.add_argument("--hostname", metavar="NAME", help="ignored (set it inside the container)")
    unmanaged.add_argument("--nameserver", action="append", metavar="ADDR", help="ignored; may be repeated")
    unmanaged.add_argument("--searchdomain", action="append", metavar="DOMAIN", help="ignored; may be repeated")
    p.set_defaults(func=run_set)

    p = subparsers.add_parser(
        "show", parents=parents, help="a container's saved and runtime addresses",
        description="A container's state, its saved addresses (config file) and those in force.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument("--json", action="store_true", help="print JSON (keys: see JSON OUTPUT in venetctl(8))")
    p.set_defaults(func=run_show)

    p = subparsers.add_parser(
        "list", parents=parents, help="list containers as vzlist does (running ones unless -a)",
        description="One line per container, running ones only unless -a, as vzlist does. Default fields: "
        + ",".join(DEFAULT_FIELDS) + ". Address lists are space-separated in the last column, "
        "comma-separated in the others; '-' is empty.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    which.add_argument("-S", "--stopped", action="store_true", help="stopped containers only")
    p.add_argument("-H", "--no-header", action="store_true", help="no header line")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "-o", "--output", type=_fields, metavar="FIELD[,FIELD...]",
        help="the fields to show, in order (-L lists them)",
    )
    what.add_argument("-1", dest="ctids_only", action="store_true", help="container ids only, one per line")
    what.add_argument("-j", "--json", action="store_true", help="print JSON (keys: see JSON OUTPUT in venetctl(8))")
    p.add_argument("-L", "--list", dest="list_fields", action="store_true", help="list the fields -o knows")
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
    ignored = [option for option in UNMANAGED_OPTIONS if getattr(args, option[2:]) is not None]
    if not args.ipadd and not args.ipdel and not ignored:
        error("set: nothing to do: give --ipadd and/or --ipdel")
        return EXIT_INVALID
    validate_ctid(args.ctid)
    delete_all = "all" in split_tokens(args.ipdel)
    to_delete = _parse_option("--ipdel", args.ipdel, frozenset({"all"}))
    to_add = _parse_option("--ipadd", args.ipadd)
    if ignored:
        warn(f"venetfilter does not manage {', '.join(ignored)}: ignored")
        if not args.ipadd and not args.ipdel:
            return EXIT_OK
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
    """One container as `JSON_KEYS` describes it."""
    runtime = info.runtime
    entry = {
        "ctid": info.ctid,
        "running": info.running,
        "phase": "stopped" if runtime is None else runtime.phase,
        "saved": None if info.saved is None else [str(a) for a in info.saved],
        "runtime": None if runtime is None else [str(a) for a in runtime.addresses],
        "ifindex": None if runtime is None else runtime.ifindex,
        "link": None if runtime is None else runtime.link,
        "netns": None if runtime is None else runtime.netns,
    }
    assert entry.keys() == JSON_KEYS.keys()
    return entry


@dataclass(frozen=True)
class Field:
    """A column of ``list -o``: its header, its alignment (vzlist's minimum width), and its value."""

    header: str
    width: int
    value: Callable[[ContainerInfo], str | Sequence[object] | None]
    right: bool = False
    help: str = ""


FIELDS: dict[str, Field] = {
    "ctid": Field("CTID", 10, lambda i: i.ctid, right=True, help="the container id"),
    "status": Field("STATUS", 9, lambda i: i.runtime.phase if i.runtime else "stopped",
                    help="running or stopped (starting, stopping: interrupted)"),
    "ip": Field("IP_ADDR", 15, lambda i: i.runtime.addresses if i.runtime else i.saved,
                help="the addresses in force when running, else the saved ones"),
    "saved": Field("SAVED", 15, lambda i: i.saved, help="the addresses of the config file"),
    "runtime": Field("RUNTIME", 15, lambda i: i.runtime.addresses if i.runtime else None,
                     help="the addresses in force"),
    "link": Field("LINK", 0, lambda i: i.runtime.link if i.runtime else None, help="the link on the node"),
    "ifindex": Field("IFINDEX", 0, lambda i: str(i.runtime.ifindex) if i.runtime else None, right=True,
                     help="the interface index of the link"),
    "netns": Field("NETNS", 0, lambda i: i.runtime.netns if i.runtime else None,
                   help="the network namespace given to start"),
}
"""The fields of ``list -o``; vzlist's names and headers where it has the field (ctid, status, ip)."""

FIELD_ALIASES = {"veid": "ctid", "vpsid": "ctid", "state": "status"}
"""Other names ``-o`` accepts (vzlist's old names for ctid; our former STATE column)."""

DEFAULT_FIELDS = ("ctid", "status", "ip")
"""vzlist's default columns (ctid,numproc,status,ip,hostname) without those venetfilter does not know."""


def _fields(text: str) -> tuple[str, ...]:
    """An argparse type: ``-o``'s comma-separated field names, canonical; unknown ones a usage error."""
    names = []
    for name in text.split(","):
        name = FIELD_ALIASES.get(name.strip(), name.strip())
        if name not in FIELDS:
            valid = ", ".join([*FIELDS, *FIELD_ALIASES])
            raise argparse.ArgumentTypeError(f"unknown field {name!r} (valid fields: {valid})")
        names.append(name)
    return tuple(names)


def _render(value: str | Sequence[object] | None, last: bool) -> str:
    if value is None or not value:
        return "-"
    if isinstance(value, str):
        return value
    return (" " if last else ",").join(str(v) for v in value)


def _table(infos: Sequence[ContainerInfo], names: Sequence[str], header: bool) -> list[str]:
    """vzlist's layout: one space between columns, CTID right-aligned, at least vzlist's widths; the
    same widths with or without the header (``-H`` only leaves out the first line)."""
    fields = [FIELDS[name] for name in names]
    rows = [[f.header for f in fields]]
    rows += [[_render(f.value(info), n == len(fields) - 1) for n, f in enumerate(fields)] for info in infos]
    widths = [max([f.width, *(len(row[n]) for row in rows)]) for n, f in enumerate(fields)]
    lines = [
        " ".join(cell.rjust(w) if f.right else cell.ljust(w) for cell, w, f in zip(row, widths, fields)).rstrip()
        for row in rows
    ]
    return lines if header else lines[1:]


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
    if args.list_fields:
        for name, field in [*FIELDS.items(), *((alias, FIELDS[name]) for alias, name in FIELD_ALIASES.items())]:
            print(f"{name:<15} {field.header:<15} {field.help}".rstrip())
        return EXIT_OK
    infos = make_node(args).containers()
    for info in infos:
        for message in info.warnings:
            warn(message)
    if args.all:
        shown = list(infos)
    else:
        shown = [i for i in infos if (i.runtime is None) == args.stopped]
    if args.json:
        print(json.dumps([_to_json(i) for i in shown], indent=2))
        return EXIT_OK
    if not shown:
        print("Container(s) not found", file=sys.stderr)  # as vzlist: no header, exit 0
        return EXIT_OK
    if args.ctids_only:
        print("\n".join(i.ctid for i in shown))
        return EXIT_OK
    for line in _table(shown, args.output or DEFAULT_FIELDS, header=not args.no_header):
        print(line)
    return EXIT_OK
