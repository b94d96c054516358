"""venet's rules enforced on real traffic: rules + worker + containers started with `venetctl start`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, ip
from tests.e2e.traffic import TcpEcho, UdpEcho, in_netns, ping, tcp_probe, udp_probe
from venetfilter.lifecycle import Node

pytestmark = pytest.mark.netns
PORT = 7000
FAMILIES = {4: (0, OUTSIDE_V4, UPLINK_V4), 6: (1, OUTSIDE_V6, UPLINK_V6)}


def node_manager(stack) -> Node:
    """`venetctl set` as a library on the node: call it from a thread in the host namespace."""
    return Node(stack.conf_dir, stack.run_dir)


def own(ctid: str, family: int) -> str:
    return ADDRESSES[ctid][FAMILIES[family][0]]


@pytest.fixture
def servers(request):
    name = next((f for f in ("any_stack", "queue_stack") if f in request.fixturenames), "stack")
    stack = request.getfixturevalue(name)
    """UDP and TCP echo servers on the outside host, on the node itself and in container 102."""
    made = []
    for ns, addresses in ((stack.outside, (OUTSIDE_V4, OUTSIDE_V6)), (stack.host, (UPLINK_V4, UPLINK_V6)),
                          (stack.containers["102"], ADDRESSES["102"])):
        for address in addresses:
            made += [UdpEcho(ns, address, PORT), TcpEcho(ns, address, PORT)]
    yield made
    for server in made:
        server.close()


@pytest.mark.parametrize("family", [4, 6])
def test_containers_reach_outside_host_and_each_other(any_stack, servers, family):
    stack = any_stack
    c101, c102 = stack.containers["101"], stack.containers["102"]
    _, outside, node = FAMILIES[family]
    source = own("101", family)
    for destination in (outside, node, own("102", family)):
        assert ping(c101, source, destination), f"ICMP {source} -> {destination}"
        assert udp_probe(c101, source, destination, PORT), f"UDP {source} -> {destination}"
        assert tcp_probe(c101, source, destination, PORT), f"TCP {source} -> {destination}"
    assert ping(stack.outside, outside, own("101", family)), "the outside host reaches the container"
    assert ping(stack.host, node, own("102", family)), "the node itself reaches the container"
    assert ping(c102, own("102", family), source)
    counters = stack.stats()["containers"]
    assert counters["101"]["ACCEPT"] > 0 and counters["102"]["ACCEPT"] > 0
    assert counters["101"]["DROP_SOURCE"] == 0 and counters["101"]["DROP_DESTINATION"] == 0


@pytest.mark.parametrize("family", [4, 6])
def test_address_a_container_gives_itself_is_dropped(any_stack, servers, family):
    """Its root user adds an address inside: packets from it go nowhere, to the outside, the node or
    another container; its real address keeps working."""
    stack = any_stack
    c101 = stack.containers["101"]
    _, outside, node = FAMILIES[family]
    stolen = "192.0.2.77" if family == 4 else "2001:db8:1::77"
    ip("-n", c101, "addr", "add", f"{stolen}/{32 if family == 4 else 128}", "dev", "venet0", *(["nodad"] if family == 6 else []))
    before = stack.counter("101", "DROP_SOURCE")
    for destination in (outside, node, own("102", family)):
        assert not udp_probe(c101, stolen, destination, PORT, timeout=0.3)
        assert not tcp_probe(c101, stolen, destination, PORT, timeout=0.5)
        assert not ping(c101, stolen, destination, timeout=0.5)
    assert stack.counter("101", "DROP_SOURCE") >= before + 9
    # another container's address, taken inside: dropped too
    taken = own("102", family)
    ip("-n", c101, "addr", "add", f"{taken}/{32 if family == 4 else 128}", "dev", "venet0", *(["nodad"] if family == 6 else []))
    assert not udp_probe(c101, taken, outside, PORT, timeout=0.3)
    assert udp_probe(c101, own("101", family), outside, PORT)
    assert f"container=101 {stolen} -> " in stack.worker_log()


@pytest.mark.parametrize("family", [4, 6])
def test_traffic_to_an_address_the_container_does_not_own_is_dropped(any_stack, family):
    """The node routes an unowned address to container 101 (a mistake, or a hostile neighbour), and
    101 even answers for it inside: nothing reaches it, from outside or from the node itself."""
    stack = any_stack
    c101 = stack.containers["101"]
    _, outside, node = FAMILIES[family]
    unowned = "192.0.2.88" if family == 4 else "2001:db8:1::88"
    prefix = 32 if family == 4 else 128
    ip("-n", c101, "addr", "add", f"{unowned}/{prefix}", "dev", "venet0", *(["nodad"] if family == 6 else []))
    ip("-n", stack.host, "route", "add", f"{unowned}/{prefix}", "dev", "vnf101")
    echo = UdpEcho(c101, unowned, PORT)
    try:
        before = stack.counter("101", "DROP_DESTINATION")
        assert not ping(stack.outside, outside, unowned, timeout=0.5)
        assert not ping(stack.host, node, unowned, timeout=0.5)
        assert not udp_probe(stack.outside, outside, unowned, PORT, timeout=0.3)
        assert echo.received == 0
        assert stack.counter("101", "DROP_DESTINATION") >= before + 3
        assert ping(stack.outside, outside, own("101", family))
    finally:
        echo.close()


def test_live_changes_take_effect_within_200_ms(stack, servers):
    """`set --ipadd X` makes X work and `set --ipdel X` stops it, each within 200 ms of the call;
    the call returns once the worker has confirmed the reload."""
    c101 = stack.containers["101"]
    manager = node_manager(stack)
    extra = "192.0.2.50"
    start = time.monotonic()
    in_netns(stack.host, lambda: manager.set("101", add=[extra]))
    while not udp_probe(c101, extra, OUTSIDE_V4, PORT, timeout=0.05):
        assert time.monotonic() - start < 0.2, "the added address did not work within 200 ms"
    added_after = time.monotonic() - start

    start = time.monotonic()
    in_netns(stack.host, lambda: manager.set("101", delete=[extra]))
    deleted_after = time.monotonic() - start
    assert deleted_after < 0.2
    # the container's root puts the address back by hand: the filter must now drop it
    ip("-n", c101, "addr", "add", f"{extra}/32", "dev", "venet0")
    assert not udp_probe(c101, extra, OUTSIDE_V4, PORT, timeout=0.3)
    assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)
    print(f"added address worked after {added_after * 1000:.0f} ms, deleted one refused after {deleted_after * 1000:.0f} ms")


def test_venetctl_set_is_live_for_the_worker(stack, servers):
    """The same through the command line, as an admin would type it."""
    c101 = stack.containers["101"]
    stack.venetctl("set", "101", "--ipadd", "2001:db8:1::50")
    assert udp_probe(c101, "2001:db8:1::50", OUTSIDE_V6, PORT)
    stack.venetctl("set", "101", "--ipdel", "2001:db8:1::50")
    ip("-n", c101, "addr", "add", "2001:db8:1::50/128", "dev", "venet0", "nodad")
    assert not udp_probe(c101, "2001:db8:1::50", OUTSIDE_V6, PORT, timeout=0.3)


def test_no_loss_during_100_reloads(stack):
    """A steady UDP stream from container 102 while container 101 changes 100 times."""
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT + 1)
    manager = node_manager(stack)
    stop = threading.Event()
    sent = [0]
    sock = in_netns(stack.containers["102"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind((own("102", 4), 0))

    def stream() -> None:
        while not stop.is_set() and sent[0] < 20000:
            sock.sendto(b"x" * 32, (OUTSIDE_V4, PORT + 1))
            sent[0] += 1
            time.sleep(0.0005)

    thread = threading.Thread(target=stream)
    thread.start()
    reloads_before = stack.stats()["reloads"]
    try:
        for i in range(50):
            in_netns(stack.host, lambda: manager.set("101", add=[f"198.51.100.{100 + i}"]))
            in_netns(stack.host, lambda: manager.set("101", delete=[f"198.51.100.{100 + i}"]))
    finally:
        stop.set()
        thread.join()
    time.sleep(0.3)
    echo.close()
    sock.close()
    assert stack.stats()["reloads"] >= reloads_before + 100
    assert sent[0] > 500
    assert echo.received == sent[0], f"{sent[0] - echo.received} of {sent[0]} datagrams lost during reloads"
    assert stack.counter("102", "DROP_SOURCE") == 0


def test_worker_killed_under_traffic_fails_closed_and_traffic_resumes(any_stack):
    """Streams from 101's own address and from an address it gave itself; the worker is killed
    with SIGKILL, stays down a while, comes back. Nothing spoofed ever arrives. While it is down,
    the honest stream goes on in the default mode (the kernel sets stay) and stops in the queue
    mode (nobody to judge it); afterwards it flows in both."""
    stack = any_stack
    c101 = stack.containers["101"]
    ip("-n", c101, "addr", "add", "192.0.2.77/32", "dev", "venet0")
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT + 2)
    senders = {}
    for source in (own("101", 4), "192.0.2.77"):
        senders[source] = in_netns(c101, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        senders[source].bind((source, 0))
    stop = threading.Event()

    def stream() -> None:
        deadline = time.monotonic() + 10  # bounded, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            for sock in senders.values():
                sock.sendto(b"x", (OUTSIDE_V4, PORT + 2))
            time.sleep(0.002)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        time.sleep(0.5)
        assert stack.stop_worker(signal.SIGKILL) == -signal.SIGKILL
        down_from = time.monotonic() + 0.05  # packets already on their way may still land
        time.sleep(1.0)
        down_until = time.monotonic()
        stack.start_worker()
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
        for sock in senders.values():
            sock.close()
        echo.close()
    sources = [source for _, source in echo.arrivals]
    assert "192.0.2.77" not in sources
    while_down = [t for t, _ in echo.arrivals if down_from < t < down_until]
    if stack.mode == "queue":
        assert not while_down, "traffic passed while the worker was down"
    else:
        assert len(while_down) > 100, "honest traffic stopped with the worker"
    assert [t for t, _ in echo.arrivals if t > down_until], "traffic did not resume"
    assert [t for t, _ in echo.arrivals if t < down_from], "traffic did not flow before the kill"


def test_sigterm_stops_cleanly_and_sighup_reloads(stack, servers):
    assert stack.worker is not None
    generation = stack.stats()["generation"]
    stack.worker.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    assert stack.stats()["reloads"] >= 2 and stack.stats()["generation"] == generation
    assert stack.stop_worker(signal.SIGTERM) == 0
    assert not (stack.run_dir / "worker.sock").exists()
    assert "Traceback" not in stack.worker_log()


def test_fail_open_lets_traffic_pass_without_a_worker(make_netns, tmp_path):
    from tests.e2e.conftest import build, teardown

    stack = build(make_netns, tmp_path, mode="queue", fail_open=True)
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT)
    try:
        c101 = stack.containers["101"]
        ip("-n", c101, "addr", "add", "192.0.2.77/32", "dev", "venet0")
        assert "queue num 0 bypass" in stack.venetctl("rules", "show", "--netns", stack.host).stdout
        assert not udp_probe(c101, "192.0.2.77", OUTSIDE_V4, PORT, timeout=0.3)  # worker up: filtered
        stack.stop_worker(signal.SIGKILL)
        assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)  # worker down: bypassed
    finally:
        echo.close()
        teardown(stack)


@pytest.mark.parametrize("backend", ["native", "netfilterqueue"])
def test_both_backends_enforce(queue_stack, servers, backend):
    stack = queue_stack
    stack.stop_worker()
    stack.start_worker("--backend", backend)
    assert stack.stats()["backend"] == backend
    c101 = stack.containers["101"]
    ip("-n", c101, "addr", "add", "192.0.2.77/32", "dev", "venet0")
    assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)
    assert tcp_probe(c101, own("101", 6), OUTSIDE_V6, PORT)
    assert not udp_probe(c101, "192.0.2.77", OUTSIDE_V4, PORT, timeout=0.3)
    assert stack.counter("101", "DROP_SOURCE") >= 1


def test_queue_in_use_is_a_clear_error(any_stack):
    stack = any_stack
    result = subprocess.run(
        [sys.executable, "-m", "venetfilter.cli", "worker", "--netns", stack.host, "--run-dir", str(stack.run_dir / "other"),
         "--mode", stack.mode],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode != 0
    expected = ("cannot bind NFQUEUE 0: is another worker bound to it?" if stack.mode == "queue" else
                "cannot bind NFLOG group 0: it is bound by another socket (another worker?)")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.worker is not None and stack.worker.poll() is None  # the first worker is unharmed


def test_worker_without_permission_is_a_clear_error(stack):
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "venetfilter.cli",
         "worker", "--queue", "9", "--run-dir", str(stack.run_dir / "nobody")],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode != 0
    assert result.stderr == ("venetctl: the worker needs CAP_NET_ADMIN for the kernel table and its queue or log group: "
                             "run it as root\n")


def test_stats_command(stack):
    out = stack.venetctl("stats").stdout
    assert "nflog backend" in out and "101:" in out
    assert '"DROP_SOURCE"' in stack.venetctl("stats", "--json").stdout


def test_queue_overflow_is_counted_and_the_worker_goes_on(queue_stack):
    """The worker is frozen (SIGSTOP) while 6,000 packets arrive: the 4,096-packet queue overflows,
    the kernel drops the rest (fail closed) and counts them; thawed, the worker answers what was
    queued and carries on."""
    stack = queue_stack
    c101 = stack.containers["101"]
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT + 3)
    sock = in_netns(c101, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert stack.worker is not None
    try:
        sock.bind((own("101", 4), 0))
        stack.worker.send_signal(signal.SIGSTOP)
        try:
            for _ in range(6000):
                sock.sendto(b"x", (OUTSIDE_V4, PORT + 3))
        finally:
            stack.worker.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while echo.received < 4096 and time.monotonic() < deadline:
            time.sleep(0.05)
        queues = stack.stats()["queues"]["0"]
        assert queues["queue_dropped"] + queues["user_dropped"] >= 6000 - 4096
        assert 0 < echo.received <= 6000 - (queues["queue_dropped"] + queues["user_dropped"])
        assert "dropped (queue full)" in stack.venetctl("stats").stdout
        assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT + 3)  # and it goes on
    finally:
        sock.close()
        echo.close()


def test_two_queues_two_threads(make_netns, tmp_path):
    """--queues 2 --queue-cpu-fanout in the worker (queue mode): packets sent from each CPU go to
    their own queue, each judged the same way, counters added up."""
    from tests.e2e.conftest import build, teardown

    stack = build(make_netns, tmp_path, mode="queue", worker=False)
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT)
    try:
        stack.start_worker("--queues", "2", "--queue-cpu-fanout")
        c101 = stack.containers["101"]
        ip("-n", c101, "addr", "add", "192.0.2.77/32", "dev", "venet0")
        cpus = sorted(os.sched_getaffinity(0))[:2]
        for cpu in cpus:
            assert on_cpu(cpu, lambda: udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT))
            assert not on_cpu(cpu, lambda: udp_probe(c101, "192.0.2.77", OUTSIDE_V4, PORT, timeout=0.3))
        stats = stack.stats()
        assert set(stats["queues"]) == {"0", "1"}
        assert stats["containers"]["101"]["ACCEPT"] >= len(cpus) and stats["containers"]["101"]["DROP_SOURCE"] >= len(cpus)
        lines = subprocess.run(["ip", "netns", "exec", stack.host, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        seen = {int(line.split()[0]): int(line.split()[7]) for line in lines}
        if len(cpus) == 2:
            assert seen[0] > 0 and seen[1] > 0, f"one queue saw nothing: {lines}"
    finally:
        echo.close()
        teardown(stack)


def on_cpu(cpu: int, work):
    """Run `work` in a thread pinned to `cpu` (its packets are handled there, hence its queue)."""
    result = []

    def target() -> None:
        os.sched_setaffinity(0, {cpu})
        result.append(work())

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result[0]
