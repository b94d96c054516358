"""``venetctl``: the command line, a thin layer over `venetfilter.config` (and later host, rules, worker).

Each group of subcommands lives in its own module with a ``register(subparsers)`` function; their
handlers take the parsed arguments and return an exit code. Errors become one line on stderr and
vzctl's exit codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import (
    EXIT_INVALID,
    EXIT_SYSTEM,
    AddressAnsweredError,
    AddressInUseError,
    AddressRoutedError,
    ApplyError,
    NotRunningError,
    UnknownContainerError,
    VenetfilterError,
)
from . import containers, docs, hook, host, rules, service, worker
from ._common import ArgumentParser, UsageError, add_common_options, error

__all__ = ["REGISTRARS", "build_parser", "exit_code", "main"]

REGISTRARS: list[Callable[[argparse._SubParsersAction[ArgumentParser]], None]] = [
    containers.register,
    host.register,
    rules.register,
    worker.register,
    hook.register,
    service.register,
    docs.register,
]
"""The ``register(subparsers)`` function of every subcommand module, in help order."""


def build_parser() -> ArgumentParser:
    """The ``venetctl`` parser with every registered subcommand."""
    parser = ArgumentParser(
        prog="venetctl", description="OpenVZ venet-style network isolation for Linux containers."
    )
    parser.add_argument("--version", action="version", version=f"venetctl (venetfilter) {__version__}")
    add_common_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTRARS:
        register(subparsers)
    return parser


def exit_code(exc: BaseException) -> int:
    """vzctl's exit code for an error: what the error class carries (`venetfilter.errors`)."""
    if isinstance(exc, UsageError):
        return EXIT_INVALID
    if isinstance(exc, VenetfilterError):
        return exc.exit_code
    return EXIT_SYSTEM


def _message(exc: BaseException) -> str:
    if isinstance(exc, AddressAnsweredError):
        return f"Unable to add IP {exc.address}: {exc}"
    if isinstance(exc, AddressInUseError):
        return f"Unable to add IP {exc.address}: Address already in use by container {exc.owner}"
    if isinstance(exc, AddressRoutedError):
        return f"Unable to add IP {exc.address}: {exc}"
    if isinstance(exc, NotRunningError):
        return f"Unable to apply new settings: {exc} (use --save to change only its config file)"
    if isinstance(exc, ApplyError):
        return f"Unable to add IP address(es) to container {exc.ctid}, nothing was saved: {exc.cause}"
    if isinstance(exc, UnknownContainerError):
        return f"container {exc.ctid} does not exist: no config file and not running"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``venetctl`` with `argv` (default ``sys.argv[1:]``); returns the exit code."""
    return _run(build_parser(), argv)


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` with `parser`, run the chosen handler, and turn errors into vzctl's exit codes."""
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (UsageError, VenetfilterError, OSError) as exc:
        error(_message(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


