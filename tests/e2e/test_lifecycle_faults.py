"""A container's life under faults: the process killed between every pair of steps of start, stop
and set, a write failing at every write; a container dying under the node's feet; duplicate
addresses on the uplink. Afterwards `status` tells the truth, the next command repairs, and no
spoofed packet is ever delivered."""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, ip
from tests.e2e.test_lifecycle_enforcement import PORT, Spoofer, spoofed_arrivals
from tests.e2e.traffic import UdpEcho, in_netns, udp_probe
from venetfilter.config import runtime as runtime_module
from venetfilter.config import store as store_module
from venetfilter.errors import VenetfilterError
from venetfilter.lifecycle import Node

pytestmark = pytest.mark.netns

KILLED = 99
RUN_KILLED = textwrap.dedent("""
    import json, os, sys
    from venetfilter.lifecycle import Node
    conf, run, host, operation, ctid, kill_at, options = sys.argv[1:8]
    seen = []
    def checkpoint(name):
        seen.append(name)
        if len(seen) == int(kill_at):
            os._exit(99)
    node = Node(conf, run, host_netns=host, checkpoint=checkpoint)
    getattr(node, operation)(ctid, **json.loads(options))
    print(json.dumps(seen))
""")


def killed_at(stack, operation: str, step: int, **options: object) -> subprocess.CompletedProcess[str]:
    """`Node.<operation>` run on the node in a process of its own, killed (exit 99) at its `step`-th checkpoint."""
    return subprocess.run(
        ["ip", "netns", "exec", stack.host, sys.executable, "-c", RUN_KILLED, str(stack.conf_dir), str(stack.run_dir),
         stack.host, operation, "101", str(step), json.dumps(options)],
        capture_output=True, text=True, timeout=60,
    )


