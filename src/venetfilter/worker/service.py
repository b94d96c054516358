"""The worker service: runtime state -> address table -> kernel table, and the reasons of its drops.

At start the worker binds its log group or queues and installs its layout (`venetfilter.rules`).
In the default mode the kernel decides every packet (per-link chains) and copies the refused ones
to the worker's NFLOG group (`nflog`), which classifies them with the core to count and log the
reason. In the queue mode every container packet is queued to the worker, which gives the verdict;
each queue is served by its own thread (the first by the calling thread), all over one table; the
receive and verdict system calls run without the GIL, so the threads share the CPUs. A thread that
fails stops the whole worker: the kernel then drops (fail closed) what the queues still hold; the
table stays.

Reloads (control socket, SIGHUP, a changed state.json noticed within PERIOD, or a container link
that appeared or was renamed) build the new table aside and swap it in at once
(`AddressTable.load`). Queue mode: between the removal of the sets' stale elements and the addition
of the new ones. Default mode: then the kernel table is installed again, in one transaction. Once
`reload` has answered, the new state is in force in the kernel and in the worker. A state that
cannot be read leaves the old one in force and is reported.

A housekeeping thread looks after the state file and, every GUARD_PERIOD, after the kernel
(`Guard`): a table or set element someone else removed or changed is put back and counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config.ctid import DEFAULT_LINK_PREFIX
from ..config.runtime import load_state, state_path, table_entries
from ..core import AddressTable, Verdict
from ..errors import QueueBindError
from ..rules import (
    DEFAULT_JUDGE_RATE,
    Element,
    Guard,
    Layout,
    Mode,
    QueueSpec,
    RulesError,
    desired_elements,
    installed_layout,
    read_elements,
    read_over_rate,
    sync,
    update,
)
from .backends import Backend, BackendName, default_backend, open_backend
from .control import ControlServer, request
from .droplog import DropLog
from .linkwatch import LinkWatch
from .metrics import MetricsServer
from .nflog import NflogBackend
from .queue_stats import read_queue_stats
from .sdnotify import notify

__all__ = ["Worker", "WorkerOptions"]

logger = logging.getLogger("venetfilter.worker")
PERIOD = 0.2  # seconds between two looks after the state file and the drop log
OVER_RATE = "DROP_RATE_LIMITED"  # the stats' name of the packets dropped over the judging rate
GUARD_PERIOD = 0.5  # seconds between two looks after the kernel


@dataclass(frozen=True)
class WorkerOptions:
    run_dir: Path
    conf_dir: Path | None = None  # the node's config dir (None: the default)
    queue: int = 0
    queues: int = 1  # serve queue .. queue + queues - 1 (the table's queue range)
    backend: BackendName | None = None  # None: the fastest one available
    fail_open: bool = False
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics endpoint; 0: any free port
    log_rate: float = 10.0  # drop log lines per second
    mode: Mode = "default"
    link_prefix: str = DEFAULT_LINK_PREFIX
    guard: bool = True  # look after the kernel table every GUARD_PERIOD and restore it
    cpu_fanout: bool = False  # several queues: chosen by CPU, not by flow
    judge_rate: int = DEFAULT_JUDGE_RATE  # default mode: refused packets judged per second and link

    @property
    def layout(self) -> Layout:
        """The kernel layout these options ask for."""
        balance = (self.queue, self.queue + self.queues - 1) if self.queues > 1 else None
        spec = QueueSpec(self.queue, balance, cpu_fanout=self.cpu_fanout and balance is not None, fail_open=self.fail_open)
        return Layout(self.link_prefix, self.mode, spec, self.judge_rate)


class Worker:
    """Serves its queues until `stop()` (or SIGTERM/SIGINT when `run` installs the handlers)."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.layout = options.layout
        self.table = AddressTable()
        self.generation = -1
        self.reloads = 0
        self.reload_errors = 0
        self._links: dict[int, str] = {}
        self._wanted: set[Element] = set()
        self._kernel_ready = False  # the table is installed: reloads sync its sets
        self.guard = Guard(self.layout, lambda: self._wanted)
        self.sync_errors = 0
        self.links: LinkWatch | None = None
        self.deaths = 0  # containers whose link vanished: noticed and stopped
        self._state_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()
        self._droplog = DropLog(rate=options.log_rate, burst=max(1, int(options.log_rate * 2)))
        self.backend_name: BackendName = options.backend or default_backend()
        self._backends: list[Backend] = []
        self._stopping = threading.Event()
        self._reload_requested = False
        self._wakeups = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in range(options.queues)]
        self._failure: BaseException | None = None
        self._next_look = 0.0
        self.metrics_port: int | None = None

    # -- state -------------------------------------------------------------------------------------

    def reload(self) -> int:
        """Put the runtime state on disk in force; returns its generation. On failure the state in
        force stays, and the error is logged, counted and raised."""
        try:
            return self._load()
        except Exception as error:
            self.reload_errors += 1
            logger.error("reload failed, the previous state stays in force: %s", error)
            raise

    def _load(self) -> int:
        with self._reload_lock:
            path = state_path(self.options.run_dir)
            stamp = _stamp(path)
            state = load_state(self.options.run_dir)
            entries = table_entries(state)
            wanted = desired_elements(entries)

            def swap() -> None:
                self.table.load(entries)
                self._links = {c.ifindex: ctid for ctid, c in state.containers.items()}
                self._wanted = wanted

            if self._kernel_ready:
                try:  # stale elements out, the new table in, new elements in
                    if self.layout.mode == "queue":
                        sync(wanted, between=swap)
                    else:  # the chains of the links that changed, in one transaction
                        installed = update(wanted, self.layout.link_prefix, between=swap)
                        if installed is not None:  # None: someone put a queue-mode table there
                            self.guard.expect(installed)
                except RulesError as error:  # the table is gone or broken: the guard reinstalls it
                    self.sync_errors += 1
                    logger.error("cannot update the kernel table: %s", error)
                    if self._wanted is not wanted:
                        swap()
            else:
                swap()
            self._state_stamp = stamp
            if state.generation != self.generation:
                logger.info("serving generation %d: %d containers", state.generation, len(state.containers))
                notify(f"STATUS=serving generation {state.generation}: {len(state.containers)} containers")
            if stamp is None and state.generation == 0 and self.generation > 0:
                logger.error("%s is gone: no container is known, their traffic is dropped", path)
            self.generation = state.generation
            self.reloads += 1
            return self.generation

    # -- counters ----------------------------------------------------------------------------------

    def _on_drop(self, verdict: Verdict, header: bytes, indev: int, outdev: int) -> None:
        charged = outdev if verdict is Verdict.DROP_DESTINATION or indev not in self._links else indev
        self._droplog.drop(self._links.get(charged), verdict, header, indev, outdev)

    def _kernel_accepts(self) -> dict[str, int]:
        """Packets the kernel passed, per container (its accept rules' counters; the queue mode's sets
        count nothing: the worker accepts there)."""
        try:
            elements = read_elements()
        except RulesError:
            return {}
        by_link: dict[int, int] = {}
        for (_, ifindex, _), (packets, _) in elements.items():  # the links set counts nothing: 0
            by_link[ifindex] = by_link.get(ifindex, 0) + packets
        return self._per_container(by_link)

    def _per_container(self, by_link: dict[int, int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ifindex, packets in by_link.items():
            ctid = self._links.get(ifindex)
            if ctid is not None:
                counts[ctid] = counts.get(ctid, 0) + packets
        return counts

    def stats(self) -> dict:
        """Everything the worker counts, as plain data (the control socket sends it as JSON).

        A container's ACCEPT is what the kernel passed plus what the worker accepted (queue mode)."""
        kernel = read_queue_stats()
        backends = list(self._backends)
        accepted = self._kernel_accepts()
        over_rate = self._per_container(read_over_rate())
        containers = {}
        for ctid, counts in self.table.counters().items():
            view = {verdict.name: count for verdict, count in counts.items()}
            view[Verdict.ACCEPT.name] += accepted.get(ctid, 0)
            view[OVER_RATE] = over_rate.get(ctid, 0)
            containers[ctid] = view
        return {
            "generation": self.generation,
            "backend": self.backend_name if self.layout.mode == "queue" else "nflog",
            "mode": self.layout.mode,
            "layout": self.layout.describe(),
            "queue": self.options.queue,
            "packets": sum(b.packets for b in backends),
            "errors": sum(b.errors for b in backends),
            "verdict_errors": sum(getattr(b, "verdict_errors", 0) for b in backends),
            "id_gaps": sum(getattr(b, "gaps", 0) for b in backends),
            "raced": sum(getattr(b, "raced", 0) for b in backends),
            "reloads": self.reloads,
            "reload_errors": self.reload_errors,
            "sync_errors": self.sync_errors,
            "unknown_links": self.table.unknown_links,
            "deaths": self.deaths,
            "guard": {"enabled": self.options.guard, **vars(self.guard.counters),
                      "links_regrouped": self.links.regrouped if self.links else 0},
            "drops_not_logged": self._droplog.suppressed,
            "enobufs": sum(b.enobufs for b in backends),
            "containers": containers,
            "queues": {
                str(q.queue): {"queue_dropped": q.queue_dropped, "user_dropped": q.user_dropped, "waiting": q.waiting}
                for q in kernel.values()
                if q.queue in self._queue_numbers()
            },
        }

    # -- running -----------------------------------------------------------------------------------

    def _queue_numbers(self) -> range:
        """The queues served (queue mode), or the one log group (default mode)."""
        count = self.options.queues if self.layout.mode == "queue" else 1
        return range(self.options.queue, self.options.queue + count)

    def stop(self) -> None:
        """Ask `run` to return (safe from a signal handler or another thread)."""
        self._stopping.set()
        self._wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake()

    def _wake(self) -> None:
        for _, write_end in self._wakeups:
            try:
                os.write(write_end, b"x")
            except BlockingIOError:
                pass  # already awake

    def _refuse_a_second_worker(self) -> None:
        """`QueueBindError` when another worker serves this run dir, or the table in place with a
        log group or queue someone holds: two workers would reinstall the table in turn."""
        with contextlib.suppress(OSError):
            request(self.options.run_dir, b"stats\n", timeout=1.0)
            raise QueueBindError(f"another worker serves {self.options.run_dir} (its control socket answers)")
        try:
            installed = installed_layout(self.layout.link_prefix)
        except RulesError:  # a table that cannot be read back (dormant, broken): ours will replace it
            return
        if installed is None or installed.queue.queues == self.layout.queue.queues:
            return  # no table, or ours: binding the same group or queue tells
        if installed.mode == "queue":
            held = set(installed.queue.queues) & set(read_queue_stats())
        else:
            try:
                NflogBackend(installed.queue.queue, self.table, self._on_drop).close()
                held = set()
            except QueueBindError:
                held = {installed.queue.queue}
        if held:
            raise QueueBindError(f"another worker serves the kernel table ({installed.describe()}): "
                                 "stop it first")

    def run(self, install_signal_handlers: bool = True) -> None:
        """Bind the queues and give verdicts until stopped; re-raises what stopped a queue thread."""
        self._refuse_a_second_worker()
        self._load()
        control = metrics = None
        threads: list[threading.Thread] = []
        try:
            if self.options.metrics_port is not None:  # first: a busy port fails before anything is bound
                metrics = MetricsServer(self.options.metrics_address, self.options.metrics_port, self.stats)
                self.metrics_port = metrics.port
            for queue in self._queue_numbers():
                if self.layout.mode == "default":
                    self._backends.append(NflogBackend(queue, self.table, self._on_drop))
                else:
                    self._backends.append(open_backend(
                        self.backend_name, queue, self.table, self._on_drop, fail_open=self.options.fail_open
                    ))
            with self._reload_lock:  # the queues are bound: now send them packets
                self.guard.install()
                self._kernel_ready = True
            logger.info("kernel table installed: %s", self.layout.describe())
            self.links = LinkWatch(self.layout.link_prefix, on_deleted=self._link_deleted, known=lambda: self._links,
                                   on_changed=self._link_changed)
            if self.options.guard:
                thread = threading.Thread(target=self._guard_loop, name="venetfilter-guard", daemon=True)
                thread.start()
                threads.append(thread)
            control = ControlServer(self.options.run_dir, self.reload, self.stats)
            if install_signal_handlers:
                # a signal wakes the first queue's loop at once, whichever thread the kernel picks
                signal.set_wakeup_fd(self._wakeups[0][1], warn_on_full_buffer=False)
                signal.signal(signal.SIGTERM, lambda *_: self.stop())
                signal.signal(signal.SIGINT, lambda *_: self.stop())
                signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
            for index in range(1, len(self._backends)):
                thread = threading.Thread(target=self._serve_queue, args=(index,), name=f"venetfilter-queue-{index}")
                thread.start()
                threads.append(thread)
            if self.layout.mode == "queue":
                logger.info("worker (%s) bound to queues %s, generation %d", self.backend_name,
                            list(self._queue_numbers()), self.generation)
            else:
                logger.info("worker reading log group %d, generation %d", self.options.queue, self.generation)
            notify(f"READY=1\nSTATUS=serving generation {self.generation} on queues {self.options.queue}-"
                   f"{self.options.queue + self.options.queues - 1}")
            self._serve_queue(0)
        finally:
            notify("STOPPING=1\nSTATUS=stopping")
            if install_signal_handlers:
                signal.set_wakeup_fd(-1)
            self.stop()
            for thread in threads:
                thread.join()
            for server in (metrics, control, self.links):
                if server is not None:
                    server.close()
            for backend in self._backends:
                backend.close()
            logger.info("worker stopped")
        if self._failure is not None:
            raise self._failure

    def _serve_queue(self, index: int) -> None:
        """The loop of one queue; the first one also looks after reloads."""
        backend, wakeup = self._backends[index], self._wakeups[index][0]
        try:
            while not self._stopping.is_set():
                if backend.serve_once(PERIOD, wakeup):
                    _drain(wakeup)
                if index == 0:
                    self._look_after_state()
        except BaseException as error:  # noqa: BLE001 (handed to run(), which re-raises it)
            logger.error("queue %d failed: %s", backend.queue_num, error)
            self._failure = self._failure or error
            self.stop()

    def _link_deleted(self, ifindex: int, name: str) -> None:
        """A container's link vanished (its namespace deleted, or its venet0): it is dead. Undo the
        rest of its network (proxy entries, a namespace start made) and drop its record, then
        reload. Called from the link watcher's thread."""
        ctid = self._links.get(ifindex)
        if ctid is None:
            return
        from ..lifecycle import Node  # noqa: PLC0415 (the worker needs it only when a container dies)

        try:
            node = Node(self.options.conf_dir, self.options.run_dir, notify=False)
            if node.forget(ctid, ifindex):
                self.deaths += 1
                logger.warning("container %s died (its link %s is gone): marked stopped, its proxy entries removed",
                               ctid, name)
                self.request_reload()
        except Exception as error:  # noqa: BLE001 (never let a cleanup kill the watcher)
            logger.error("container %s died, but its cleanup failed: %s", ctid, error)

    def _link_changed(self, ifindex: int, name: str) -> None:
        """A container link appeared or was renamed: the default mode's chains name links by their
        name, so they are installed again (an unknown link gets chains that refuse everything)."""
        if self.layout.mode == "default":
            logger.info("container link %s (#%d) appeared or was renamed: chains updated", name, ifindex)
            self.request_reload()

    def _guard_loop(self) -> None:
        """Every GUARD_PERIOD: the kernel table and its sets as they should be, or put back."""
        while not self._stopping.wait(GUARD_PERIOD):
            with self._reload_lock:
                self.guard.check()

    def _look_after_state(self) -> None:
        now = time.monotonic()
        if not self._reload_requested and now < self._next_look:
            return
        self._next_look = now + PERIOD
        if self._reload_requested:
            self._reload_requested = False
            with contextlib.suppress(Exception):  # logged and counted by reload()
                self.reload()
        elif _stamp(state_path(self.options.run_dir)) != self._state_stamp:
            try:
                self.reload()
            except Exception:
                self._state_stamp = _stamp(state_path(self.options.run_dir))  # reported once per change

    def close(self) -> None:
        for read_end, write_end in self._wakeups:
            os.close(read_end)
            os.close(write_end)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_ino)
