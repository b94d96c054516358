"""``venetctl install-service``: the worker's systemd unit with this install's paths (`venetfilter.worker.unit`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config.paths import default_conf_dir, default_run_dir
from ..worker import unit
from ._common import EXIT_OK, common_options, directory, warn

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``install-service`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser(
        "install-service", parents=[common_options()], help="install the worker's systemd unit",
        description=f"Write {unit.UNIT_NAME} for the venetfilter-worker of this Python environment, with "
        "--conf-dir and --run-dir as its directories, to /etc/systemd/system, then reload systemd if it runs.",
        epilog=f"Then: systemctl enable --now {unit.UNIT_NAME}",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--unit-dir", type=directory, metavar="DIR", help=f"write it to DIR (default {unit.SYSTEM_UNIT_DIR})")
    where.add_argument("--root", type=directory, metavar="DIR",
                       help="write it to DIR/etc/systemd/system, for a system image or a package (no reload)")
    where.add_argument("--print", "--dry-run", dest="print_only", action="store_true",
                       help="print the unit on stdout; write nothing")
    p.add_argument("--worker", type=directory, metavar="PATH",
                   help="the venetfilter-worker the unit runs (default: this environment's, else the one on $PATH)")
    p.add_argument("--no-reload", dest="reload", action="store_false", help="do not run 'systemctl daemon-reload'")
    p.set_defaults(func=run_install_service)


def run_install_service(args: argparse.Namespace) -> int:
    worker = args.worker.absolute() if args.worker else unit.installed_worker()
    text = unit.render(worker, args.conf_dir or default_conf_dir(), args.run_dir or default_run_dir())
    if args.print_only:
        print(text, end="")
        return EXIT_OK
    if not worker.is_file():
        warn(f"{worker} does not exist (yet): the unit cannot start until it does")
    unit_dir = args.root / unit.SYSTEM_UNIT_DIR.relative_to("/") if args.root else args.unit_dir or unit.SYSTEM_UNIT_DIR
    path = unit.install(text, Path(unit_dir))
    print(f"wrote {path} (ExecStart={worker})")
    if args.root or not args.reload:
        return EXIT_OK
    if not unit.systemd_running():
        print("systemd is not running here: no daemon-reload (systemd reads the unit when it starts)")
        return EXIT_OK
    result = unit.daemon_reload()
    if result.returncode != 0:
        warn(f"systemctl daemon-reload failed ({result.returncode}): {result.stderr.strip()}")
        return EXIT_OK
    print(f"systemd reloaded: 'systemctl enable --now {unit.UNIT_NAME}' starts it at boot and now")
    return EXIT_OK
