"""Real LXC containers (the ``busybox`` template) started with ``venetctl hook lxc``: the container
reaches an outside host with its own addresses, IPv4 and IPv6, and nothing its root adds; a
refused start leaves nothing behind; ``lxc-stop`` takes the link and the record away.

Everything happens in namespaces made for the test: ``lxc-start`` runs inside the node namespace
(``nsenter --net``, not ``ip netns exec``, which remounts /sys), so its hooks run there; each test
has its own lxcpath (``-P``), so nothing lands in /var/lib/lxc. LXC's command socket is an abstract
Unix socket, which belongs to a network namespace: every lxc-* command runs in the node namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import OUTSIDE_V4, OUTSIDE_V6, Stack
from tests.e2e.wire import Tap
from tests.runtimes.conftest import leftovers
from venetfilter.errors import EXIT_ADDRESS_IN_USE, EXIT_INVALID, EXIT_NO_CONFIG, EXIT_RUNNING
from venetfilter.runtimes.configs import render_lxc

VENETCTL = Path(sys.executable).parent / "venetctl"
V4, V6 = "192.0.2.61", "2001:db8:61::61"
SPOOFED_V4, SPOOFED_V6 = "192.0.2.99", "2001:db8:99::99"

pytestmark = pytest.mark.netns


class Lxc:
    """LXC containers of one lxcpath, driven from the node namespace `netns`."""

    def __init__(self, netns: str, lxcpath: Path, stack: Stack) -> None:
        self.netns, self.lxcpath, self.stack = netns, lxcpath, stack
        self.created: list[str] = []

    def run(self, tool: str, name: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = ["nsenter", f"--net=/run/netns/{self.netns}", tool, "-P", str(self.lxcpath), "-n", name, *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)

    def create(self, name: str, ctid: str | None = None, net: str = "empty", venetctl: Path = VENETCTL) -> None:
        """A busybox container made with the config snippet ``venetctl install-hook lxc`` renders for
        `venetctl`, the stack's directories and `ctid`, `net` its ``lxc.net.0.type``."""
        snippet = render_lxc(venetctl, self.stack.conf_dir, self.stack.run_dir, ctid)
        assert snippet.count("lxc.net.0.type = empty\n") == 1
        config = self.lxcpath / f"{name}.conf"
        self.lxcpath.mkdir(exist_ok=True)
        config.write_text(snippet.replace("lxc.net.0.type = empty", f"lxc.net.0.type = {net}"))
        self.created.append(name)
        result = self.run("lxc-create", name, "-t", "busybox", "-f", str(config))
        assert result.returncode == 0, f"lxc-create {name}: {result.stderr}"

    def start(self, name: str, *, env_dirs: bool = True) -> subprocess.CompletedProcess[str]:
        """``lxc-start -d``; the state directories in the environment (the hooks inherit it) when
        `env_dirs`, else empty ones there: the hook lines name the right ones, which win."""
        conf, run = (self.stack.conf_dir, self.stack.run_dir) if env_dirs else (self.lxcpath / "no-conf",
                                                                               self.lxcpath / "no-run")
        env = os.environ | {"VENETFILTER_CONF_DIR": str(conf), "VENETFILTER_RUN_DIR": str(run)}
        log = self.lxcpath / f"{name}.log"
        log.unlink(missing_ok=True)
        return self.run("lxc-start", name, "-d", "-o", str(log), "-l", "DEBUG", env=env)

    def log(self, name: str) -> str:
        return (self.lxcpath / f"{name}.log").read_text(errors="replace")

    def hook_output(self, name: str, line: str, timeout: float = 10) -> None:
        """Wait until LXC logged `line` of a hook's output, at debug level (post-stop may end after
        lxc-stop returns)."""
        deadline = time.monotonic() + timeout
        while line not in self.log(name):
            assert time.monotonic() < deadline, f"no hook output {line!r} in LXC's log:\n{self.log(name)}"
            time.sleep(0.05)

    def pid(self, name: str) -> int | None:
        result = self.run("lxc-info", name, "-p", "-H")
        return int(result.stdout) if result.returncode == 0 and result.stdout.strip() else None

    def state(self, name: str) -> str:
        return self.run("lxc-info", name, "-s", "-H").stdout.strip()

    def attach(self, name: str, *command: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return self.run("lxc-attach", name, "--clear-env", "--", *command, timeout=timeout)

    def stop(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.run("lxc-stop", name, "-t", "10")

    def destroy_all(self) -> None:
        """Every container stopped and destroyed, and LXC's lock directories of the lxcpath removed
        (empty parents too, up to /run/lxc/lock)."""
        for name in reversed(self.created):
            self.run("lxc-stop", name, "-k")
            self.run("lxc-destroy", name, "-f")
        locks = Path(f"/run/lxc/lock{self.lxcpath}")
        shutil.rmtree(locks, ignore_errors=True)
        for parent in locks.parents:
            if parent == Path("/run/lxc/lock"):
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: another test's
                break


@pytest.fixture
def lxc(node_stack, tmp_path) -> Iterator[Lxc]:
    """LXC containers of an lxcpath of the test's own, on the node of `node_stack` (an uplink to an
    outside host, a worker; tests/runtimes/conftest.py); every container destroyed afterwards."""
    missing = [tool for tool in ("lxc-create", "lxc-start", "busybox") if shutil.which(tool) is None]
    if missing:  # never skipped: the hook is tested with the real LXC or the run fails
        pytest.fail(f"{', '.join(missing)} not found: scripts/bootstrap installs lxc and busybox-static")
    containers = Lxc(node_stack.host, tmp_path / "lxc", node_stack)
    try:
        yield containers
    finally:
        containers.destroy_all()


def sources(frames: list[bytes]) -> set[str]:
    """The source addresses of the IPv4 and IPv6 packets among Ethernet `frames`."""
    found = set()
    for frame in frames:
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype == 0x0800 and len(frame) >= 34:
            found.add(socket.inet_ntop(socket.AF_INET, frame[26:30]))
        elif ethertype == 0x86DD and len(frame) >= 54:
            found.add(socket.inet_ntop(socket.AF_INET6, frame[22:38]))
    return found


def ping(lxc: Lxc, name: str, destination: str, source: str | None = None, wait: int = 2) -> bool:
    """busybox ping inside the container; True when the reply came."""
    family = "-6" if ":" in destination else "-4"
    command = ["ping", family, "-c", "1", "-W", str(wait), *(["-I", source] if source else []), destination]
    result = lxc.attach(name, *command)
    return result.returncode == 0


def links(netns: str) -> set[str]:
    out = subprocess.run(["ip", "-n", netns, "-j", "link", "show"], check=True, capture_output=True, text=True)
    return {link["ifname"] for link in json.loads(out.stdout)}


def test_lxc_container_reaches_the_outside_with_its_own_addresses_only(lxc):
    stack = lxc.stack
    stack.venetctl("set", "101", "--ipadd", V4, "--ipadd", V6, "--save")
    lxc.create("101")  # the CTID is the container's name
    started = lxc.start("101")
    assert started.returncode == 0, f"lxc-start: {started.stderr}\n{lxc.log('101')}"
    pid = lxc.pid("101")
    assert pid is not None
    lxc.hook_output("101", "LXC container 101: CT 101 started, link vnf101")
    shown = json.loads(stack.venetctl("show", "101", "--json").stdout)
    assert (shown["phase"], shown["netns"], shown["link"]) == ("running", f"/proc/{pid}/ns/net", "vnf101")
    inside = lxc.attach("101", "ip", "addr", "show", "dev", "venet0").stdout
    assert V4 in inside and V6 in inside, inside

    # its own addresses reach the outside host (the tap there sees them as sources)
    tap = Tap(stack.outside, "eth0")
    assert ping(lxc, "101", OUTSIDE_V4) and ping(lxc, "101", OUTSIDE_V6)
    # its root adds addresses it was not given and sends from them: nothing arrives
    assert lxc.attach("101", "ip", "addr", "add", f"{SPOOFED_V4}/32", "dev", "venet0").returncode == 0
    assert lxc.attach("101", "ip", "-6", "addr", "add", f"{SPOOFED_V6}/128", "dev", "venet0").returncode == 0
    deadline = time.monotonic() + 5  # busybox ip has no nodad: until duplicate address detection is done
    while "tentative" in lxc.attach("101", "ip", "-6", "addr", "show", "dev", "venet0").stdout:
        assert time.monotonic() < deadline, "the added IPv6 address stays tentative"
        time.sleep(0.1)
    assert not ping(lxc, "101", OUTSIDE_V4, SPOOFED_V4, wait=1)  # what counts is what the tap saw
    assert not ping(lxc, "101", OUTSIDE_V6, SPOOFED_V6, wait=1)
    seen = sources(tap.read())
    assert {V4, V6} <= seen, seen
    assert not seen & {SPOOFED_V4, SPOOFED_V6}, seen

    # a second LXC container given the same CTID is refused, and its post-stop (LXC runs it after
    # the refused start) leaves the first one running
    lxc.create("dup", "101")
    refused = lxc.start("dup")
    assert refused.returncode != 0 and lxc.state("dup") == "STOPPED"
    assert f"Script exited with status {EXIT_RUNNING}" in lxc.log("dup")
    assert ping(lxc, "101", OUTSIDE_V4)

    # a reboot (lxc-stop -r) runs post-stop, then start-host for the new init: the link follows it
    assert lxc.run("lxc-stop", "101", "-r", "-t", "10").returncode == 0
    deadline = time.monotonic() + 15
    while lxc.pid("101") in (pid, None) or stack.node().runtime_state().containers.get("101") is None:
        assert time.monotonic() < deadline, "the container did not come back from its reboot"
        time.sleep(0.1)
    rebooted = lxc.pid("101")
    assert stack.node().runtime_state().containers["101"].netns == f"/proc/{rebooted}/ns/net"
    assert ping(lxc, "101", OUTSIDE_V4) and ping(lxc, "101", OUTSIDE_V6)

    # lxc-stop runs post-stop (which finds the container stopped when the worker saw its link go
    # first): no link, no record
    stopped = lxc.stop("101")
    assert stopped.returncode == 0, stopped.stderr
    assert lxc.state("101") == "STOPPED"
    lxc.hook_output("101", "LXC container 101: CT 101: ")
    assert leftovers(stack, "101") == []
    assert json.loads(stack.venetctl("show", "101", "--json").stdout)["phase"] == "stopped"


def test_lxc_refused_start_leaves_nothing_behind(lxc):
    """A container whose name is no CTID, the CTID and the state directories on the hook line (no
    environment), venetctl in a directory whose name needs quoting: unknown CTID, address in use
    and the node's own namespace (``lxc.net.0.type = none``) make lxc-start fail with the hook's
    exit code in LXC's log, and leave no link, no record; once the config is right it starts."""
    stack = lxc.stack
    odd = lxc.lxcpath.parent / "it's a \"venv\" $HOME" / "bin"  # LXC strips quotes, sh expands $
    odd.mkdir(parents=True)
    (odd / "venetctl").symlink_to(VENETCTL)
    name = "frontend-web-01"  # 15 characters: not a CTID
    lxc.create(name, "102", venetctl=odd / "venetctl")
    before = links(stack.host)

    refused = lxc.start(name, env_dirs=False)
    assert refused.returncode != 0 and lxc.state(name) == "STOPPED"
    log = lxc.log(name)
    assert f"Script exited with status {EXIT_NO_CONFIG}" in log, log
    assert "container 102 does not exist: no config file and not running" in log, log
    assert leftovers(stack, "102") == [] and links(stack.host) == before

    stack.venetctl("set", "101", "--ipadd", V4, "--save")
    stack.conf_dir.joinpath("102.conf").write_text(f'IP_ADDRESS="{V4}"\n')  # 101's: set would refuse it
    refused = lxc.start(name, env_dirs=False)
    assert refused.returncode != 0 and lxc.state(name) == "STOPPED"
    log = lxc.log(name)
    assert f"Script exited with status {EXIT_ADDRESS_IN_USE}" in log, log
    assert leftovers(stack, "102") == [] and links(stack.host) == before

    stack.conf_dir.joinpath("102.conf").write_text('IP_ADDRESS="192.0.2.62"\n')
    # 'none' instead of 'empty': the container would run in the node's own namespace
    lxc.create("shared", "102", net="none", venetctl=odd / "venetctl")
    refused = lxc.start("shared", env_dirs=False)
    assert refused.returncode != 0 and lxc.state("shared") == "STOPPED"
    assert f"Script exited with status {EXIT_INVALID}" in lxc.log("shared")
    assert leftovers(stack, "102") == [] and links(stack.host) == before

    started = lxc.start(name, env_dirs=False)
    assert started.returncode == 0, lxc.log(name)
    assert "vnf102" in links(stack.host)
    assert ping(lxc, name, OUTSIDE_V4)
    assert lxc.stop(name).returncode == 0
    lxc.hook_output(name, f"LXC container {name}: CT 102: ")
    assert leftovers(stack, "102") == [] and links(stack.host) == before
