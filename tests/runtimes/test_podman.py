"""Real podman (runc) with the hooks.d file ``venetctl install-hook oci`` writes: ``podman run
--network none --annotation io.venetfilter.ctid=CTID`` is all it takes for a container to get its
venet link, reach the outside host with its own addresses only, and leave nothing behind when it
exits or is refused.

podman runs in the test node's namespace (``nsenter --net``: its hooks run there too), with its
storage, run and temporary directories and the hooks directory in the test's tmp dir; the root file
system is busybox-static, copied in (no image, no registry).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.wire import Sniffer
from tests.runtimes.conftest import OUTSIDE_V4, OUTSIDE_V6, Stack, leftovers
from venetfilter.config import load_state
from venetfilter.errors import EXIT_ADDRESS_IN_USE, EXIT_NO_CONFIG
from venetfilter.runtimes.configs import CONFIG_NAME

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ping", "ip", "sleep", "touch", "test", "cat", "echo")
OWN = ("192.0.2.21", "2001:db8:21::21")
SPOOFED = ("192.0.2.99", "2001:db8:99::99")

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or shutil.which("runc") is None or not BUSYBOX.exists(),
    reason="podman, runc and busybox-static are installed by scripts/bootstrap",
)


@dataclass
class Podman:
    """podman confined to the node's namespace and to `base`, with venetfilter's hook."""

    node: str
    base: Path

    @property
    def rootfs(self) -> Path:
        return self.base / "rootfs"

    def command(self, *args: str) -> list[str]:
        return [
            "nsenter", f"--net=/run/netns/{self.node}", "podman",
            "--root", str(self.base / "storage"), "--runroot", str(self.base / "runroot"),
            "--tmpdir", str(self.base / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none", "--hooks-dir", str(self.base / "hooks.d"), *args,
        ]

    def run(self, ctid: str, script: str, *options: str) -> list[str]:
        """``podman run`` of `script` in a container given CTID `ctid`, as a user types it."""
        return self.command(
            "run", "--rm", "--network", "none", "--annotation", f"io.venetfilter.ctid={ctid}",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", *options,
            "--rootfs", str(self.rootfs), "/bin/sh", "-c", script,
        )

    def containers(self) -> list[str]:
        result = subprocess.run(self.command("ps", "-a", "-q"), capture_output=True, text=True, check=True)
        return result.stdout.split()


def install_hook(stack: Stack, hooks_dir: Path) -> None:
    """The hooks.d file as a user installs it: ``venetctl install-hook oci`` of this virtualenv,
    for the stack's directories."""
    venetctl = Path(sys.executable).parent / "venetctl"
    assert venetctl.exists(), "venetctl is installed in the virtualenv by scripts/bootstrap"
    result = subprocess.run(
        [str(venetctl), "install-hook", "oci", "--dir", str(hooks_dir), "--conf-dir", str(stack.conf_dir),
         "--run-dir", str(stack.run_dir)], capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((hooks_dir / CONFIG_NAME["oci"]).read_text())["hook"]["path"] == str(venetctl)


def busybox_rootfs(root: Path) -> None:
    """A root file system of busybox-static and its applets."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")


@pytest.fixture
def podman(node_stack: Stack) -> Iterator[Podman]:
    """podman for `node_stack`; every container and the directory are removed afterwards, also on
    failure. The directory is short-named in /tmp: podman refuses a run root of more than 50 characters."""
    tool = Podman(node_stack.host, Path(tempfile.mkdtemp(prefix="vfpod-", dir="/tmp")))
    try:
        busybox_rootfs(tool.rootfs)
        install_hook(node_stack, tool.base / "hooks.d")
        yield tool
    finally:
        subprocess.run(tool.command("rm", "--all", "--force", "--time", "0"), capture_output=True, timeout=60)
        shutil.rmtree(tool.base)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the container exited ({proc.returncode}): {proc.communicate()}")
        assert time.monotonic() < deadline, f"the container did not get to {path.name}"
        time.sleep(0.05)


SCRIPT = f"""
ip -o addr show dev venet0 >/venet0 && echo link=ok || echo link=fail
touch /ready
i=0; while [ ! -e /go ]; do sleep 0.05; i=$((i+1)); [ $i -gt 400 ] && exit 9; done
ping -c 1 -W 2 {OUTSIDE_V4} >/dev/null && echo own4=ok || echo own4=fail
ping -c 1 -W 2 {OUTSIDE_V6} >/dev/null && echo own6=ok || echo own6=fail
ip addr add {SPOOFED[0]}/32 dev venet0 && echo added4=ok
ip addr add {SPOOFED[1]}/128 dev venet0 && echo added6=ok
ping -c 2 -W 1 -I {SPOOFED[0]} {OUTSIDE_V4} >/dev/null && echo spoofed4=ok || echo spoofed4=fail
ping -c 2 -W 1 -I {SPOOFED[1]} {OUTSIDE_V6} >/dev/null && echo spoofed6=ok || echo spoofed6=fail
"""


def test_container_reaches_outside_with_its_own_addresses_only(node_stack: Stack, podman: Podman) -> None:
    node_stack.node().set("101", OWN, save=True)
    sources = set(OWN) | set(SPOOFED)
    sniffer = Sniffer(node_stack.outside, "eth0", lambda p: _source(p) in sources)
    sent: Sniffer | None = None
    proc = subprocess.Popen(podman.run("101", SCRIPT, "--cap-add", "NET_ADMIN,NET_RAW"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(podman.rootfs / "ready", proc)
        # the link is recorded in the namespace of the container's process, which start did not create
        record = load_state(node_stack.run_dir).containers["101"]
        (container,) = podman.containers()
        netns = f"/proc/{_pid(podman, container)}/ns/net"
        assert (record.phase, record.netns, record.netns_created) == ("running", netns, False)
        assert not record.loopback_raised  # runc raised lo: a stop never touches a namespace by a pid later reused
        assert "link vnf101" in leftovers(node_stack, "101")
        sent = Sniffer(node_stack.host, "vnf101", lambda p: _source(p) in sources)  # what the container sends
        (podman.rootfs / "go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        seen = sniffer.close()
        left = sent.close() if sent is not None else []
    assert proc.returncode == 0, err
    # the container's first command found venet0 with its addresses: the hook ran before it
    inside = (podman.rootfs / "venet0").read_text()
    assert OWN[0] in inside and OWN[1] in inside
    results = dict(line.split("=", 1) for line in out.split() if "=" in line)
    assert results == {"link": "ok", "own4": "ok", "own6": "ok", "added4": "ok", "added6": "ok",
                       "spoofed4": "fail", "spoofed6": "fail"}, err
    assert {_source(p) for p in left} == sources  # the spoofed pings did leave the container
    arrived = {_source(p) for p in seen}
    assert arrived == set(OWN), f"the outside host saw packets from {sorted(arrived)}"
    # the container exited: podman's poststop hook (or the worker, first) left nothing of it
    assert leftovers(node_stack, "101") == []
    assert podman.containers() == []


def test_poststop_alone_cleans_up(node_stack: Stack, podman: Podman) -> None:
    """No worker to notice the container's link vanish: the poststop hook stops the record."""
    node_stack.node().set("101", OWN, save=True)
    node_stack.stop_worker()
    result = subprocess.run(podman.run("101", "ip -o addr show venet0"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert OWN[0] in result.stdout and OWN[1] in result.stdout
    assert leftovers(node_stack, "101") == []


def test_detached_container_stopped_by_podman_stop(node_stack: Stack, podman: Podman) -> None:
    """``podman run -d`` then ``podman stop``: poststop runs from conmon's cleanup command (podman
    hands it the same options, the hooks directory included); no worker, so it alone cleans up."""
    node_stack.node().set("101", OWN, save=True)
    node_stack.stop_worker()
    started = subprocess.run(podman.run("101", "sleep 30", "--detach"), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    record = load_state(node_stack.run_dir).containers["101"]
    assert record.phase == "running" and record.netns == f"/proc/{_pid(podman, started.stdout.strip())}/ns/net"
    stopped = subprocess.run(podman.command("stop", "--time", "0", started.stdout.strip()), capture_output=True,
                             text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 10
    while leftovers(node_stack, "101") and time.monotonic() < deadline:  # cleanup runs after stop returns
        time.sleep(0.1)
    assert leftovers(node_stack, "101") == []


@pytest.mark.parametrize(
    ("ctid", "code", "message"),
    [
        ("105", EXIT_NO_CONFIG, "venetctl: container 105 does not exist: no config file and not running"),
        ("106", EXIT_ADDRESS_IN_USE, f"venetctl: Unable to add IP {OWN[0]}: Address already in use by container 101"),
    ],
)
def test_refused_container_does_not_start(
    node_stack: Stack, podman: Podman, ctid: str, code: int, message: str
) -> None:
    """An unknown CTID, or one whose address another container has: podman fails, the hook's exit
    code and message in its error, the container's command never runs, nothing is left."""
    node_stack.node().set("101", OWN, save=True)
    (node_stack.conf_dir / "106.conf").write_text(f'IP_ADDRESS="{OWN[0]}"\n')  # by hand: set refuses it
    result = subprocess.run(podman.run(ctid, "touch /ran"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"exit status {code}" in result.stderr and message in result.stderr, result.stderr
    assert not (podman.rootfs / "ran").exists()
    assert leftovers(node_stack, ctid) == [] and load_state(node_stack.run_dir).containers == {}
    assert podman.containers() == []


def _pid(podman: Podman, container: str) -> int:
    result = subprocess.run(podman.command("inspect", "--format", "{{.State.Pid}}", container), capture_output=True,
                            text=True, check=True)
    return int(result.stdout)


def _source(packet: bytes) -> str:
    import ipaddress

    if packet[0] >> 4 == 4:
        return str(ipaddress.IPv4Address(packet[12:16]))
    return str(ipaddress.IPv6Address(packet[8:24]))
