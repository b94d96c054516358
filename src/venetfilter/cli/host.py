"""``venetctl start``, ``stop``, ``status`` and ``sysctl``: a thin layer over `venetfilter.lifecycle`
and `venetfilter.host.sysctl`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config.neighbourdevs import parse_neighbour_devs
from ..host import DEFAULT_SYSCTL_FILE, IPV6_FORWARDING_WARNING, apply_sysctls, persist_sysctls, read_sysctls
from ..lifecycle.status import gather_status
from ._common import EXIT_NOT_ISOLATED, EXIT_OK, common_options, make_node, warn

__all__ = ["register"]

_NETNS_HELP = "NAME|PATH|PID"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``start``, ``stop``, ``status`` and ``sysctl``."""
    parents = [common_options()]
    p = subparsers.add_parser(
        "start", parents=parents, help="bring a container's network up (venet-like link, routes, proxy ARP/NDP)",
        description="Create the container's link (vnfCTID / venet0), put its saved addresses on it, route and "
        "proxy them on the host, and tell the filter, in an order that never lets anything pass unjudged.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument(
        "--netns", metavar=_NETNS_HELP,
        help="the container's existing network namespace (default: create venet-CTID)",
    )
    _host_netns_option(p)
    p.add_argument(
        "--neighbour-devs", type=_neighbour_devs, metavar="all|detect|list:IF...",
        help="host interfaces that answer ARP/NDP for the container's addresses (default NEIGHBOUR_DEVS of "
        "venetfilter-node.conf, else all)",
    )
    p.set_defaults(func=run_start)

    p = subparsers.add_parser(
        "stop", parents=parents, help="take a container's network down",
        description="Undo start: proxy entries, the link and its routes, the namespace if start created it; "
        "also finishes a start or stop that was interrupted.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.set_defaults(func=run_stop)

    p = subparsers.add_parser(
        "status", parents=parents, help="what is true now: containers, kernel table, worker",
        description="Each container's record, link, namespace and addresses, and the node's kernel table and "
        f"worker. Exits {EXIT_NOT_ISOLATED} when a running container is not isolated.",
    )
    p.add_argument("ctid", metavar="CTID", nargs="?", help="only this container")
    _host_netns_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_status)

    p = subparsers.add_parser(
        "sysctl", parents=parents, help="show, apply or persist the sysctls venet needs",
        description="IPv4/IPv6 forwarding, proxy NDP and no ICMP redirects.",
    )
    p.add_argument("--apply", action="store_true", help="set the values that differ")
    p.add_argument(
        "--persist", nargs="?", const=DEFAULT_SYSCTL_FILE, type=Path, metavar="FILE",
        help=f"write them to a sysctl.d file (default {DEFAULT_SYSCTL_FILE})",
    )
    p.add_argument("--netns", metavar=_NETNS_HELP, help="act in this network namespace (default: the current one)")
    p.set_defaults(func=run_sysctl)


def _host_netns_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host-netns", metavar=_NETNS_HELP, help="the host's network namespace (default: the current one)",
    )


def _neighbour_devs(text: str) -> str:
    try:
        parse_neighbour_devs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run_start(args: argparse.Namespace) -> int:
    """``venetctl start``."""
    result = make_node(args, host_netns=args.host_netns).start(args.ctid, netns=args.netns,
                                                                 neighbour_devs=args.neighbour_devs)
    record = result.record
    print(f"Container {result.ctid}: link {record.link} (ifindex {record.ifindex}), netns {record.netns}")
    if record.addresses:
        print(f"Adding IP address(es): {' '.join(str(a) for a in record.addresses)}")
    for message in result.warnings:
        warn(message)
    return EXIT_OK


def run_stop(args: argparse.Namespace) -> int:
    """``venetctl stop``."""
    result = make_node(args).stop(args.ctid)
    for message in result.warnings:
        warn(message)
    print(result.message or f"Container {result.ctid}: network stopped")
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """``venetctl status``."""
    status = gather_status(make_node(args, host_netns=args.host_netns), args.ctid)
    if args.json:
        print(json.dumps(status.to_json(), indent=2, sort_keys=True))
    else:
        table = f"installed ({status.queue})" if status.table else "MISSING"
        worker = (f"running, {status.mode} mode, generation {status.worker_generation}, guard "
                  f"{'on' if status.guard else 'off'}") if status.worker else "not running"
        print(f"node: kernel table {table}; worker {worker}; state generation {status.state_generation}")
        for problem in status.problems:
            print(f"  ! {problem}")
        for c in status.containers:
            if c.phase == "stopped":
                print(f"CT {c.ctid}: stopped (saved: {' '.join(c.saved or []) or '-'})")
                continue
            print(f"CT {c.ctid}: {c.phase}, {'isolated' if c.isolated else 'NOT ISOLATED'}; link {c.link} "
                  f"{'present' if c.link_present else 'gone'}, netns {c.netns} "
                  f"{'present' if c.netns_present else 'gone'}")
            print(f"  saved:   {' '.join(c.saved) if c.saved else '-' if c.saved is not None else '(no config file)'}")
            print(f"  runtime: {' '.join(c.runtime or []) or '-'}")
            for problem in c.problems:
                print(f"  ! {problem}")
    return EXIT_OK if status.isolated else EXIT_NOT_ISOLATED


def run_sysctl(args: argparse.Namespace) -> int:
    """``venetctl sysctl``."""
    if not args.apply and args.persist is None:
        for status in read_sysctls(args.netns):
            current = "(missing)" if status.current is None else status.current
            note = "ok" if status.ok else f"venet needs {status.wanted}"
            print(f"{status.name} = {current}  [{note}]")
    if args.apply:
        changes = apply_sysctls(args.netns)
        for change in changes:
            print(f"{change.name}: {change.old} -> {change.new}")
        if not changes:
            print("sysctls already set, nothing changed")
    if args.persist is not None:
        path = Path(args.persist)
        print(f"wrote {path}" if persist_sysctls(path) else f"{path} already up to date, nothing changed")
    warn(IPV6_FORWARDING_WARNING)
    return EXIT_OK
