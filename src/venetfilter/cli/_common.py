"""What every ``venetctl`` subcommand shares: the parser class, common options, exit codes, output."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..config import ContainerManager, LiveApplier
from ..host import RECORD_SUBDIR, HostApplier
from ..config.notify import DEFAULT_TIMEOUT
from ..config.runtime import table_entries
from ..config.paths import CONF_DIR_ENV, DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, RUN_DIR_ENV

__all__ = [
    "EXIT_ADDRESS_IN_USE",
    "EXIT_CANNOT_ADD_IP",
    "EXIT_INVALID",
    "EXIT_NOT_RUNNING",
    "EXIT_NO_CONFIG",
    "EXIT_OK",
    "EXIT_SYSTEM",
    "ArgumentParser",
    "UsageError",
    "add_common_options",
    "bounded_float",
    "bounded_int",
    "common_options",
    "error",
    "make_manager",
    "sync_kernel_sets",
    "warn",
]

# vzctl's exit codes (include/vzerror.h)
EXIT_OK = 0
EXIT_SYSTEM = 3  # VZ_SYSTEM_ERROR
EXIT_NO_CONFIG = 14  # VZ_NOVECONFIG
EXIT_INVALID = 21  # VZ_INVALID_PARAMETER_VALUE
EXIT_NOT_RUNNING = 31  # VZ_VE_NOT_RUNNING
EXIT_CANNOT_ADD_IP = 34  # VZ_CANT_ADDIP
EXIT_ADDRESS_IN_USE = 78  # VZ_IP_INUSE


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, anything else a usage error (exit 21)."""

    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high}")
        return value

    return convert


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in low..high (no nan, no inf)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text} is out of range {low:g}..{high:g}")
        return value

    return convert


class UsageError(Exception):
    """A command line argparse refused; ``main`` turns it into one line and exit code 21."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors raise `UsageError` instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def add_common_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--conf-dir``, ``--run-dir`` and ``--notify-timeout``; accepted before or after the subcommand."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--conf-dir", type=Path, default=default, metavar="DIR",
        help=f"container config files (default ${CONF_DIR_ENV} or {DEFAULT_CONF_DIR})",
    )
    parser.add_argument(
        "--run-dir", type=Path, default=default, metavar="DIR",
        help=f"runtime state and worker socket (default ${RUN_DIR_ENV} or {DEFAULT_RUN_DIR})",
    )
    parser.add_argument(
        "--notify-timeout", type=float, default=DEFAULT_TIMEOUT if top else argparse.SUPPRESS, metavar="SECONDS",
        help=f"how long to wait for the worker to confirm a reload (default {DEFAULT_TIMEOUT:g})",
    )


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the common options, for ``add_parser(..., parents=[common_options()])``."""
    parent = ArgumentParser(add_help=False)
    add_common_options(parent)
    return parent


def make_manager(args: argparse.Namespace, applier: LiveApplier | None = None) -> ContainerManager:
    """The `ContainerManager` the parsed options describe. Runtime changes of a container started
    with ``venetctl start`` are applied to its network (`HostApplier`) unless `applier` is given."""
    manager = ContainerManager(args.conf_dir, args.run_dir, applier=applier, notify_timeout=args.notify_timeout)
    if applier is None:
        manager.applier = HostApplier(Path(manager.run_dir) / RECORD_SUBDIR, fallback=manager.applier)
    return manager


def sync_kernel_sets(manager: ContainerManager, host_netns: str | None) -> None:
    """No worker answered: bring the kernel sets (if the table is installed) to the runtime state
    ourselves, so that a revoked address stops passing now."""
    from ..rules import RulesError, desired_elements, sync, table_exists

    if not table_exists(host_netns):
        return
    try:
        sync(desired_elements(table_entries(manager.runtime_state())), host_netns)
    except RulesError as exc:
        warn(f"cannot update the kernel sets: {exc}")


def warn(message: str) -> None:
    """Print a warning on stderr (``Warning at FILE:LINE: ...`` messages as they are)."""
    print(message if message.startswith("Warning") else f"Warning: {message}", file=sys.stderr)


def error(message: str) -> None:
    """Print an error on stderr, one line."""
    print(f"venetctl: {message}", file=sys.stderr)
