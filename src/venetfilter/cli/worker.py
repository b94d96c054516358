"""``venetctl worker`` (also ``venetfilter-worker``) and ``venetctl stats``."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..config.nodeconf import read_node_config
from ..config.paths import default_conf_dir, default_run_dir
from ..errors import VenetfilterError
from ..netns import enter_netns
from ..rules import DEFAULT_JUDGE_RATE, MODES
from ..worker import Worker, WorkerOptions, request
from ..worker.backends import BACKENDS, default_backend
from ..worker.journal import JournalFormatter, stream_is_journal
from ._common import (
    UsageError,
    EXIT_OK,
    EXIT_SYSTEM,
    ArgumentParser,
    add_common_options,
    bounded_float,
    bounded_int,
    common_options,
    error,
)

__all__ = ["main", "register"]


def _add_worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="default",
                   help="default: the kernel decides every packet (a netdev chain per container link) and copies "
                        "the refused ones to the worker for their reason; queue: every container packet goes "
                        "through the worker's NFQUEUE (slower; audit)")
    p.add_argument("--queue", type=bounded_int(0, 65535), default=0, metavar="N",
                   help="queue mode: the (first) NFQUEUE number to bind; default mode: the NFLOG group to read "
                        "(default 0)")
    p.add_argument("--queues", type=bounded_int(1, 64), default=1, metavar="N",
                   help="queue mode: serve N queues from --queue on, one thread each (flows are spread over them)")
    p.add_argument("--queue-cpu-fanout", action="store_true",
                   help="queue mode, with --queues N: pick the queue by the CPU the packet is on, not by its flow")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help=f"queue mode: how packets are read (default: {default_backend()})")
    p.add_argument("--fail-open", action="store_true",
                   help="queue mode: let queued packets pass when no worker is bound or the queue is full "
                        "(default: drop)")
    p.add_argument("--judge-rate", type=bounded_int(0, 10_000_000), default=DEFAULT_JUDGE_RATE, metavar="N",
                   help="default mode: at most N refused packets a second per container link are copied to the "
                        f"worker, the rest are counted unjudged; all are dropped (default {DEFAULT_JUDGE_RATE}; "
                        "0: no limit)")
    p.add_argument("--no-guard", dest="guard", action="store_false",
                   help="do not look after the kernel table (by default it is checked twice a second and restored)")
    p.add_argument("--netns", metavar="NAME|PATH|PID", help="run in this network namespace (the host's)")
    p.add_argument("--metrics-port", type=bounded_int(0, 65535), metavar="PORT", help="serve Prometheus metrics on PORT")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR", help="... on ADDR (default 127.0.0.1)")
    p.add_argument("--log-rate", type=bounded_float(0.1, 1e6), default=10.0, metavar="N",
                   help="at most N drop log lines a second")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log reloads and other routine events (info); twice: also debug (the node's own MLD/ND)")
    p.add_argument("--log-format", choices=("auto", "plain", "journal"), default="auto",
                   help="journal: prefix each line with its syslog priority (<4> warning ...) for journald; "
                        "auto (default): when stderr is the journal stream")
    p.set_defaults(func=run_worker)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``worker`` and ``stats`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser("worker", parents=[common_options()], help="run the worker: kernel table, guard, drop reasons (foreground)")
    _add_worker_options(p)
    p = subparsers.add_parser("stats", parents=[common_options()], help="the running worker's counters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_stats)


def run_worker(args: argparse.Namespace) -> int:
    if args.mode == "default":
        for given, option in ((args.queues > 1, "--queues"), (args.queue_cpu_fanout, "--queue-cpu-fanout"),
                              (args.fail_open, "--fail-open"), (args.backend is not None, "--backend")):
            if given:
                raise UsageError(f"{option} applies to the queue mode (--mode queue): the default mode queues nothing")
    if args.queue_cpu_fanout and args.queues < 2:
        raise UsageError("--queue-cpu-fanout needs --queues 2 or more")
    if args.queue + args.queues - 1 > 65535:
        raise UsageError(f"--queue {args.queue} --queues {args.queues}: queues end at 65535")
    if not has_net_admin():
        raise VenetfilterError("the worker needs CAP_NET_ADMIN for the kernel table and its queue or log group: "
                               "run it as root")
    node = read_node_config(args.conf_dir or default_conf_dir())
    with contextlib.suppress(ValueError, OSError):  # no real stderr (embedded, captured): no dump
        faulthandler.enable()  # a crash in C code leaves every thread's stack in the log
    logging.basicConfig(level=logging.WARNING, handlers=[log_handler(args.log_format)])  # libraries: warnings
    logging.getLogger("venetfilter").setLevel(_LEVELS[min(args.verbose, 2)])
    if args.netns:
        enter_netns(args.netns)
    worker = Worker(WorkerOptions(
        run_dir=args.run_dir or default_run_dir(), conf_dir=args.conf_dir or default_conf_dir(), queue=args.queue, queues=args.queues,
        backend=args.backend, fail_open=args.fail_open,
        metrics_address=args.metrics_address, metrics_port=args.metrics_port, log_rate=args.log_rate,
        mode=args.mode, link_prefix=node.link_prefix, guard=args.guard, cpu_fanout=args.queue_cpu_fanout,
        judge_rate=args.judge_rate,
    ))
    try:
        worker.run()
    finally:
        worker.close()
    return EXIT_OK


_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # by the number of -v


def log_handler(log_format: str) -> logging.Handler:
    """A stderr handler; its lines carry syslog priorities for journald (`JournalFormatter`) with
    'journal', or with 'auto' when stderr is the journal stream."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "journal" or (log_format == "auto" and _stderr_is_journal()):
        handler.setFormatter(JournalFormatter("%(message)s"))  # the journal knows who and how bad
    else:
        handler.setFormatter(logging.Formatter("venetfilter-worker: %(levelname)s %(message)s"))
    return handler


