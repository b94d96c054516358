"""``venetctl rules install|remove|show``: a thin layer over `venetfilter.rules`.

A running worker installs and guards its own layout (``venetctl worker --mode ...``); these
commands are for a node without one, and for looking.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..config.nodeconf import read_node_config
from ..config.paths import default_conf_dir, default_run_dir
from ..config.runtime import load_state, table_entries
from ..netns import run_in_netns
from ..rules import MODES, TABLE, Layout, QueueSpec, desired_elements, installed_family, installed_queue, remove, replace
from ..rules.nft import Nft, NftError
from ._common import EXIT_OK, UsageError, bounded_int, common_options

__all__ = ["add_queue_options", "queue_spec", "register"]


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    """--queue N | --queue-balance A:B, --queue-cpu-fanout, --fail-open."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--queue", type=bounded_int(0, 65535), default=0, metavar="N",
                       help="queue mode: the NFQUEUE number; default mode: the NFLOG group (default 0)")
    group.add_argument("--queue-balance", metavar="A:B", help="spread flows over queues A..B")
    parser.add_argument("--queue-cpu-fanout", action="store_true", help="with --queue-balance: pick the queue by CPU")
    parser.add_argument(
        "--fail-open", action="store_true",
        help="let queued packets pass when no worker is bound or the queue is full (default: drop them)",
    )


def queue_spec(args: argparse.Namespace) -> QueueSpec:
    balance = None
    if args.queue_balance:
        first, _, last = args.queue_balance.partition(":")
        if not (first.isdigit() and last.isdigit()) or int(first) > int(last) or int(last) > 65535:
            raise UsageError(f"invalid --queue-balance {args.queue_balance!r}: expected A:B with 0 <= A <= B <= 65535")
        balance = (int(first), int(last))
    elif args.queue_cpu_fanout:
        raise UsageError("--queue-cpu-fanout needs --queue-balance")
    return QueueSpec(queue=balance[0] if balance else args.queue, balance=balance,
                     cpu_fanout=args.queue_cpu_fanout, fail_open=args.fail_open)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``rules`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser(
        "rules", parents=[common_options()], help="install, remove or show the kernel table (nftables)",
        description=f"The nftables table {TABLE}: netdev (default mode: a chain per container link, refused "
        "packets dropped and copied to the worker's log group) or inet (queue mode: every container packet "
        "goes to the worker's NFQUEUE). A running worker installs and guards its own.",
    )
    p.add_argument("action", choices=["install", "remove", "show"])
    p.add_argument("--mode", choices=MODES, default="default", help="default: the kernel decides every packet; "
                   "queue: every container packet goes to the worker")
    add_queue_options(p)
    p.add_argument("--netns", metavar="NAME|PATH|PID", help="act in this network namespace")
    p.set_defaults(func=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    if args.action == "install":
        node = read_node_config(args.conf_dir or default_conf_dir())
        layout = Layout(node.link_prefix, args.mode, queue_spec(args))
        state = load_state(args.run_dir or default_run_dir())
        replace(layout, desired_elements(table_entries(state)), args.netns)
        print(f"installed: {layout.describe()}")
    elif args.action == "remove":
        print("removed" if remove(args.netns) else "no table installed, nothing changed")
    else:
        family = installed_family(args.netns)
        if family is None:
            print("(not installed)")
            return EXIT_OK
        print(_listing(family, args.netns), end="")
        spec = installed_queue(args.netns) if family == "inet" else None
        if spec is not None:
            print(f"# judged packets go to {spec.describe()}")
    return EXIT_OK


def _listing(family: str, netns: str | None) -> str:
    def work() -> str:
        with Nft() as nft, _quiet_stderr():  # libxtables warns about the inet family on stderr
            try:
                return nft.run(f"list table {family} {TABLE}")
            except NftError:  # no table: nothing to show
                return ""

    return run_in_netns(netns, work)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null for a moment (C libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
