"""Bulk address changes: 1, 64 and 4,096 addresses added to and removed from a running container,
live, through `venetfilter.lifecycle.Node` (what ``venetctl set`` does), and how long a change of
another container waits meanwhile.

    sudo .venv/bin/python bench/bulk.py [--repeats 3] [--sizes 1,64,4096]

Namespaces of its own (a node with an uplink, two containers), removed at the end; a worker runs
in the default mode, so each change also goes to the kernel sets and is confirmed by the worker.
Prints medians; the issue's target is under 2 s for 4,096 addresses either way.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from venetfilter.host import apply_sysctls  # noqa: E402
from venetfilter.lifecycle import Node  # noqa: E402


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def addresses(count: int, offset: int = 0) -> list[str]:
    """`count` documentation addresses, half IPv4 (198.18.0.0/15 is for benchmarks), half IPv6."""
    base4, base6 = ipaddress.IPv4Address("198.18.0.1"), ipaddress.IPv6Address("2001:db8:b::1")
    return [str(base4 + offset + i) if i % 2 == 0 else str(base6 + offset + i) for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1,64,4096")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tag = uuid.uuid4().hex[:6]
    node_ns, outside, ct1, ct2 = (f"vfk-{tag}-{n}" for n in ("node", "out", "ct1", "ct2"))
    made: list[str] = []
    worker = None
    with tempfile.TemporaryDirectory(prefix="venetfilter-bulk-") as tmp:
        conf, run = Path(tmp) / "conf", Path(tmp) / "run"
        try:
            for ns in (node_ns, outside, ct1, ct2):
                sh("ip", "netns", "add", ns)
                made.append(ns)
            sh("ip", "-n", node_ns, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside)
            sh("ip", "-n", node_ns, "addr", "add", "198.51.100.1/24", "dev", "up0")
            sh("ip", "-n", node_ns, "link", "set", "up0", "up")
            sh("ip", "-n", outside, "link", "set", "eth0", "up")
            apply_sysctls(node_ns)
            (conf).mkdir(parents=True)
            (conf / "venetfilter-node.conf").write_text('SKIP_ARPDETECT="no"\n')
            node = Node(conf, run, host_netns=node_ns)
            node.set("101", ["192.0.2.1"], save=True)
            node.set("102", ["192.0.2.2"], save=True)
            node.start("101", netns=ct1)
            node.start("102", netns=ct2)
            worker = subprocess.Popen(
                [sys.executable, "-m", "venetfilter.cli", "worker", "--netns", node_ns, "--run-dir", str(run),
                 "--conf-dir", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            while not (run / "worker.sock").exists():
                time.sleep(0.05)
            time.sleep(0.5)
            print(f"{'addresses':>9} | {'add s':>7} | {'remove s':>8} | {'other set waits s':>17}")
            print(f"{'-' * 9}-|-{'-' * 7}-|-{'-' * 8}-|-{'-' * 17}")
            rows = {}
            for size in sizes:
                adds, removes, waits = [], [], []
                for repeat in range(args.repeats):
                    batch = addresses(size, offset=repeat * 10_000)
                    waited: list[float] = []

                    def other() -> None:
                        time.sleep(0.01)  # once the bulk change holds the lock
                        began = time.monotonic()
                        Node(conf, run, host_netns=node_ns).set("102", ["192.0.2.20"])
                        waited.append(time.monotonic() - began)

                    thread = threading.Thread(target=other)
                    began = time.monotonic()
                    thread.start()
                    node.set("101", batch)
                    adds.append(time.monotonic() - began)
                    thread.join()
                    waits.append(waited[0])
                    node.set("102", delete=["192.0.2.20"])
                    began = time.monotonic()
                    node.set("101", delete=batch)
                    removes.append(time.monotonic() - began)
                rows[size] = (statistics.median(adds), statistics.median(removes), statistics.median(waits))
                a, r, w = rows[size]
                print(f"{size:>9} | {a:>7.3f} | {r:>8.3f} | {w:>17.3f}")
            big = rows.get(4096)
            if big:
                print(f"\ntarget: 4,096 addresses added and removed live in under 2 s each: "
                      f"{'met' if big[0] < 2 and big[1] < 2 else 'NOT met'} ({big[0]:.2f} s, {big[1]:.2f} s)")
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=10)
            for ns in reversed(made):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