def _stderr_is_journal() -> bool:
    try:
        return stream_is_journal(sys.stderr.fileno())
    except (ValueError, OSError):  # no real stderr (embedded, captured)
        return False


def has_net_admin() -> bool:
    """Whether this process has CAP_NET_ADMIN in its effective set."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 12))  # CAP_NET_ADMIN
    return False


def run_stats(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or default_run_dir()
    try:
        answer = request(run_dir, b"stats\n")
    except OSError as exc:
        error(f"no worker answers on {run_dir}/worker.sock: {exc.strerror or exc}")
        return EXIT_SYSTEM
    if not answer.startswith(b"{"):
        raise VenetfilterError(f"the worker answered {answer.decode(errors='replace').strip()!r}")
    stats = json.loads(answer)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return EXIT_OK
    guard = stats["guard"]
    print(f"generation {stats['generation']}, {stats['layout']}, {stats['backend']} backend: "
          f"{stats['packets']} packets judged, {stats['errors']} errors, "
          f"{stats['reloads']} reloads ({stats['reload_errors']} failed)")
    print(f"guard {'on' if guard['enabled'] else 'off'}: {guard['checks']} checks, "
          f"{guard['tables_restored']} table restores, {guard['elements_restored']} set repairs, "
          f"{guard['links_regrouped']} links put back in their group, {guard['errors']} errors; "
          f"{stats['unknown_links']} packets on unknown links")
    for queue, counts in stats["queues"].items():
        print(f"queue {queue}: {counts['queue_dropped']} dropped (queue full), "
              f"{counts['user_dropped']} dropped (socket buffer full), {counts['waiting']} waiting")
    for ctid, verdicts in stats["containers"].items():
        shown = ", ".join(f"{name.lower()} {count}" for name, count in verdicts.items() if count)
        print(f"{ctid}: {shown or 'no packets'}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``venetfilter-worker``: the same as ``venetctl worker``."""
    from . import _run  # noqa: PLC0415 (the shared error handling of venetctl)

    parser = ArgumentParser(prog="venetfilter-worker", description="The venetfilter worker.")
    add_common_options(parser, top=True)
    _add_worker_options(parser)
    return _run(parser, argv)
