"""The end-to-end topology: a hardware node, two containers started with `venetctl start`, an outside
host behind an uplink; rules installed and a worker running, all in namespaces made for the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from venetfilter.host import apply_sysctls
from venetfilter.lifecycle import Node
from venetfilter.worker import request

UPLINK_V4, OUTSIDE_V4 = "198.51.100.1", "198.51.100.2"
UPLINK_V6, OUTSIDE_V6 = "2001:db8:ffff::1", "2001:db8:ffff::2"
ADDRESSES = {"101": ("192.0.2.1", "2001:db8:1::1"), "102": ("192.0.2.2", "2001:db8:2::2")}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Stack:
    host: str
    outside: str
    containers: dict[str, str]  # ctid -> netns
    conf_dir: Path
    run_dir: Path
    worker: subprocess.Popen | None = None
    worker_args: list[str] = field(default_factory=list)
    mode: str = "default"

    @property
    def table(self) -> str:
        """Our nftables table as nft names it: netdev in the default mode, inet in the queue mode."""
        return "netdev venetfilter" if self.mode == "default" else "inet venetfilter"

    @property
    def refusing_chain(self) -> str:
        """The chain a container's refused packets leaving it go through (nft's family table chain)."""
        return f"{self.table} refused_in" if self.mode == "default" else f"{self.table} leaving"

    def venetctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`venetctl ARGS` run on the hardware node (inside the host namespace)."""
        command = ["ip", "netns", "exec", self.host, sys.executable, "-m", "venetfilter.cli",
                   "--conf-dir", str(self.conf_dir), "--run-dir", str(self.run_dir), *args]
        result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"venetctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def start_worker(self, *extra: str) -> None:
        """Start the worker with `extra` options (the stack's mode unless they name one)."""
        if "--mode" not in extra:
            extra = ("--mode", self.mode, *extra)
        self.worker_args = list(extra)
        with open(self.run_dir / "worker.log", "ab") as log:  # the worker keeps its own copy
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "venetfilter.cli", "worker", "--netns", self.host,
                 "--run-dir", str(self.run_dir), "--log-rate", "1000", *extra],
                stdout=log, stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise AssertionError(f"worker exited with {self.worker.returncode}: {self.worker_log()}")
            try:
                if request(self.run_dir, b"stats\n", timeout=1).startswith(b"{"):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("worker did not come up")

    def stop_worker(self, sig: int = 15) -> int:
        assert self.worker is not None
        self.worker.send_signal(sig)
        code = self.worker.wait(timeout=10)
        self.worker = None
        return code

    def node(self) -> Node:
        """The library's view of this node (acting in the node's namespaces, from this process)."""
        return Node(self.conf_dir, self.run_dir, host_netns=self.host)

    def stats(self) -> dict:
        return json.loads(request(self.run_dir, b"stats\n"))

    def counter(self, ctid: str, verdict: str) -> int:
        return self.stats()["containers"].get(ctid, {}).get(verdict, 0)

    def worker_log(self) -> str:
        return (self.run_dir / "worker.log").read_text(errors="replace")


def build(make_netns, tmp_path: Path, *, mode: str = "default", fail_open: bool = False, worker: bool = True) -> Stack:
    """The topology, containers started; the worker (which installs the kernel table) unless not `worker`."""
    host, outside = make_netns("vfh"), make_netns("vfo")
    containers = {ctid: make_netns("vfc") for ctid in ADDRESSES}
    stack = Stack(host, outside, containers, tmp_path / "conf", tmp_path / "run")
    stack.run_dir.mkdir(mode=0o700)
    # the uplink: the outside host's default route points at the node
    ip("-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside)
    ip("-n", host, "addr", "add", f"{UPLINK_V4}/24", "dev", "up0")
    ip("-n", host, "addr", "add", f"{UPLINK_V6}/64", "dev", "up0", "nodad")
    ip("-n", outside, "addr", "add", f"{OUTSIDE_V4}/24", "dev", "eth0")
    ip("-n", outside, "addr", "add", f"{OUTSIDE_V6}/64", "dev", "eth0", "nodad")
    ip("-n", outside, "link", "set", "eth0", "up")
    # the node's end last: its first neighbour solicitation then finds the other end up (else it is
    # lost and IPv6 waits a whole retransmission second)
    ip("-n", host, "link", "set", "up0", "up")
    ip("-n", outside, "route", "add", "default", "via", UPLINK_V4)
    ip("-n", outside, "-6", "route", "add", "default", "via", UPLINK_V6)
    _wait_for_uplink(host)
    # what `venetctl sysctl --apply`, `set --ipadd ... --save` and `start` do, done in-process (the
    # library takes the namespaces as arguments): a stack a second faster than through subprocesses
    apply_sysctls(host)
    node = stack.node()
    for ctid, (v4, v6) in ADDRESSES.items():
        node.set(ctid, [v4, v6], save=True)
        node.start(ctid, netns=containers[ctid])
    stack.mode = mode
    if worker:
        stack.start_worker("--mode", mode, *(["--fail-open"] if fail_open else []))
    return stack


def _wait_for_uplink(host: str) -> None:
    """Until the node reaches the outside host on both families (IPv6 needs its addresses settled)."""
    from tests.e2e.traffic import ping

    deadline = time.monotonic() + 5
    for source, destination in ((UPLINK_V4, OUTSIDE_V4), (UPLINK_V6, OUTSIDE_V6)):
        while not ping(host, source, destination, timeout=0.5):
            if time.monotonic() > deadline:
                raise AssertionError(f"the test uplink does not work: {source} -> {destination}")


def teardown(stack: Stack) -> None:
    if stack.worker is not None:
        stack.worker.kill()
        stack.worker.wait()
    node = stack.node()
    for ctid in stack.containers:
        try:
            node.stop(ctid)
        except Exception:  # noqa: BLE001 (a test may have broken it on purpose; the namespaces go anyway)
            stack.venetctl("stop", ctid, check=False)


@pytest.fixture
def stack(make_netns, tmp_path):
    """The whole stack in the default mode, fail closed, a worker running."""
    built = build(make_netns, tmp_path)
    try:
        yield built
    finally:
        teardown(built)


@pytest.fixture
def queue_stack(make_netns, tmp_path):
    """The whole stack in the queue mode: every container packet goes through the worker."""
    built = build(make_netns, tmp_path, mode="queue")
    try:
        yield built
    finally:
        teardown(built)


@pytest.fixture(params=["default", "queue"])
def any_stack(request, make_netns, tmp_path):
    """The whole stack in each mode in turn."""
    built = build(make_netns, tmp_path, mode=request.param)
    try:
        yield built
    finally:
        teardown(built)


@pytest.fixture(autouse=True)
def _root_only():
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (network namespaces, iptables)")


def on_node(stack: Stack, *command: str) -> str:
    """`command` run on the hardware node (inside the stack's host namespace); its output."""
    return subprocess.run(["ip", "netns", "exec", stack.host, *command], check=True, capture_output=True,
                          text=True).stdout


def wait_for(condition, limit: float = 3.0, what: str = "condition") -> float:
    """Poll `condition` until it holds (AssertionError after `limit` seconds); the time it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, f"timed out waiting for {what}"
        time.sleep(0.005)
    return time.monotonic() - started
