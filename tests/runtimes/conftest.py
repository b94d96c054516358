"""Fixtures for the runtime hook tests: a hardware node in a namespace of its own, no containers
started (the runtime under test starts them through its hook).

`node_stack`: the node, an outside host behind the uplink (198.51.100.1/2, 2001:db8:ffff::1/2)
and a worker, as in the end-to-end tests (`tests.e2e.conftest.Stack`, whose ``containers`` stays
empty). `bare_node`: the node namespace alone, no uplink, no worker, for the hooks' own checks; its
kernel table installed (``venetctl rules install``), since a hook refuses to start a container on
a node that has none.
Both stop every container left with a record on teardown, also when the test failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.e2e.conftest import OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, Stack, ip
from tests.e2e.traffic import ping
from venetfilter.config import host_ifname, load_state
from venetfilter.host import apply_sysctls, open_iproute

__all__ = [
    "OUTSIDE_V4",
    "OUTSIDE_V6",
    "Stack",
    "build_node",
    "hook",
    "leftovers",
    "process_in",
    "teardown_node",
]


def build_node(make_netns, tmp_path: Path, *, uplink: bool = True, worker: bool = True, table: bool = True) -> Stack:
    """A node namespace (sysctls applied), with the outside host on its uplink and a worker unless
    told not; without a worker, the kernel table installed by hand unless not `table`."""
    if os.geteuid() != 0:
        pytest.fail("the runtime hook tests need root (network namespaces, container runtimes)")
    stack = Stack(make_netns("vfh"), "", {}, tmp_path / "conf", tmp_path / "run")
    stack.conf_dir.mkdir()
    stack.run_dir.mkdir(mode=0o700)
    if uplink:
        stack.outside = make_netns("vfo")
        ip("-n", stack.host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", stack.outside)
        ip("-n", stack.host, "addr", "add", f"{UPLINK_V4}/24", "dev", "up0")
        ip("-n", stack.host, "addr", "add", f"{UPLINK_V6}/64", "dev", "up0", "nodad")
        ip("-n", stack.host, "link", "set", "up0", "up")
        ip("-n", stack.outside, "addr", "add", f"{OUTSIDE_V4}/24", "dev", "eth0")
        ip("-n", stack.outside, "addr", "add", f"{OUTSIDE_V6}/64", "dev", "eth0", "nodad")
        ip("-n", stack.outside, "link", "set", "eth0", "up")
        ip("-n", stack.outside, "route", "add", "default", "via", UPLINK_V4)
        ip("-n", stack.outside, "-6", "route", "add", "default", "via", UPLINK_V6)
        deadline = time.monotonic() + 5
        for source, destination in ((UPLINK_V4, OUTSIDE_V4), (UPLINK_V6, OUTSIDE_V6)):
            while not ping(stack.host, source, destination, timeout=0.5):
                assert time.monotonic() < deadline, f"the test uplink does not work: {source} -> {destination}"
    apply_sysctls(stack.host)
    if worker:
        stack.start_worker()
    elif table:
        stack.venetctl("rules", "install", "--netns", stack.host)
    return stack


def teardown_node(stack: Stack) -> None:
    """Stop the worker and every container that still has a record (the namespaces go with the test)."""
    if stack.worker is not None:
        stack.worker.kill()
        stack.worker.wait()
        stack.worker = None
    node = stack.node()
    for info in node.containers():
        if info.running:
            try:
                node.stop(info.ctid)
            except Exception:  # noqa: BLE001 (a test may have broken it on purpose)
                stack.venetctl("stop", info.ctid, check=False)


@pytest.fixture
def node_stack(make_netns, tmp_path) -> Iterator[Stack]:
    """The node with its uplink, the outside host and a worker; no container."""
    stack = build_node(make_netns, tmp_path)
    try:
        yield stack
    finally:
        teardown_node(stack)


@pytest.fixture
def bare_node(make_netns, tmp_path) -> Iterator[Stack]:
    """The node namespace alone: no uplink, no worker, no container."""
    stack = build_node(make_netns, tmp_path, uplink=False, worker=False)
    try:
        yield stack
    finally:
        teardown_node(stack)


def hook(stack: Stack, runtime_args: Sequence[str], stdin: str | bytes | dict) -> subprocess.CompletedProcess[str]:
    """``venetctl hook RUNTIME_ARGS`` run in the node's namespace as a runtime runs it: the state
    directories from the environment only, `stdin` (a dict is sent as JSON) on stdin."""
    data = json.dumps(stdin) if isinstance(stdin, dict) else stdin
    env = {"VENETFILTER_CONF_DIR": str(stack.conf_dir), "VENETFILTER_RUN_DIR": str(stack.run_dir)}
    result = subprocess.run(
        ["nsenter", f"--net=/run/netns/{stack.host}", sys.executable, "-m", "venetfilter.cli", "hook", *runtime_args],
        input=data.encode() if isinstance(data, str) else data, capture_output=True, env=env, check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def process_in(netns: str) -> subprocess.Popen[bytes]:
    """A process (``sleep``) in the named namespace, standing for a container's first process."""
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "sleep", "60"])
    deadline = time.monotonic() + 5
    target = os.stat(f"/run/netns/{netns}").st_ino
    while os.stat(f"/proc/{proc.pid}/ns/net").st_ino != target:  # nsenter has entered and exec'ed sleep
        assert time.monotonic() < deadline, "the stand-in container process did not start"
        time.sleep(0.01)
    return proc


def leftovers(stack: Stack, ctid: str) -> list[str]:
    """What of `ctid` is left on the node: its record, its host link, proxy entries of its addresses."""
    found: list[str] = []
    record = load_state(stack.run_dir).containers.get(ctid)
    if record is not None:
        found.append(f"record ({record.phase})")
    with open_iproute(stack.host) as ipr:
        names = {link.get_attr("IFLA_IFNAME") for link in ipr.link("dump")}
    if host_ifname(ctid) in names:
        found.append(f"link {host_ifname(ctid)}")
    info = stack.node().read_config(ctid)
    wanted = {a.address for a in info.addresses} if info is not None else set()
    proxies = subprocess.run(["ip", "-n", stack.host, "neigh", "show", "proxy"], capture_output=True, text=True).stdout
    proxies += subprocess.run(["ip", "-n", stack.host, "-6", "neigh", "show", "proxy"], capture_output=True,
                              text=True).stdout
    found.extend(f"proxy {line.split()[0]}" for line in proxies.splitlines() if line and line.split()[0] in wanted)
    return found