def status(stack) -> tuple[int, dict]:
    result = stack.venetctl("status", "--host-netns", stack.host, "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def leftovers(stack) -> list[str]:
    """What of container 101's network is still on the node."""
    found = []
    if "vnf101" in subprocess.run(["ip", "-n", stack.host, "link"], capture_output=True, text=True).stdout:
        found.append("link")
    for kind in (["neigh", "show", "proxy"], ["route"], ["-6", "route"]):
        out = subprocess.run(["ip", "-n", stack.host, *kind], capture_output=True, text=True).stdout
        found += [f"{' '.join(kind)}: {a}" for a in (*ADDRESSES["101"], "192.0.2.41") if a + " " in out]
    return found


@pytest.fixture
def spoofed(stack):
    """101's root spoofs towards echo servers on the outside host for the whole test."""
    echoes = [UdpEcho(stack.outside, OUTSIDE_V4, PORT), UdpEcho(stack.outside, OUTSIDE_V6, PORT)]
    spoofer = Spoofer(stack.containers["101"])
    yield echoes
    spoofer.stop()
    for echo in echoes:
        echo.close()
    assert spoofed_arrivals(echoes) == 0, "a spoofed packet was delivered"


def repaired(stack) -> None:
    """`stop` then `start` bring 101 back to a clean, working, isolated state (the `spoofed`
    fixture's echo server answers the probe)."""
    assert stack.venetctl("stop", "101", check=False).returncode == 0
    assert leftovers(stack) == []
    stack.venetctl("start", "101", "--netns", stack.containers["101"])
    assert udp_probe(stack.containers["101"], ADDRESSES["101"][0], OUTSIDE_V4, PORT)
    code, report = status(stack)
    assert code == 0 and report["isolated"], report


def checkpoints(stack, operation: str, **options: object) -> list[str]:
    """The checkpoints an undisturbed `operation` passes (it is run once, then undone as needed)."""
    result = killed_at(stack, operation, 10_000, **options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_killed_at_every_step_of_start(stack, spoofed) -> None:
    stack.venetctl("stop", "101")
    options = {"netns": stack.containers["101"]}
    steps = checkpoints(stack, "start", **options)
    assert steps[:4] == ["recorded", "checked", "netns", "link"] and "registered" in steps and "up" in steps
    for step in range(1, len(steps) + 1):
        stack.venetctl("stop", "101")
        result = killed_at(stack, "start", step, **options)
        assert result.returncode == KILLED, result.stderr
        code, report = status(stack)
        (entry,) = [c for c in report["containers"] if c["ctid"] == "101"]
        if step < len(steps):  # killed before the record says running: status says so
            assert entry["phase"] == "starting" and code == (0 if report["isolated"] else 1)
            assert any("interrupted" in p for p in entry["problems"]), entry
        repaired(stack)


def test_killed_at_every_step_of_stop(stack, spoofed) -> None:
    steps = checkpoints(stack, "stop")
    assert steps[0] == "stopping" and steps[-1] == "saved"
    for step in range(1, len(steps) + 1):
        stack.venetctl("start", "101", "--netns", stack.containers["101"], check=False)
        result = killed_at(stack, "stop", step)
        assert result.returncode == KILLED, result.stderr
        code, report = status(stack)
        (entry,) = [c for c in report["containers"] if c["ctid"] == "101"]
        assert entry["phase"] in ("stopping", "stopped"), entry
        if entry["phase"] == "stopping":
            assert any("interrupted" in p for p in entry["problems"])
        repaired(stack)


def test_killed_at_every_step_of_set(stack, spoofed) -> None:
    """A live `set` that adds 192.0.2.41 and removes 101's IPv6 address, killed at each step."""
    change = {"add": ["192.0.2.41"], "delete": [ADDRESSES["101"][1]]}
    steps = checkpoints(stack, "set", **change)
    assert steps == ["added", "saved", "committed", "removed"]
    for step in range(1, len(steps) + 1):
        stack.venetctl("stop", "101")
        stack.venetctl("start", "101", "--netns", stack.containers["101"])
        result = killed_at(stack, "set", step, **change)
        assert result.returncode == KILLED, result.stderr
        code, report = status(stack)
        (entry,) = [c for c in report["containers"] if c["ctid"] == "101"]
        assert entry["phase"] == "running" and code == 0, report
        # the record is the truth the filter follows: before the commit the old list, after it the new one
        expected = ([ADDRESSES["101"][0], "192.0.2.41"] if step >= steps.index("saved") + 1
                    else list(ADDRESSES["101"]))
        assert entry["runtime"] == expected
        repaired(stack)


@pytest.mark.parametrize(
    "operation, error",
    [("start", errno.ENOSPC), ("stop", errno.ENOSPC), ("set", errno.ENOSPC), ("set", errno.EROFS)],
    ids=["start-disk-full", "stop-disk-full", "set-disk-full", "set-read-only"],  # only set writes a config file
)
def test_a_failing_write_at_every_write(stack, spoofed, monkeypatch, operation, error) -> None:
    """Each write of the runtime state (and of the config file) fails in turn: the operation raises
    a clear error, the node is left in a state `status` describes, and stop + start repair it."""
    writes = {"count": 0, "fail_at": 0}
    real_save, real_prepare = runtime_module.atomic_write, store_module.prepare_write

    def failing(real):
        def write(*args, **kwargs):
            writes["count"] += 1
            if writes["count"] == writes["fail_at"]:
                raise OSError(error, "injected", str(args[0]))
            return real(*args, **kwargs)
        return write

    monkeypatch.setattr(runtime_module, "atomic_write", failing(real_save))
    monkeypatch.setattr("venetfilter.lifecycle.node.prepare_write", failing(real_prepare))
    node = Node(stack.conf_dir, stack.run_dir, host_netns=stack.host)
    calls = {
        "start": lambda: node.start("101", netns=stack.containers["101"]),
        "set": lambda: node.set("101", ["192.0.2.41"], [ADDRESSES["101"][1]], save=True),
        "stop": lambda: node.stop("101"),
    }
    for fail_at in range(1, 20):
        if operation == "start":
            stack.venetctl("stop", "101")
        else:
            stack.venetctl("start", "101", "--netns", stack.containers["101"], check=False)
        writes.update(count=0, fail_at=fail_at)
        try:
            in_netns(stack.host, calls[operation])
        except (VenetfilterError, OSError) as exc:
            assert "injected" in str(exc) or "No space" in str(exc) or "Read-only" in str(exc), exc
        else:
            assert writes["count"] < fail_at  # no write failed: it went through
            break
        code, report = status(stack)
        assert report["containers"], report
        writes["fail_at"] = 0
        repaired(stack)
    else:
        pytest.fail("the operation never got through")


def _record(stack) -> dict:
    return json.loads((stack.run_dir / "state.json").read_text())["containers"].get("101")


@pytest.mark.parametrize("how", ["netns deleted", "venet0 deleted"])
def test_a_dead_container_is_noticed_within_a_second(stack, how) -> None:
    assert _record(stack) is not None
    assert "192.0.2.1 dev up0 proxy" in subprocess.run(["ip", "-n", stack.host, "neigh", "show", "proxy"],
                                                       capture_output=True, text=True).stdout
    if how == "netns deleted":
        subprocess.run(["ip", "netns", "del", stack.containers["101"]], check=True)
    else:
        subprocess.run(["ip", "-n", stack.containers["101"], "link", "del", "venet0"], check=True)
    died = time.monotonic()
    while _record(stack) is not None:
        assert time.monotonic() - died < 1.0, "the dead container is still recorded as running"
        time.sleep(0.02)
    proxies = subprocess.run(["ip", "-n", stack.host, "neigh", "show", "proxy"], capture_output=True, text=True).stdout
    assert ADDRESSES["101"][0] not in proxies and ADDRESSES["101"][1] not in proxies
    code, report = status(stack)
    assert [c["phase"] for c in report["containers"] if c["ctid"] == "101"] == ["stopped"]
    assert stack.stats()["deaths"] == 1
    assert "died" in stack.worker_log()
    if how == "venet0 deleted":  # the namespace lives on: the container can be started again
        stack.venetctl("start", "101", "--netns", stack.containers["101"])
        echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT)
        try:
            assert udp_probe(stack.containers["101"], ADDRESSES["101"][0], OUTSIDE_V4, PORT)
        finally:
            echo.close()


def _node_conf(stack, text: str) -> None:
    (stack.conf_dir / "venetfilter-node.conf").write_text(text)


@pytest.mark.parametrize("family", [4, 6])
def test_an_address_another_host_answers_for_is_refused(stack, family) -> None:
    """The outside router's segment has a host on 198.51.100.50 (2001:db8:ffff::50): the node would
    proxy it and steal its traffic. Refused with 78 and nothing changed; a warning only with
    ERROR_ON_ARPFAIL=no; not even looked for with SKIP_ARPDETECT=yes."""
    taken = "198.51.100.50" if family == 4 else "2001:db8:ffff::50"
    ip("-n", stack.outside, "addr", "add", f"{taken}/{24 if family == 4 else 64}", "dev", "eth0",
       *(["nodad"] if family == 6 else []))
    before = (stack.run_dir / "state.json").read_text()
    result = stack.venetctl("set", "101", "--ipadd", taken, check=False)
    assert result.returncode == 78, result.stderr
    assert f"Unable to add IP {taken}" in result.stderr and "answers for it on up0" in result.stderr
    assert (stack.run_dir / "state.json").read_text() == before
    assert taken not in subprocess.run(["ip", "-n", stack.host, "neigh", "show", "proxy"], capture_output=True,
                                       text=True).stdout
    _node_conf(stack, 'ERROR_ON_ARPFAIL="no"\n')
    result = stack.venetctl("set", "101", "--ipadd", taken)
    assert "answers for it on up0" in result.stderr
    stack.venetctl("set", "101", "--ipdel", taken)
    _node_conf(stack, 'SKIP_ARPDETECT="yes"\n')
    assert "answers" not in stack.venetctl("set", "101", "--ipadd", taken).stderr


def test_new_addresses_are_announced_on_the_uplink(stack) -> None:
    """A gratuitous ARP (sender = target = the address) and an unsolicited neighbour advertisement
    (override flag) reach the outside host when the admin adds addresses."""
    frames: list[bytes] = []
    sock = in_netns(stack.outside, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)))
    with sock:
        sock.bind(("eth0", 0))
        sock.settimeout(0.1)
        stack.venetctl("set", "101", "--ipadd", "192.0.2.42,2001:db8:1::42")
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                frames.append(sock.recv(2048))
            except TimeoutError:
                pass
    v4, v6 = ipaddress.IPv4Address("192.0.2.42").packed, ipaddress.IPv6Address("2001:db8:1::42").packed
    garps = [f for f in frames if f[12:14] == b"\x08\x06" and f[28:32] == v4 and f[38:42] == v4]
    nas = [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136 and f[62:78] == v6]
    assert garps, "no gratuitous ARP for 192.0.2.42"
    assert nas and nas[0][58] & 0x20, "no unsolicited NA (with the override flag) for 2001:db8:1::42"
