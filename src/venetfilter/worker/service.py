"""The worker service: runtime state -> address table -> verdicts on one NFQUEUE.

Reloads (control socket, SIGHUP, or a changed state.json noticed within a second) build the new
table aside and swap it in at once (`AddressTable.load`): a packet is judged by the old table or the
new one, and once `reload` has answered, by the new one only. A state that cannot be read leaves
the old one in force and is reported.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config.runtime import load_state, state_path, table_entries
from ..core import AddressTable, Verdict
from .callback import VerdictCallback
from .control import ControlServer
from .droplog import DropLog
from .metrics import MetricsServer
from .nfqueue import NfqueueBackend
from .queue_stats import read_queue_stats

__all__ = ["Worker", "WorkerOptions"]

logger = logging.getLogger("venetfilter.worker")


@dataclass(frozen=True)
class WorkerOptions:
    run_dir: Path
    queue: int = 0
    fail_open: bool = False
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics endpoint; 0: any free port
    log_rate: float = 10.0  # drop log lines per second


class Worker:
    """Serves one queue until `stop()` (or SIGTERM/SIGINT when `run` installs the handlers)."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.table = AddressTable()
        self.generation = -1
        self.reloads = 0
        self.reload_errors = 0
        self._links: dict[int, str] = {}
        self._state_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()
        self._droplog = DropLog(rate=options.log_rate, burst=max(1, int(options.log_rate * 2)))
        self._callback = VerdictCallback(self.table, self._on_drop)
        self._backend: NfqueueBackend | None = None
        self._stopping = threading.Event()
        self._reload_requested = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.metrics_port: int | None = None

    # -- state -------------------------------------------------------------------------------------

    def reload(self) -> int:
        """Put the runtime state on disk in force; returns its generation."""
        with self._reload_lock:
            path = state_path(self.options.run_dir)
            try:
                stamp = _stamp(path)
                state = load_state(self.options.run_dir)
                self.table.load(table_entries(state))
            except Exception as error:
                self.reload_errors += 1
                logger.error("reload failed, the previous state stays in force: %s", error)
                raise
            self._links = {c.ifindex: ctid for ctid, c in state.containers.items()}
            self._state_stamp = stamp
            if state.generation != self.generation:
                logger.info("serving generation %d: %d containers", state.generation, len(state.containers))
            self.generation = state.generation
            self.reloads += 1
            return self.generation

    def _reload_if_changed(self) -> None:
        if _stamp(state_path(self.options.run_dir)) != self._state_stamp:
            try:
                self.reload()
            except Exception:
                self._state_stamp = _stamp(state_path(self.options.run_dir))  # report once per change

    # -- counters ----------------------------------------------------------------------------------

    def _on_drop(self, verdict: Verdict, header: bytes, indev: int, outdev: int) -> None:
        charged = outdev if verdict is Verdict.DROP_DESTINATION or indev not in self._links else indev
        self._droplog.drop(self._links.get(charged), verdict, header, indev, outdev)

    def stats(self) -> dict:
        """Everything the worker counts, as plain data (the control socket sends it as JSON)."""
        queues = read_queue_stats()
        mine = queues.get(self.options.queue)
        return {
            "generation": self.generation,
            "queue": self.options.queue,
            "packets": self._callback.packets,
            "errors": self._callback.errors,
            "reloads": self.reloads,
            "reload_errors": self.reload_errors,
            "drops_not_logged": self._droplog.suppressed,
            "enobufs": self._backend.enobufs if self._backend else 0,
            "containers": {
                ctid: {verdict.name: count for verdict, count in counts.items()}
                for ctid, counts in self.table.counters().items()
            },
            "queues": {
                str(q.queue): {"queue_dropped": q.queue_dropped, "user_dropped": q.user_dropped, "waiting": q.waiting}
                for q in ([mine] if mine else [])
            },
        }

    # -- running -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to return (safe from a signal handler or another thread)."""
        self._stopping.set()
        self._wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already awake

    def run(self, install_signal_handlers: bool = True) -> None:
        """Bind the queue and give verdicts until stopped."""
        self.reload()
        self._backend = NfqueueBackend(self.options.queue, self._callback, fail_open=self.options.fail_open)
        control = metrics = None
        try:
            control = ControlServer(self.options.run_dir, self.reload, self.stats)
            if self.options.metrics_port is not None:
                metrics = MetricsServer(self.options.metrics_address, self.options.metrics_port, self.stats)
                self.metrics_port = metrics.port
            if install_signal_handlers:
                signal.signal(signal.SIGTERM, lambda *_: self.stop())
                signal.signal(signal.SIGINT, lambda *_: self.stop())
                signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
            logger.info("worker bound to queue %d, generation %d", self.options.queue, self.generation)
            while not self._stopping.is_set():
                self._backend.serve_once(1.0, self._wake_r)
                self._drain_wakeups()
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload_if_changed_or_forced()
                else:
                    self._reload_if_changed()
        finally:
            for server in (metrics, control):
                if server is not None:
                    server.close()
            self._backend.close()
            logger.info("worker stopped")

    def _reload_if_changed_or_forced(self) -> None:
        try:
            self.reload()
        except Exception:
            pass  # logged and counted by reload()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_ino)
