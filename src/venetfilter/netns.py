"""Name a network namespace the way users do (NAME, PATH or PID) and run commands inside it."""

from __future__ import annotations

import os

from .errors import VenetfilterError

__all__ = ["NETNS_DIR", "NetnsNotFoundError", "enter_netns", "netns_command", "netns_path"]

NETNS_DIR = "/run/netns"  # where `ip netns add` puts named namespaces


class NetnsNotFoundError(VenetfilterError):
    """The network namespace does not exist."""


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
    import ctypes

    path = netns_path(netns)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            error = ctypes.get_errno()
            raise OSError(error, f"cannot enter network namespace {netns!r}: {os.strerror(error)}")
    finally:
        os.close(fd)
