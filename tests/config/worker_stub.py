"""A tiny stand-in for the worker's reload socket, to test the client side of the protocol."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from venetfilter.config.notify import RELOAD_REQUEST, SOCKET_NAME, format_reply

__all__ = ["WorkerStub"]


class WorkerStub:
    """Serves ``RUN_DIR/worker.sock`` in a thread.

    Modes: ``ok`` answers ``ok <generation of state.json>``; ``stale`` answers ``ok 0``; ``garbage``
    answers nonsense; ``silent`` never answers; ``close`` hangs up without answering.
    """

    def __init__(self, run_dir: Path, mode: str = "ok") -> None:
        self.run_dir = Path(run_dir)
        self.mode = mode
        self.requests: list[bytes] = []
        self.path = self.run_dir / SOCKET_NAME
        self._stop = threading.Event()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a worker removes a stale socket before binding
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dir_fd = os.open(self.run_dir, os.O_PATH | os.O_DIRECTORY)
        try:  # through /proc/self/fd: pytest's tmp paths can be longer than sun_path
            self._sock.bind(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
            self._sock.listen(64)
        except OSError:
            self._sock.close()
            raise
        finally:
            os.close(dir_fd)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> WorkerStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                request = b""
                while not request.endswith(b"\n") and len(request) < 64:
                    chunk = conn.recv(64)
                    if not chunk:
                        break
                    request += chunk
                self.requests.append(request)
                if request != RELOAD_REQUEST:
                    conn.sendall(b"error bad request\n")
                elif self.mode == "ok":
                    state = json.loads((self.run_dir / "state.json").read_bytes())
                    conn.sendall(format_reply(state["generation"]))
                elif self.mode == "stale":
                    conn.sendall(format_reply(0))
                elif self.mode == "garbage":
                    conn.sendall(b"\xffwhat?\n")
                elif self.mode == "silent":
                    self._stop.wait(5)
                # "close": hang up
