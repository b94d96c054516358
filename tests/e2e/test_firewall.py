"""Transparent and unbypassable: the node's own firewall still applies to what venet allows, and
nothing another tool does -- rules before or after ours, in any table -- lets a forbidden packet
through. Both modes, both families."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, ip, on_node
from tests.e2e.traffic import UdpEcho, in_netns, ping, udp_probe

pytestmark = pytest.mark.netns
PORT = 7200
OUTSIDE = {4: OUTSIDE_V4, 6: OUTSIDE_V6}
NODE = {4: UPLINK_V4, 6: UPLINK_V6}
IPTABLES = {4: "iptables", 6: "ip6tables"}
ICMP = {4: "icmp", 6: "ipv6-icmp"}


def own(ctid: str, family: int) -> str:
    return ADDRESSES[ctid][0 if family == 4 else 1]


@pytest.fixture
def echoes(any_stack):
    made = [UdpEcho(any_stack.outside, a, PORT) for a in (OUTSIDE_V4, OUTSIDE_V6)]
    made += [UdpEcho(any_stack.host, a, PORT) for a in (UPLINK_V4, UPLINK_V6)]
    yield made
    for echo in made:
        echo.close()


@pytest.mark.parametrize("family", [4, 6])
def test_admin_rules_after_ours_are_honoured(any_stack, echoes, family):
    """The admin's FORWARD, INPUT and OUTPUT rules (appended, so after anything of ours) stop what
    they name in container traffic; what they do not name still flows."""
    stack = any_stack
    c101, tool = stack.containers["101"], IPTABLES[family]
    assert ping(c101, own("101", family), OUTSIDE[family])
    on_node(stack, tool, "-A", "FORWARD", "-s", own("101", family), "-p", ICMP[family], "-j", "DROP")
    on_node(stack, tool, "-A", "INPUT", "-s", own("101", family), "-p", "udp", "--dport", str(PORT), "-j", "DROP")
    on_node(stack, tool, "-A", "OUTPUT", "-d", own("102", family), "-p", ICMP[family], "-j", "DROP")
    assert not ping(c101, own("101", family), OUTSIDE[family], timeout=0.5), "FORWARD rule skipped"
    assert udp_probe(c101, own("101", family), OUTSIDE[family], PORT), "FORWARD rule hit what it does not name"
    assert not udp_probe(c101, own("101", family), NODE[family], PORT, timeout=0.3), "INPUT rule skipped"
    assert not ping(stack.host, NODE[family], own("102", family), timeout=0.5), "OUTPUT rule skipped"
    assert ping(stack.host, NODE[family], own("101", family))


@pytest.mark.parametrize("family", [4, 6])
def test_nat_and_a_mark_set_before_us_survive(any_stack, echoes, family):
    """An SNAT rule applies to container traffic, and a mark another tool sets before our chains (an
    nftables chain at priority -500) is still there for a FORWARD rule after them."""
    stack = any_stack
    c101, tool = stack.containers["101"], IPTABLES[family]
    on_node(stack, tool, "-t", "nat", "-A", "POSTROUTING", "-s", own("101", family), "-o", "up0",
            "-j", "SNAT", "--to-source", NODE[family])
    outside_echo = echoes[0 if family == 4 else 1]
    assert udp_probe(c101, own("101", family), OUTSIDE[family], PORT)
    assert outside_echo.arrivals[-1][1] == NODE[family], "SNAT was skipped"
    on_node(stack, "nft", "add table inet marker; add chain inet marker pre "
            "{ type filter hook prerouting priority -500; }; add rule inet marker pre iifname vnf102 meta mark set 0x42")
    on_node(stack, tool, "-A", "FORWARD", "-m", "mark", "--mark", "0x42", "-j", "DROP")
    assert not udp_probe(stack.containers["102"], own("102", family), OUTSIDE[family], PORT, timeout=0.3), "mark lost"
    assert udp_probe(c101, own("101", family), OUTSIDE[family], PORT)


def _stream(netns: str, source: str, destination: str, stop: threading.Event, count: list[int]) -> threading.Thread:
    """Datagrams from `source` (an address the container's root gave itself) every 2 ms, bounded."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    sock = in_netns(netns, lambda: socket.socket(family, socket.SOCK_DGRAM))
    sock.bind((source, 0))

    def run() -> None:
        deadline = time.monotonic() + 20
        with sock:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    sock.sendto(b"s", (destination, PORT))
                    count[0] += 1
                except OSError:
                    pass
                time.sleep(0.002)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("family", [4, 6])
def test_foreign_accepts_do_not_help_a_revoked_or_spoofed_address(any_stack, echoes, family):
    """Another tool accepts ESTABLISHED first in FORWARD and adds an nftables table that accepts
    everything at every hook. A stream from an address the admin then revokes (the root keeps it
    inside) stops at once; a spoofed stream never passes."""
    stack = any_stack
    c101, tool = stack.containers["101"], IPTABLES[family]
    extra = "192.0.2.60" if family == 4 else "2001:db8:1::60"
    spoofed = "192.0.2.61" if family == 4 else "2001:db8:1::61"
    stack.venetctl("set", "101", "--ipadd", extra)
    ip("-n", c101, "addr", "add", spoofed, "dev", "venet0", *(["nodad"] if family == 6 else []))
    on_node(stack, tool, "-I", "FORWARD", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    on_node(stack, "nft", "add table inet foreign; "
            "add chain inet foreign pre { type filter hook prerouting priority -1000; policy accept; }; "
            "add rule inet foreign pre accept; "
            "add chain inet foreign forwarded { type filter hook forward priority -1000; policy accept; }; "
            "add rule inet foreign forwarded accept; "
            "add chain inet foreign post { type filter hook postrouting priority -1000; policy accept; }; "
            "add rule inet foreign post accept")
    echo = echoes[0 if family == 4 else 1]
    stop, sent_revoked, sent_spoofed = threading.Event(), [0], [0]
    threads = [_stream(c101, extra, OUTSIDE[family], stop, sent_revoked),
               _stream(c101, spoofed, OUTSIDE[family], stop, sent_spoofed)]
    try:
        time.sleep(0.5)
        stack.venetctl("set", "101", "--ipdel", extra)
        revoked_at = time.monotonic()
        ip("-n", c101, "addr", "add", extra, "dev", "venet0", *(["nodad"] if family == 6 else []))  # root keeps it
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    sources = [(t, s) for t, s in echo.arrivals]
    assert any(s == extra and t < revoked_at for t, s in sources), "control: the granted stream never flowed"
    assert not [t for t, s in sources if s == extra and t > revoked_at + 0.01], "the revoked address kept talking"
    assert not [s for _, s in sources if s == spoofed], "spoofed datagrams passed"
    assert sent_spoofed[0] > 100 and sent_revoked[0] > 100


def test_iptables_flush_changes_nothing_for_us(any_stack, echoes):
    stack = any_stack
    c101 = stack.containers["101"]
    ip("-n", c101, "addr", "add", "192.0.2.62/32", "dev", "venet0")
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "raw", "mangle", "nat"):
            on_node(stack, tool, "-t", table, "-F")
    assert not udp_probe(c101, "192.0.2.62", OUTSIDE_V4, PORT, timeout=0.3)
    assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)


