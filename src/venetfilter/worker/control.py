"""The worker's control socket (RUN_DIR/worker.sock): `reload` and `stats` requests, one per connection.

`reload\\n` -> `ok <generation>\\n` once the new state is in force, or `error <message>\\n`;
`stats\\n` -> one line of JSON. See venetfilter.config.notify for the client side of `reload`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from ..config.notify import format_reply, request, socket_path

__all__ = ["ControlServer", "request"]

logger = logging.getLogger("venetfilter.worker")
MAX_REQUEST = 64


class ControlServer:
    """Serves the control socket from a thread until `close()`."""

    def __init__(self, run_dir: str | Path, reload: Callable[[], int], stats: Callable[[], dict]) -> None:
        self.path = socket_path(run_dir)
        self._reload, self._stats = reload, stats
        os.makedirs(self.path.parent, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a dead worker
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(64)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="venetfilter-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            with conn:
                try:
                    conn.settimeout(1.0)
                    conn.sendall(self._answer(self._read_line(conn)))
                except OSError as error:
                    logger.info("control connection: %s", error)

    @staticmethod
    def _read_line(conn: socket.socket) -> bytes:
        data = b""
        while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
            chunk = conn.recv(MAX_REQUEST - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _answer(self, request: bytes) -> bytes:
        try:
            if request == b"reload\n":
                return format_reply(self._reload())
            if request == b"stats\n":
                return json.dumps(self._stats(), sort_keys=True).encode() + b"\n"
            return b"error unknown request\n"
        except Exception as error:  # never let a request kill the thread
            logger.exception("control request %r failed", request)
            return f"error {' '.join(str(error).split())}\n".encode()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
