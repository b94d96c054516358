"""Microbenchmark of a reload in the default mode: the netdev table installed again, counters
carried over, for a node with 10 and 300 container links (root; a namespace of its own)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from venetfilter.netns import run_in_netns
from venetfilter.rules import Layout, our_links, replace


@pytest.fixture(params=[10, 300], ids=lambda n: f"{n}-links")
def node(request: pytest.FixtureRequest) -> Iterator[tuple[str, set]]:
    name = f"vfbench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        batch = "".join(f"link add vnf{i} type veth peer name p{i}\n" for i in range(request.param))
        subprocess.run(["ip", "-n", name, "-batch", "-"], input=batch, text=True, check=True)
        links = run_in_netns(name, lambda: our_links("vnf"))
        elements = set()
        for n, index in enumerate(sorted(links)):
            elements |= {(0, index, ""), (4, index, f"198.51.100.{n % 250 + 1}"), (6, index, f"2001:db8::{n + 1:x}")}
        yield name, elements
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_reload(benchmark, node) -> None:
    name, elements = node
    benchmark.pedantic(replace, args=(Layout("vnf"), elements, name), rounds=10, warmup_rounds=1)
