"""The worker inside what its unit allows: only CAP_NET_ADMIN and CAP_SYS_ADMIN in its bounding set, no
new privileges, and no writable executable memory (the kernel's PR_SET_MDWE, what
MemoryDenyWriteExecute= asks for). It serves a container and cleans up after one whose link dies
while the namespace `start` created lives on (that is what needs CAP_SYS_ADMIN and ``umount2``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import OUTSIDE_V4, build, ip, teardown
from tests.e2e.traffic import ping
from venetfilter.worker import request

pytestmark = pytest.mark.netns

CTID = "7351"  # start makes its namespace venet-7351
NETNS = f"venet-{CTID}"
CAPS = (1 << 12) | (1 << 21)  # CAP_NET_ADMIN, CAP_SYS_ADMIN
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
WORKER = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit('PR_SET_MDWE: ' + os.strerror(ctypes.get_errno()))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'venetfilter.cli', 'worker', *sys.argv[1:]])\n"
)


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return line.split()[1]
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def test_worker_serves_and_cleans_up_inside_the_units_limits(make_netns, tmp_path) -> None:
    if netns_exists(NETNS):
        pytest.fail(f"{NETNS} exists already (left by another run?)")
    stack = build(make_netns, tmp_path, worker=False)
    worker = None
    try:
        with open(stack.run_dir / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                ["ip", "netns", "exec", stack.host, "setpriv", "--bounding-set=-all,+net_admin,+sys_admin",
                 "--inh-caps=-all", "--no-new-privs", "--", sys.executable, "-c", WORKER,
                 "--run-dir", str(stack.run_dir), "--conf-dir", str(stack.conf_dir), "-v"],
                stdout=log, stderr=log,
            )
        deadline = time.monotonic() + 15
        while True:
            assert worker.poll() is None, stack.worker_log()
            try:
                if request(stack.run_dir, b"stats\n", timeout=1).startswith(b"{"):
                    break
            except OSError:
                assert time.monotonic() < deadline, stack.worker_log()
                time.sleep(0.1)
        assert int(status_field(worker.pid, "CapBnd"), 16) == CAPS
        assert status_field(worker.pid, "NoNewPrivs") == "1"
        assert ping(stack.containers["101"], "192.0.2.1", OUTSIDE_V4)
        node = stack.node()
        node.set(CTID, ["192.0.2.51"], save=True)
        node.start(CTID)  # no namespace given: start makes venet-7351
        assert netns_exists(NETNS)
        ip("-n", NETNS, "link", "del", "venet0")  # its link dies, its namespace lives on
        deadline = time.monotonic() + 5
        while netns_exists(NETNS) or CTID in json.loads((stack.run_dir / "state.json").read_text())["containers"]:
            assert time.monotonic() < deadline, stack.worker_log()
            time.sleep(0.1)
        assert "cleanup failed" not in stack.worker_log()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0, stack.worker_log()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        try:
            teardown(stack)
        finally:
            if netns_exists(NETNS):
                subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