def _wait_restored(stack, since: float, restores: int, limit: float = 5.0) -> float:
    """Seconds from `since` until the worker has put the table back a `restores`-th time (polled
    every 10 ms through its counters)."""
    while time.monotonic() - since < limit:
        if stack.stats()["guard"]["tables_restored"] >= restores:
            return time.monotonic() - since
        time.sleep(0.01)
    raise AssertionError("the table was not restored")


ATTACKS = ["flush ruleset", "delete table", "permissive table", "dormant", "rule slipped in"]


def test_guard_restores_the_table_under_a_spoofed_stream(any_stack, echoes):
    """Another tool removes or rewrites our table, each way five times, while 101 streams from a
    spoofed address: each time the worker puts it back within 2 s and counts it; nothing spoofed
    passes once it is back, and honest traffic works."""
    restored = 0
    for attack in ATTACKS:
        restored = _attack_table(any_stack, echoes, attack, restored)


def _attack_table(stack, echoes, attack: str, restored: int) -> int:
    c101 = stack.containers["101"]
    ip("-n", c101, "addr", "replace", "192.0.2.63/32", "dev", "venet0")
    permissive = ("add chain inet venetfilter leaving { type filter hook prerouting priority -450; policy accept; }"
                  if stack.mode == "queue" else "add chain netdev venetfilter in_x "
                  '{ type filter hook ingress device "vnf101" priority -500; policy accept; }')
    commands = {
        "flush ruleset": "flush ruleset",
        "delete table": f"delete table {stack.table}",
        "permissive table": f"delete table {stack.table}; add table {stack.table}; {permissive}",
        "dormant": f"add table {stack.table} {{ flags dormant; }}",
        "rule slipped in": f"insert rule {stack.refusing_chain} accept",
    }
    echo = echoes[0]
    stop, sent = threading.Event(), [0]
    thread = _stream(c101, "192.0.2.63", OUTSIDE_V4, stop, sent)
    times, restored_at = [], []
    try:
        for round_ in range(5):
            started = time.monotonic()
            on_node(stack, "nft", commands[attack])
            times.append(_wait_restored(stack, started, restored + round_ + 1))
            restored_at.append(time.monotonic())
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    late = [t for t, s in echo.arrivals if s == "192.0.2.63" and any(r < t < r + 0.25 for r in restored_at[:-1])
            or s == "192.0.2.63" and t > restored_at[-1]]
    assert not late, f"{len(late)} spoofed datagrams passed after the table was back"
    assert max(times) < 2.0, f"restore took {max(times):.2f} s"
    guard = stack.stats()["guard"]
    assert guard["tables_restored"] >= restored + 5
    assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)
    times.sort()
    print(f"{attack}: restored in {times[2] * 1000:.0f} ms (median of 5), max {times[-1] * 1000:.0f} ms")
    assert "reinstalled" in stack.worker_log()
    return guard["tables_restored"]


