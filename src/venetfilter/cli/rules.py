"""``venetctl rules install|remove|show``: a thin layer over `venetfilter.rules`."""

from __future__ import annotations

import argparse
from typing import Any

from ..rules import QueueSpec, install, remove, show
from ._common import EXIT_OK, UsageError, common_options

__all__ = ["add_queue_options", "queue_spec", "register"]


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    """--queue N | --queue-balance A:B, --queue-cpu-fanout, --fail-open."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--queue", type=int, default=0, metavar="N", help="the NFQUEUE number (default 0)")
    group.add_argument("--queue-balance", metavar="A:B", help="spread flows over queues A..B")
    parser.add_argument("--queue-cpu-fanout", action="store_true", help="with --queue-balance: pick the queue by CPU")
    parser.add_argument(
        "--fail-open", action="store_true",
        help="let traffic pass when no worker is bound or the queue is full (default: drop it)",
    )


def queue_spec(args: argparse.Namespace) -> QueueSpec:
    balance = None
    if args.queue_balance:
        first, _, last = args.queue_balance.partition(":")
        if not (first.isdigit() and last.isdigit()):
            raise UsageError(f"invalid --queue-balance {args.queue_balance!r}: expected A:B")
        balance = (int(first), int(last))
    elif args.queue_cpu_fanout:
        raise UsageError("--queue-cpu-fanout needs --queue-balance")
    return QueueSpec(queue=args.queue, balance=balance, cpu_fanout=args.queue_cpu_fanout, fail_open=args.fail_open)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``rules`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser(
        "rules", parents=[common_options()], help="install, remove or show the iptables/ip6tables rules",
        description="Send every packet entering or leaving a container link to the worker's NFQUEUE.",
    )
    p.add_argument("action", choices=["install", "remove", "show"])
    add_queue_options(p)
    p.add_argument("--netns", metavar="NAME|PATH|PID", help="act in this network namespace")
    p.add_argument("--backend", choices=["auto", "legacy", "nft"], default="auto", help="iptables backend")
    p.set_defaults(func=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    if args.action == "install":
        changes = install(queue_spec(args), args.netns, args.backend)
        print("\n".join(changes) if changes else "rules already installed, nothing changed")
    elif args.action == "remove":
        changes = remove(args.netns, args.backend)
        print("\n".join(changes) if changes else "no rules installed, nothing changed")
    else:
        for family, lines in show(args.netns, args.backend).items():
            print(f"# IPv{family}")
            print("\n".join(lines) if lines else "(not installed)")
    return EXIT_OK
