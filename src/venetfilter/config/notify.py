"""Telling the running worker that the runtime state changed.

Protocol (Unix stream socket ``RUN_DIR/worker.sock``, one request per connection):

* the client sends ``reload\\n``;
* the worker re-reads ``state.json`` and answers ``ok <generation>\\n`` with the generation it now
  serves, or ``error <message>\\n``; then it closes the connection.

The client is content when the generation is at least the one it wrote. No socket (or nobody
listening) means no worker is running: that is not an error. A timeout or any other answer is
reported as a warning; the change itself stays.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_REPLY",
    "RELOAD_REQUEST",
    "SOCKET_NAME",
    "format_reply",
    "notify_worker",
    "parse_reply",
    "request",
    "socket_path",
]

SOCKET_NAME = "worker.sock"
RELOAD_REQUEST = b"reload\n"
DEFAULT_TIMEOUT = 2.0
MAX_REPLY = 256
_SUN_PATH_MAX = 107  # sizeof(sun_path) - 1


def socket_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/worker.sock``."""
    return Path(run_dir) / SOCKET_NAME


def format_reply(generation: int) -> bytes:
    """The worker's answer once it serves `generation`: ``ok <generation>\\n``."""
    return f"ok {generation}\n".encode()


def parse_reply(reply: bytes) -> int | None:
    """The generation of an ``ok <generation>\\n`` answer, None for anything else."""
    parts = reply.split(b" ")
    if len(parts) != 2 or parts[0] != b"ok" or not parts[1].endswith(b"\n"):
        return None
    number = parts[1][:-1]
    return int(number) if number.isdigit() and len(number) <= 20 else None


def _stderr_warning(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def notify_worker(
    run_dir: str | Path,
    generation: int,
    timeout: float = DEFAULT_TIMEOUT,
    warn: Callable[[str], None] = _stderr_warning,
) -> bool:
    """Ask the worker to reload and wait for it to serve `generation`; True when it confirmed.

    Returns False quietly when no worker listens, and False after calling `warn` when the worker
    does not answer within `timeout` seconds or answers something else.
    """
    path = socket_path(run_dir)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            _connect(sock, path)
        except (FileNotFoundError, ConnectionRefusedError):
            return False  # no worker running
        except TimeoutError:
            warn(f"the worker did not accept a connection on {path} within {timeout:g} s")
            return False
        except OSError as exc:
            warn(f"cannot reach the worker on {path}: {exc.strerror or exc}")
            return False
        reply = b""
        try:
            sock.sendall(RELOAD_REQUEST)
            while not reply.endswith(b"\n") and len(reply) < MAX_REPLY:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(MAX_REPLY - len(reply))
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            warn(f"the worker did not confirm the reload within {timeout:g} s; it may serve an old state")
            return False
        except OSError as exc:
            warn(f"lost the worker on {path}: {exc.strerror or exc}")
            return False
    served = parse_reply(reply)
    if served is None:
        shown = reply.decode("ascii", "backslashreplace").strip() or "nothing"
        warn(f"the worker answered {shown!r} instead of 'ok <generation>'; it may serve an old state")
        return False
    if served < generation:
        warn(f"the worker serves generation {served}, older than {generation}")
        return False
    return True


def request(run_dir: str | Path, line: bytes, timeout: float = 2.0) -> bytes:
    """Send one request line to the worker and return its whole answer (OSError when none runs)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        _connect(sock, socket_path(run_dir))
        sock.sendall(line)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _connect(sock: socket.socket, path: Path) -> None:
    """Connect to `path`, through ``/proc/self/fd`` when it is too long for ``sun_path``."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        sock.connect(os.fsencode(path))
        return
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/{path.name}")
    finally:
        os.close(dir_fd)
