"""Name a network namespace the way users do (NAME, PATH or PID) and run commands inside it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import netns as pyroute2_netns

from .errors import NetnsNotFoundError

__all__ = ["NETNS_DIR", "NetnsNotFoundError", "enter_netns", "netns_command", "netns_path", "run_in_netns"]

_T = TypeVar("_T")

NETNS_DIR = "/run/netns"  # where `ip netns add` puts named namespaces




def netns_path(netns: str | int) -> str:
    """The namespace file for a name (`ip netns` style), an absolute path, or a process id."""
    text = str(netns)
    if text.isdigit():
        path = f"/proc/{text}/ns/net"
    elif text.startswith("/"):
        path = text
    elif text and "/" not in text and text not in (".", ".."):
        path = os.path.join(NETNS_DIR, text)
    else:
        raise NetnsNotFoundError(f"invalid network namespace {netns!r}: give a name, a path or a PID")
    if not os.path.exists(path):
        raise NetnsNotFoundError(f"network namespace {netns!r} not found ({path})")
    return path


def netns_command(argv: list[str], netns: str | int | None) -> list[str]:
    """`argv`, run inside `netns` (None: the current namespace) with nsenter."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net={netns_path(netns)}", "--", *argv]


def enter_netns(netns: str | int) -> None:
    """Move the calling thread into `netns` for good (the worker does it first thing, before any
    thread or socket exists, so that everything it opens lives there)."""
    path = netns_path(netns)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pyroute2_netns.setns(fd, flags=0)  # flags=0: never create a namespace
    except OSError as exc:
        raise OSError(exc.errno, f"cannot enter network namespace {netns!r}: {os.strerror(exc.errno or 0)}") from None
    finally:
        os.close(fd)


def run_in_netns(netns: str | int | os.PathLike[str] | None, func: Callable[[], _T]) -> _T:
    """Call `func` with the calling context moved into `netns` and return its result.

    None runs it here. Otherwise it runs in a new thread that enters `netns` first (only that
    thread changes namespace; it ends with the call), so /proc/sys/net and any socket it opens
    are those of `netns`. Exceptions propagate.
    """
    if netns is None:
        return func()
    path = netns_path(os.fspath(netns) if isinstance(netns, os.PathLike) else netns)
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            enter_netns(path)
            result.append(func())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="venetfilter-netns")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