def test_deleted_set_elements_are_put_back(any_stack, echoes):
    """Queue mode: the sets' elements; default mode: the per-link chains' accepts."""
    stack = any_stack
    restored = "elements_restored" if stack.mode == "queue" else "tables_restored"
    before = stack.stats()["guard"][restored]
    if stack.mode == "queue":
        on_node(stack, "nft", "flush set inet venetfilter own4")
    else:
        index = int(on_node(stack, "cat", "/sys/class/net/vnf101/ifindex"))
        on_node(stack, "nft", f"flush chain netdev venetfilter in_{index}")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and stack.stats()["guard"][restored] == before:
        time.sleep(0.05)
    assert stack.stats()["guard"][restored] > before
    assert udp_probe(stack.containers["101"], own("101", 4), OUTSIDE_V4, PORT)


def test_no_guard_leaves_the_table_alone(stack):
    stack.stop_worker()
    stack.start_worker("--no-guard")
    on_node(stack, "nft", f"delete table {stack.table}")
    time.sleep(1.2)
    result = subprocess.run(["ip", "netns", "exec", stack.host, "nft", "list", "table", *stack.table.split()],
                            capture_output=True)
    assert result.returncode != 0
    assert stack.stats()["guard"] == {**stack.stats()["guard"], "enabled": False, "checks": 0}


def test_a_link_moved_out_of_our_group_is_put_back(any_stack, echoes):
    """The kernel knows our links by their interface group; another tool moves 101's link out of it
    while 101 spoofs. The worker puts it back within moments and counts it; nothing spoofed passes
    once it is back."""
    stack = any_stack
    c101 = stack.containers["101"]
    ip("-n", c101, "addr", "add", "192.0.2.64/32", "dev", "venet0")
    ip("-n", stack.host, "link", "set", "vnf101", "group", "0")
    deadline = time.monotonic() + 2
    while stack.stats()["guard"]["links_regrouped"] == 0:
        assert time.monotonic() < deadline, "the link was not put back in its group"
        time.sleep(0.01)
    assert "group 7761510" in subprocess.run(["ip", "-n", stack.host, "link", "show", "vnf101"],
                                             capture_output=True, text=True).stdout
    assert not udp_probe(c101, "192.0.2.64", OUTSIDE_V4, PORT, timeout=0.3)
    assert udp_probe(c101, own("101", 4), OUTSIDE_V4, PORT)
    assert "was outside group" in stack.worker_log()
