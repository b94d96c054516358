"""The naive baseline worker: netfilterqueue, and a Python callback that parses every packet with
`ipaddress` objects and checks Python sets (tests/oracle.py's `NaiveClassifier`).

    .venv/bin/python bench/naive_worker.py --run-dir DIR [--netns NS] [--queue N]

It reads the same runtime state as the real worker (RUN_DIR/state.json, once at start) and gives
the same verdicts, one per packet, with the real worker's `Ours` semantics: a packet queued before
routing came in on a container link, one queued after it goes out on one (the kernel table matched
the link by name), so an unknown link there is DROP_UNKNOWN_LINK. Serve it the queue of the
queue-everything layout (`venetctl rules install --mode queue`). The queue settings are the real
netfilterqueue backend's (4096 packets, 128 bytes copied, an 8 MiB socket buffer), so only the
per-packet Python differs. It
answers `stats` on RUN_DIR/worker.sock like the real worker (`venetctl stats --json` works), with
`packets` and per-container verdict counts. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netfilterqueue import COPY_PACKET, NetfilterQueue  # noqa: E402

from venetfilter import Verdict  # noqa: E402
from venetfilter.config.runtime import load_state  # noqa: E402
from venetfilter.netns import enter_netns  # noqa: E402
from venetfilter.worker.callback import ours_at_hook  # noqa: E402
from venetfilter.worker.control import ControlServer  # noqa: E402
from venetfilter.worker.queue_stats import read_queue_stats  # noqa: E402

try:
    from tests.oracle import NaiveClassifier  # noqa: E402
except ImportError:  # older checkouts kept it in bench/naive.py
    from bench.naive import NaiveClassifier  # type: ignore[no-redef]  # noqa: E402


class NaiveWorker:
    def __init__(self, run_dir: Path, queue: int) -> None:
        self.run_dir, self.queue = run_dir, queue
        self.classifier = NaiveClassifier()
        self.generation = self.reload()
        self.packets = 0
        self.counts: dict[tuple[str | None, Verdict], int] = {}

    def reload(self) -> int:
        state = load_state(self.run_dir)
        classifier = NaiveClassifier()
        for ctid, container in state.containers.items():
            classifier.set_container(ctid, container.ifindex, [str(a.address) for a in container.addresses])
        self.classifier = classifier
        self.generation = state.generation
        return state.generation

    def __call__(self, packet) -> None:  # noqa: ANN001 (netfilterqueue.Packet)
        self.packets += 1
        indev, outdev = packet.indev, packet.outdev
        classifier = self.classifier
        verdict = classifier.classify(packet.get_payload(), indev, outdev, ours_at_hook(packet.hook))
        if verdict is Verdict.ACCEPT:
            packet.accept()
        else:
            packet.drop()
        ctid = classifier.links.get(indev) or classifier.links.get(outdev)
        key = (ctid, verdict)
        self.counts[key] = self.counts.get(key, 0) + 1

    def stats(self) -> dict:
        containers: dict[str, dict[str, int]] = {}
        for (ctid, verdict), count in list(self.counts.items()):
            if ctid is not None:
                containers.setdefault(ctid, {})[verdict.name] = count
        kernel = read_queue_stats()
        return {
            "backend": "naive",
            "generation": self.generation,
            "queue": self.queue,
            "packets": self.packets,
            "errors": 0,
            "containers": containers,
            "queues": {str(q.queue): {"queue_dropped": q.queue_dropped, "user_dropped": q.user_dropped,
                                      "waiting": q.waiting} for q in kernel.values() if q.queue == self.queue},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--netns", help="bind the queue in this network namespace (NAME|PATH|PID)")
    parser.add_argument("--queue", type=int, default=0)
    args = parser.parse_args(argv)
    if args.netns:
        enter_netns(args.netns)  # before any thread or socket exists
    worker = NaiveWorker(args.run_dir, args.queue)
    nfq = NetfilterQueue()
    nfq.bind(args.queue, worker, max_len=4096, mode=COPY_PACKET, range=128, sock_len=8 * 1024 * 1024)
    # the control thread must not take SIGTERM: the main thread's recv() has to see the EINTR
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    control = ControlServer(args.run_dir, worker.reload, worker.stats)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    sock = socket.socket(fileno=os.dup(nfq.get_fd()))
    sock.setsockopt(270, 5, 1)  # SOL_NETLINK, NETLINK_NO_ENOBUFS: as the real backends
    sock.close()
    def on_signal(*_: object) -> None:
        raise KeyboardInterrupt  # leaves nfq.run() (between packets when recv() is interrupted)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"naive worker bound to queue {args.queue}, generation {worker.generation}", file=sys.stderr, flush=True)
    try:
        while True:
            nfq.run(block=True)
    except KeyboardInterrupt:
        pass
    finally:
        control.close()
        nfq.unbind()
    print(f"naive worker: {worker.packets} packets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
