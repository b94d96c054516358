"""``venetctl install-service``: the worker's systemd unit with this install's paths (`venetfilter.worker.unit`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..config.paths import default_conf_dir, default_run_dir
from ..worker import unit
from ._common import EXIT_OK, add_install_options, common_options, directory, install_file, warn

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``install-service`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser(
        "install-service", parents=[common_options()], help="install the worker's systemd unit",
        description=f"Write {unit.UNIT_NAME} for the venetfilter-worker of this Python environment, with "
        "--conf-dir and --run-dir as its directories, to /etc/systemd/system, then reload systemd if it runs.",
        epilog=f"Then: systemctl enable --now {unit.UNIT_NAME}",
    )
    add_install_options(p, "--unit-dir", unit.SYSTEM_UNIT_DIR, "the unit", " (no reload)")
    p.add_argument("--worker", type=directory, metavar="PATH",
                   help="the venetfilter-worker the unit runs (default: this environment's, else the one on $PATH)")
    p.add_argument("--no-reload", dest="reload", action="store_false", help="do not run 'systemctl daemon-reload'")
    p.set_defaults(func=run_install_service)


def run_install_service(args: argparse.Namespace) -> int:
    worker = args.worker.absolute() if args.worker else unit.installed_worker()
    text = unit.render(worker, args.conf_dir or default_conf_dir(), args.run_dir or default_run_dir())
    path = install_file(args, text, unit.SYSTEM_UNIT_DIR, unit.UNIT_NAME, worker, "the unit cannot start until it does")
    if path is None:
        return EXIT_OK
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
