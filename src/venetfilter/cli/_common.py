"""What every ``venetctl`` subcommand shares: the parser class, common options, exit codes, output."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ..config.notify import DEFAULT_TIMEOUT
from ..config.paths import CONF_DIR_ENV, DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, RUN_DIR_ENV
from ..errors import (
    EXIT_ADDRESS_IN_USE,
    EXIT_CANNOT_ADD_IP,
    EXIT_INVALID,
    EXIT_NO_CONFIG,
    EXIT_NOT_RUNNING,
    EXIT_RUNNING,
    EXIT_SYSTEM,
)
from ..lifecycle import Node

__all__ = [
    "EXIT_ADDRESS_IN_USE",
    "EXIT_CANNOT_ADD_IP",
    "EXIT_INVALID",
    "EXIT_NOT_RUNNING",
    "EXIT_NO_CONFIG",
    "EXIT_NOT_ISOLATED",
    "EXIT_OK",
    "EXIT_RUNNING",
    "EXIT_SYSTEM",
    "ArgumentParser",
    "UsageError",
    "add_common_options",
    "add_install_options",
    "bounded_float",
    "directory",
    "bounded_int",
    "common_options",
    "error",
    "install_file",
    "make_node",
    "warn",
]

EXIT_OK = 0  # the others are vzctl's, with the errors that carry them (venetfilter.errors)
EXIT_NOT_ISOLATED = 1  # status: a running container is not isolated


def directory(text: str) -> Path:
    """An argparse type: a directory path, never empty (an empty one would mean the current directory)."""
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory path")
    return Path(text)


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
        "--conf-dir", type=directory, default=default, metavar="DIR",
        help=f"container config files (default ${CONF_DIR_ENV} or {DEFAULT_CONF_DIR})",
    )
    parser.add_argument(
        "--run-dir", type=directory, default=default, metavar="DIR",
        help=f"runtime state and worker socket (default ${RUN_DIR_ENV} or {DEFAULT_RUN_DIR})",
    )
    parser.add_argument(
        "--notify-timeout", type=bounded_float(0.001, 3600), default=DEFAULT_TIMEOUT if top else argparse.SUPPRESS,
        metavar="SECONDS", help=f"how long to wait for the worker to confirm a reload (default {DEFAULT_TIMEOUT:g})",
    )


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the common options, for ``add_parser(..., parents=[common_options()])``."""
    parent = ArgumentParser(add_help=False)
    add_common_options(parent)
    return parent


def add_install_options(parser: argparse.ArgumentParser, dir_option: str, default_dir: Path, what: str,
                        root_note: str = "") -> None:
    """Where ``install-*`` puts its file: `dir_option` DIR (default `default_dir`), ``--root DIR``
    (`default_dir` under DIR) or ``--print`` (stdout, nothing written); one of them at most."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(dir_option, dest="directory", type=directory, metavar="DIR",
                       help=f"write it to DIR (default {default_dir})")
    where.add_argument("--root", type=directory, metavar="DIR",
                       help=f"write it to DIR{default_dir}, for a system image or a package{root_note}")
    where.add_argument("--print", "--dry-run", dest="print_only", action="store_true",
                       help=f"print {what} on stdout; write nothing")


def install_file(args: argparse.Namespace, text: str, default_dir: Path, name: str, program: Path,
                 missing: str) -> Path | None:
    """Print `text` (``--print``: returns None) or write it as `name` where `add_install_options`
    says; warns that the file is of no use (`missing`) while `program`, which it runs, is not there."""
    from ..system_files import target_dir, write

    if args.print_only:
        print(text, end="")
        return None
    if not program.is_file():
        warn(f"{program} does not exist (yet): {missing}")
    return write(text, target_dir(default_dir, args.directory, args.root), name)


def make_node(args: argparse.Namespace, **options: Any) -> Node:
    """The `Node` the parsed options describe (it changes the host; its warnings go to stderr)."""
    return Node(args.conf_dir, args.run_dir, notify_timeout=args.notify_timeout, warn=warn, **options)


def warn(message: str) -> None:
    """Print a warning on stderr (``Warning at FILE:LINE: ...`` messages as they are)."""
    print(message if message.startswith("Warning") else f"Warning: {message}", file=sys.stderr)


def error(message: str) -> None:
    """Print an error on stderr, one line."""
    print(f"venetctl: {message}", file=sys.stderr)
