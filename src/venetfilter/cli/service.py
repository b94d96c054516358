"""``venetctl install-service``: the worker's systemd unit with this install's paths (`venetfilter.worker.unit`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..config.paths import default_conf_dir, default_run_dir
from ..config.store import ensure_dir
from ..worker import unit
from ._common import EXIT_OK, add_install_options, common_options, directory, install_file, warn

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``install-service`` to the ``venetctl`` subcommands."""
    p = subparsers.add_parser(
        "install-service", parents=[common_options()], help="install the worker's systemd unit",
        description=f"Write {unit.UNIT_NAME} for the venetfilter-worker of this Python environment, with "
        "--conf-dir and --run-dir as its directories, to /etc/systemd/system, then reload systemd if it runs. "
        "Refuses (exit 21) a worker the unit could not run: one whose path, #! interpreter or virtual "
        f"environment's Python resolves under a directory the unit hides ({', '.join(unit.HIDDEN)}). "
        "A --run-dir outside /run must exist when the unit starts: it is made (mode 0700) with the unit.",
        epilog=f"Then: systemctl enable --now {unit.UNIT_NAME}",
    )
    add_install_options(p, "--unit-dir", unit.SYSTEM_UNIT_DIR, "the unit", " (no reload)")
    p.add_argument("--worker", type=directory, metavar="PATH",
                   help="the venetfilter-worker the unit runs (default: this environment's, else the one on $PATH)")
    p.add_argument("--no-reload", dest="reload", action="store_false", help="do not run 'systemctl daemon-reload'")
    p.set_defaults(func=run_install_service)


def run_install_service(args: argparse.Namespace) -> int:
    worker = args.worker.absolute() if args.worker else unit.installed_worker()
    run_dir = args.run_dir or default_run_dir()
    unit.check_runnable(worker)  # first: a hidden worker is refused with the library's one message
    text = unit.render(worker, args.conf_dir or default_conf_dir(), run_dir)
    writable = unit.writable_run_dir(run_dir)
    if writable is not None and not args.print_only:
        made = Path(writable) if args.root is None else args.root / writable.relative_to("/")
        if not made.is_dir():  # the unit's ReadWritePaths= names it: missing at start, it fails with 226/NAMESPACE
            if not ensure_dir(made).is_dir():
                raise unit.UnitError(f"the run dir {made} exists and is not a directory")
            print(f"made the run dir {made} (mode 0700; the unit cannot start without it)")
    elif writable is not None and not os.path.isdir(writable):
        warn(f"the run dir {writable} does not exist: the unit cannot start until it does (226/NAMESPACE); "
             "install-service without --print makes it")
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
