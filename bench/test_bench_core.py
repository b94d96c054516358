"""Microbenchmarks of the per-packet path: Cython vs the pure twin vs the naive classifier.

Run with `make bench`; `bench/report.py` turns the JSON into the ratios the README quotes.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import textwrap
from array import array

import pytest

from tests.oracle import NaiveClassifier
from tests.packets import ipv4, ipv6
from venetfilter import Verdict
from venetfilter.core import CAddressTable, PyAddressTable

LINK, UPLINK = 7, 2
CLASSIFIERS = {"cython": CAddressTable, "python": PyAddressTable, "naive": NaiveClassifier}
PACKETS = {
    ("v4", "accept"): (ipv4("192.0.2.1", "198.51.100.1", b"x" * 36), Verdict.ACCEPT),
    ("v4", "drop"): (ipv4("192.0.2.99", "198.51.100.1", b"x" * 36), Verdict.DROP_SOURCE),
    ("v6", "accept"): (ipv6("2001:db8::1", "2001:db8:ffff::1", b"x" * 16), Verdict.ACCEPT),
    ("v6", "drop"): (ipv6("2001:db8::99", "2001:db8:ffff::1", b"x" * 16), Verdict.DROP_SOURCE),
}
SMALL = ["192.0.2.1", "2001:db8::1"] + [f"192.0.2.{i}" for i in range(2, 6)] + [f"2001:db8::{i}" for i in range(2, 6)]
BATCH = 1024


def million() -> list[str]:
    """1,000,000 addresses, half of each family, with the benchmark's own two among them."""
    v4 = [str(ipaddress.IPv4Address(0x0A000000 + i)) for i in range(499_999)]
    v6 = [str(ipaddress.IPv6Address((0x20010DB8_00010000 << 64) + i * 7919)) for i in range(499_999)]
    return v4 + v6 + ["192.0.2.1", "2001:db8::1"]


def make(kind: str, addresses: list[str]):
    table = CLASSIFIERS[kind]()
    table.set_container("101", LINK, addresses)
    return table


@pytest.mark.parametrize("kind", list(CLASSIFIERS))
@pytest.mark.parametrize("family, path", list(PACKETS))
def test_classify(benchmark, kind, family, path):
    """One classify call from Python, IPv4 and IPv6, accept and drop paths."""
    benchmark.group = f"classify-{family}-{path}"
    packet, expected = PACKETS[family, path]
    table = make(kind, SMALL)
    assert table.classify(packet, LINK, UPLINK) is expected
    benchmark(table.classify, packet, LINK, UPLINK)


def batch_arguments(packet: bytes):
    data = packet * BATCH
    offsets = array("I", range(0, len(data) + 1, len(packet)))
    return data, offsets, array("I", [LINK] * BATCH), array("I", [UPLINK] * BATCH), bytearray(BATCH)


@pytest.mark.parametrize("kind", ["cython", "python"])
@pytest.mark.parametrize("family, path", list(PACKETS))
def test_classify_batch(benchmark, kind, family, path):
    """The batch path: 1,024 packets per call (divide the time by 1,024 for a packet)."""
    benchmark.group = f"batch{BATCH}-{family}-{path}"
    packet, expected = PACKETS[family, path]
    table = make(kind, SMALL)
    args = batch_arguments(packet)
    benchmark(table.classify_batch, *args)
    assert set(args[-1]) == {expected}


@pytest.fixture(scope="module")
def big_tables():
    return {"cython": make("cython", million())}


@pytest.mark.parametrize("size", ["10", "1M"])
@pytest.mark.parametrize("family", ["v4", "v6"])
def test_table_size(benchmark, big_tables, size, family):
    """Per-packet cost with 10 vs 1,000,000 addresses in the table (Cython)."""
    benchmark.group = f"size-{family}"
    packet, expected = PACKETS[family, "accept"]
    table = make("cython", SMALL) if size == "10" else big_tables["cython"]
    assert table.classify(packet, LINK, UPLINK) is expected
    benchmark(table.classify, packet, LINK, UPLINK)


MEMORY_PROBE = textwrap.dedent(
    """
    import gc, json, os, sys, time
    sys.path.insert(0, {root!r})
    from bench.test_bench_core import million
    from venetfilter.core import CAddressTable
    addresses = million()
    page = os.sysconf("SC_PAGE_SIZE")
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
    gc.collect()
    before = rss()
    table = CAddressTable()
    start = time.perf_counter()
    table.set_container("101", 7, addresses)
    seconds = time.perf_counter() - start
    gc.collect()
    print(json.dumps({{"bytes_per_address": (rss() - before) / len(table), "build_seconds": seconds}}))
    """
)


def test_table_memory_and_build_time(benchmark):
    """RSS delta per address and the time to build a 1,000,000-address table, each in a fresh process."""
    import json

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []

    def probe():
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(root=root)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))

    benchmark.group = "table-1M"
    benchmark.pedantic(probe, rounds=3, iterations=1)
    benchmark.extra_info["bytes_per_address"] = sorted(r["bytes_per_address"] for r in runs)[len(runs) // 2]
    benchmark.extra_info["build_seconds"] = sorted(r["build_seconds"] for r in runs)[len(runs) // 2]


@pytest.mark.parametrize("size", ["10", "1M"])
@pytest.mark.parametrize("family", ["v4", "v6"])
def test_table_size_spread(benchmark, big_tables, size, family):
    """The same comparison with 1,024 different owned sources per batch, spread over the table,
    so that the 1M table's lookups miss the CPU caches as real traffic would."""
    benchmark.group = f"size-spread-{family}"
    addresses = SMALL if size == "10" else million()
    table = make("cython", SMALL) if size == "10" else big_tables["cython"]
    own = [a for a in addresses if (":" in a) == (family == "v6")]
    sources = [own[(i * 7919) % len(own)] for i in range(BATCH)]
    build = ipv4 if family == "v4" else ipv6
    destination = "198.51.100.1" if family == "v4" else "2001:db8:ffff::1"
    packets = [build(s, destination, b"x" * 16) for s in sources]
    data = b"".join(packets)
    offsets = array("I", [0])
    for p in packets:
        offsets.append(offsets[-1] + len(p))
    out = bytearray(BATCH)
    args = (data, offsets, array("I", [LINK] * BATCH), array("I", [UPLINK] * BATCH), out)
    benchmark(table.classify_batch, *args)
    assert set(out) == {Verdict.ACCEPT}
