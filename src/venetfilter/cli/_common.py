"""What every ``venetctl`` subcommand shares: the parser class, common options, exit codes, output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from ..config import ContainerManager, LiveApplier
from ..host import RECORD_SUBDIR, HostApplier
from ..config.notify import DEFAULT_TIMEOUT
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
    "common_options",
    "error",
    "make_manager",
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


def warn(message: str) -> None:
    """Print a warning on stderr (``Warning at FILE:LINE: ...`` messages as they are)."""
    print(message if message.startswith("Warning") else f"Warning: {message}", file=sys.stderr)


def error(message: str) -> None:
    """Print an error on stderr, one line."""
    print(f"venetctl: {message}", file=sys.stderr)
