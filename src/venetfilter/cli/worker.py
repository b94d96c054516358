"""``venetctl worker`` (also ``venetfilter-worker``) and ``venetctl stats``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..config.paths import default_run_dir
from ..errors import VenetfilterError
from ..netns import enter_netns
from ..worker import Worker, WorkerOptions, request
from ..worker.backends import BACKENDS, default_backend
from ._common import EXIT_OK, EXIT_SYSTEM, ArgumentParser, add_common_options, common_options, error

__all__ = ["main", "register"]


def _add_worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", type=int, default=0, metavar="N", help="the (first) NFQUEUE number to bind (default 0)")
    p.add_argument("--queues", type=int, default=1, metavar="N",
                   help="serve N queues from --queue on, one thread each (rules: --queue-balance)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help=f"how packets are read (default: {default_backend()})")
    p.add_argument("--fail-open", action="store_true", help="set the queue's fail-open flag (accept when full)")
    p.add_argument("--netns", metavar="NAME|PATH|PID", help="run in this network namespace (the host's)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on PORT")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR", help="... on ADDR (default 127.0.0.1)")
    p.add_argument("--log-rate", type=float, default=10.0, metavar="N", help="at most N drop log lines a second")
    p.add_argument("-v", "--verbose", action="store_true", help="log reloads and more")
    p.set_defaults(func=run_worker)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``worker`` and ``stats`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser("worker", parents=[common_options()], help="run the NFQUEUE worker (foreground)")
    _add_worker_options(p)
    p = subparsers.add_parser("stats", parents=[common_options()], help="the running worker's counters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_stats)


def run_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="venetfilter-worker: %(levelname)s %(message)s", stream=sys.stderr,
    )
    if not has_net_admin():
        raise VenetfilterError("the worker needs CAP_NET_ADMIN to bind NFQUEUE: run it as root")
    if args.netns:
        enter_netns(args.netns)
    worker = Worker(WorkerOptions(
        run_dir=args.run_dir or default_run_dir(), queue=args.queue, queues=args.queues,
        backend=args.backend, fail_open=args.fail_open,
        metrics_address=args.metrics_address, metrics_port=args.metrics_port, log_rate=args.log_rate,
    ))
    try:
        worker.run()
    finally:
        worker.close()
    return EXIT_OK


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
    print(f"generation {stats['generation']}, {stats['backend']} backend: {stats['packets']} packets, "
          f"{stats['errors']} errors, {stats['reloads']} reloads ({stats['reload_errors']} failed)")
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

    parser = ArgumentParser(prog="venetfilter-worker", description="The venetfilter NFQUEUE worker.")
    add_common_options(parser, top=True)
    _add_worker_options(parser)
    return _run(parser, argv)
