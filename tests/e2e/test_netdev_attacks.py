"""The default mode's netdev table under attack: a hostile container root writing every byte of its
frames, and a careless admin (or another tool) changing links, chains and workers on the node.

The table (`venetfilter.rules.netdev`) binds two base chains to each container link *by name* and
accepts, per address, only what that link may send or receive; everything else ends in a drop.
Frame tricks therefore have little to work with (a packet is IP with an own source, or it is
dropped), while everything that changes which chain sees a link's packets -- renames, links that
appear, another process editing a chain, a table that cannot be written, a shaper that re-injects
packets past the hook -- is where it broke, and so is what is counted across re-installs.

Conventions as in test_attacks.py: what broke is xfail(strict=True, raises=Breach) with the
mechanism and the measured numbers in its reason; only the attack's own check raises `Breach`, so a
failed control or a broken fixture is a plain failure. Every test has a control showing the path
it watches is real. The measured numbers are printed (``-s``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, ip, on_node, wait_for
from tests.e2e.traffic import UdpEcho, in_netns, udp_probe
from tests.e2e.wire import (
    Breach,
    Flood,
    _checksum,
    Sniffer,
    breach,
    ethernet,
    fragments,
    frame_sender,
    ipv4,
    ipv6,
    link_sender,
    udp,
)
from venetfilter.config.addresses import parse_address_tokens
from venetfilter.config.runtime import load_state, save_state
from venetfilter.config.store import global_lock
from venetfilter.worker import request

pytestmark = pytest.mark.netns

A4, A6 = ADDRESSES["101"]
B4, B6 = ADDRESSES["102"]
SPOOFED4, SPOOFED6 = "192.0.2.66", "2001:db8:1::66"
PORT = 7900
UDP = 17
MAC = "02:00:5e:76:6e:66"  # a hand-made link's two ends share it, as the product's links do


def forged(source: str, tag: bytes = b"forged") -> bytes:
    """A UDP datagram from `source` to the outside host's echo port."""
    outside = OUTSIDE_V6 if ":" in source else OUTSIDE_V4
    build = ipv6 if ":" in source else ipv4
    return build(source, outside, UDP, udp(source, outside, 4000, PORT, tag))


def ifindex(stack, name: str) -> int:
    return in_netns(stack.host, lambda: socket.if_nametoindex(name))


def arrivals(echo: UdpEcho, source: str, since: float = 0.0) -> list[float]:
    """Seconds after `since` at which datagrams from `source` reached `echo`."""
    return [t - since for t, s in echo.arrivals if s == source and t >= since]


@contextlib.contextmanager
def worker_busy(stack, seconds: float = 0.2):
    """The worker frozen (SIGSTOP) for `seconds` from entering the block: as busy as a loaded node
    makes it (the link events wait in its socket). Without it the race between the attacker's
    thread and the worker's reaction, on two shared CPUs, decides whether the few ms show."""
    assert stack.worker is not None
    stack.worker.send_signal(signal.SIGSTOP)
    until = time.monotonic() + seconds
    try:
        yield
        time.sleep(max(0.0, until - time.monotonic()))
    finally:
        stack.worker.send_signal(signal.SIGCONT)


def window(times: list[float]) -> str:
    return f"{len(times)} forged datagrams, from {min(times, default=0):.3f} s to {max(times, default=0):.3f} s"


def honest(netns: str, source: str = A4, tries: int = 3) -> bool:
    destination = OUTSIDE_V6 if ":" in source else OUTSIDE_V4
    return any(udp_probe(netns, source, destination, PORT) for _ in range(tries))


def counters(stack, ctid: str) -> dict[str, int]:
    return stack.stats()["containers"][ctid]


def refused_first(stack, echo: UdpEcho, netns: str, source: str = SPOOFED4) -> None:
    """Control: a burst of forged datagrams from `netns` is refused, an honest one passes."""
    send = frame_sender(netns, "venet0")
    try:
        for n in range(200):
            send(forged(source, b"control %d" % n))
    finally:
        send.close()  # type: ignore[attr-defined]
    assert honest(netns), "control: honest datagram lost"
    assert not arrivals(echo, source), "control: forged datagrams passed before the change"


def snmp(stack, key: str, field: str) -> int:
    """A counter of the node's /proc/net/snmp (Ip InHdrErrors) or snmp6 (Ip6InHdrErrors, `field` '')."""
    if key == "Ip6":
        text = on_node(stack, "cat", "/proc/net/snmp6")
        return int(re.search(rf"^{field}\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    text = on_node(stack, "cat", "/proc/net/snmp")
    lines = [line.split() for line in text.splitlines() if line.startswith(key + ":")]
    return int(lines[1][lines[0].index(field)])


def chain_accepts(stack, chain: str) -> dict[str, int]:
    """{address: packets} of the accept rules of our chain `chain`."""
    items = json.loads(on_node(stack, "nft", "-j", "list", "chain", "netdev", "venetfilter", chain))["nftables"]
    found = {}
    for item in items:
        rule = item.get("rule")
        if not rule:
            continue
        address, packets = None, 0
        for expr in rule["expr"]:
            match = expr.get("match")
            if match and match.get("op") == "==" and isinstance(match.get("right"), str):
                address = match["right"]
            if "counter" in expr:
                packets = int(expr["counter"]["packets"])
        if address is not None:
            found[address] = packets
    return found


class ReopeningFlood:
    """`packets` written on venet0 of `netns` in bursts from a thread (bounded in time), opening the
    link again by name whenever it vanishes (a container being stopped and started)."""

    def __init__(self, netns: str, packets: list[bytes], limit: float = 8.0) -> None:
        self.netns, self.packets, self.limit, self.sent = netns, packets, limit, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self):
        sock = in_netns(self.netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
        try:
            sock.bind(("venet0", 0))
        except OSError:
            sock.close()
            return None
        mac = sock.getsockname()[4]
        return sock, [mac + mac + (b"\x86\xdd" if p[0] >> 4 == 6 else b"\x08\x00") + p for p in self.packets]

    def _run(self) -> None:
        deadline, opened = time.monotonic() + self.limit, None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if opened is None:
                opened = self._open()
                if opened is None:
                    time.sleep(0.002)
                    continue
            sock, frames = opened
            try:
                for _ in range(10):
                    for frame in frames:
                        sock.send(frame)
                        self.sent += 1
            except OSError:
                sock.close()
                opened = None
            time.sleep(0.0005)
        if opened is not None:
            opened[0].close()

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.sent


@pytest.fixture
def echo(stack):
    """The outside host's UDP echo servers (IPv4 and IPv6) on PORT; the IPv4 one is yielded, the
    IPv6 one is its attribute `v6`."""
    four, six = UdpEcho(stack.outside, OUTSIDE_V4, PORT), UdpEcho(stack.outside, OUTSIDE_V6, PORT)
    four.v6 = six  # type: ignore[attr-defined]
    yield four
    four.close()
    six.close()


# == broke it =====================================================================================

RENAME = (
    "the per-link chains are bound to a device NAME (NFTA_HOOK_DEV); Linux >= 6.16 keeps a netdev chain whose "
    "device is renamed, hooked to the old name, so the renamed link has no chain at all and everything it "
    "carries passes (nft list still shows the chain on \"vnf101\"; the guard's fingerprint does not change). "
    "Only the worker's link watch re-installs the table with the new name. "
)


@pytest.mark.parametrize("worker", [
    pytest.param("running", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        RENAME + "Measured with the worker busy for 0.2 s: 5,000-6,000 forged datagrams, none after the re-install. "
        "Not busy, the link renamed while up: 7-180 forged datagrams in the ~1-15 ms before the re-install "
        "(down/rename/up: 30-120), a race with the attacker's thread the test does not rely on."))),
    pytest.param("running, down/rename/up", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        RENAME + "The admin's `ip link set vnf101 down; ... name ct101; ip link set ct101 up`, the worker busy "
        "for 0.2 s: ~5,500 forged datagrams from the `up` to the re-install."))),
    pytest.param("killed", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        RENAME + "With no worker nobody does: measured 28,000-44,000 forged datagrams in 1-1.5 s, all of "
        "them until a worker or a venetctl command installs the table again. Fix: a backstop that does not "
        "depend on names, e.g. an inet prerouting/postrouting chain (priority -450) that drops "
        "`iifgroup 7761510 iif . iifname != @bound` (and oif) where @bound holds the (ifindex, name) pairs "
        "the netdev chains were made for, installed in the same transaction; the link watch could also "
        "rename a registered link back at once, as it regroups one"))),
])
def test_a_renamed_container_link_is_unfiltered(stack, echo, worker):
    """The admin renames vnf101 while 101's root streams forged datagrams (about 10,000 a second),
    the worker busy for 0.2 s (running) or killed. Control: the stream is refused before, an honest
    datagram passes."""
    flood = Flood(stack.containers["101"], forged(SPOOFED4), limit=3.0)
    try:
        time.sleep(0.2)
        assert honest(stack.containers["101"]), "control: honest datagram lost"
        assert flood.sent > 500 and not arrivals(echo, SPOOFED4), "control: the forged stream is not refused"
        if worker == "killed":
            stack.stop_worker(signal.SIGKILL)
            time.sleep(0.2)
            assert not arrivals(echo, SPOOFED4), "control: the kernel stopped refusing when the worker died"
        since = time.monotonic()
        steps = [("vnf101", "name", "ct101")]  # allowed while up (Linux 6.x)
        if worker != "running":
            steps = [("vnf101", "down"), ("vnf101", "name", "ct101"), ("ct101", "up")]
        with worker_busy(stack) if worker.startswith("running") else contextlib.nullcontext():
            for args in steps:
                ip("-n", stack.host, "link", "set", *args)
        time.sleep(1.0)
        chains = on_node(stack, "nft", "list", "table", "netdev", "venetfilter")
    finally:
        sent = flood.close()
        subprocess.run(["ip", "-n", stack.host, "link", "set", "ct101", "name", "vnf101"], capture_output=True)
    passed = arrivals(echo, SPOOFED4, since)
    bound = re.findall(r'hook ingress device "(\w+)"', chains)
    print(f"\nworker {worker}: {sent} sent, {window(passed)} after the rename; ingress chains on {bound}")
    if worker.startswith("running"):
        assert not [t for t in passed if t > 0.5], "forged datagrams passed after the worker re-installed the table"
    breach(passed, f"{len(passed)} forged datagrams passed through the renamed link")


@pytest.mark.xfail(strict=True, raises=Breach, reason=(
    RENAME + "A new link given the old name gets that chain, with 101's accepts: with no worker running, "
    "another namespace on a hand-made vnf101 sends from 101's address (measured: every one of ~12,000 datagrams "
    "passed, X's other forged source refused) while 101 itself, on the renamed link, is not filtered at all. "
    "Fix as for the rename"))
def test_a_new_link_with_a_renamed_links_name_inherits_its_addresses(stack, echo, make_netns):
    """Worker killed; the admin renames vnf101 to ct101 and creates a new vnf101 whose peer is in a
    namespace X. X writes datagrams from 101's address A4. Control: X's own forged source (not 101's)
    is refused, so the chain is on X's link and judging."""
    x = make_netns("vfx")
    stack.stop_worker(signal.SIGKILL)
    ip("-n", stack.host, "link", "set", "vnf101", "name", "ct101")
    try:
        ip("-n", stack.host, "link", "add", "vnf101", "address", MAC, "type", "veth", "peer", "name", "eth0",
           "address", MAC, "netns", x)
        ip("-n", x, "link", "set", "eth0", "up")
        ip("-n", stack.host, "link", "set", "vnf101", "up")
        since = time.monotonic()
        floods = [Flood(x, forged(source), ifname="eth0", limit=0.4) for source in (A4, SPOOFED4)]
        time.sleep(0.5)
        sent = [flood.close() for flood in floods]
        time.sleep(0.1)
    finally:
        subprocess.run(["ip", "-n", stack.host, "link", "del", "vnf101"], capture_output=True)
        subprocess.run(["ip", "-n", stack.host, "link", "set", "ct101", "name", "vnf101"], capture_output=True)
    taken, refused = arrivals(echo, A4, since), arrivals(echo, SPOOFED4, since)
    print(f"\nfrom X: 101's address {len(taken)} of {sent[0]} passed, another source {len(refused)} of {sent[1]}")
    assert sent[1] > 500 and not refused, "control: X's link is not judged by 101's chain"
    breach(taken, f"{len(taken)} datagrams from 101's address A4 sent by namespace X passed as 101's")


def moved_in_under_a_forged_stream(stack, echo, x: str, link: list[str],
                                   moving_in=contextlib.nullcontext) -> tuple[int, list[float]]:
    """A veth made in namespace X (node end `link`: its name, then any `ip link add` options) and
    moved into the node, up, while X streams forged datagrams from SPOOFED4 (nothing crosses while
    the node end is down). `moving_in()`: the context the move happens in. Returns what was sent and
    the arrival times of the forged datagrams, from the move on."""
    name = link[0]
    ip("-n", x, "link", "add", name, "address", MAC, *link[1:], "type", "veth", "peer", "name", "eth0",
       "address", MAC)
    ip("-n", x, "link", "set", "eth0", "up")
    flood = Flood(x, forged(SPOOFED4), ifname="eth0", limit=1.5)
    try:
        time.sleep(0.1)
        since = time.monotonic()
        with moving_in():
            ip("-n", x, "link", "set", name, "netns", stack.host, "up")
        time.sleep(1.0)
    finally:
        sent = flood.close()
    return sent, arrivals(echo, SPOOFED4, since)


@pytest.mark.parametrize("worker", [
    pytest.param("running", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        "a link of our prefix gets chains only when the worker re-installs the table after its "
        "RTM_NEWLINK; a link that arrives already up (a veth made in another namespace and moved in with "
        "`ip link set vnf999 netns HOST up`, as CNI-style tools do) carries everything until then. Measured "
        "with the worker busy for 0.2 s: ~5,500 forged datagrams, then refused and counted as DROP_UNKNOWN_LINK; "
        "not busy, 80-220 in the first ~2-10 ms (a race the test does not rely on). "
        "Fix: a catch-all that needs no per-link chain (see the rename test), so that an unknown link of "
        "our prefix is refused from its first packet"))),
    pytest.param("killed", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        "a link of our prefix gets chains only when a worker (or a venetctl command) installs the "
        "table; with no worker a hand-made vnf999 has none and everything on it passes (measured: every one "
        "of ~30,000 forged datagrams in 1 s). Fix: a name-independent catch-all (see the rename test)"))),
])
def test_a_hand_made_link_of_our_prefix(stack, echo, make_netns, worker):
    """The admin makes a veth pair in a namespace X they control and moves the node end in as vnf999,
    up; X's root streams forged datagrams from the start. It must be refused: nothing passes, and
    (worker running) DROP_UNKNOWN_LINK is counted. Control: the same stream from 101 is refused."""
    x = make_netns("vfx")
    refused_first(stack, echo, stack.containers["101"])
    if worker == "killed":
        stack.stop_worker(signal.SIGKILL)
    else:
        unknown = stack.stats()["unknown_links"]
    busy = (lambda: worker_busy(stack)) if worker == "running" else contextlib.nullcontext
    sent, passed = moved_in_under_a_forged_stream(stack, echo, x, ["vnf999"], busy)
    print(f"\nworker {worker}: {sent} sent, {window(passed)}")
    assert sent > 1000, "control: X's stream did not flow"
    if worker == "running":
        late = [t for t in passed if t > 0.5]
        assert not late, f"{len(late)} forged datagrams passed after the worker re-installed the table"
        assert stack.stats()["unknown_links"] > unknown, "the refused packets were not counted as DROP_UNKNOWN_LINK"
    breach(passed, f"{len(passed)} forged datagrams passed on the hand-made link")


IFB = (
    "an IFB device, the usual way to shape what a container uploads (tc ingress on vnf101 redirecting to ifb0, "
    "a tbf/htb there), bypasses the netdev ingress hook: tc ingress runs before nf_ingress in "
    "__netif_receive_skb_core, and ifb re-injects each packet into vnf101's receive path with "
    "tc_skip_classify set, which jumps over both tc and nf_ingress (skip_classify). Our in_N chain never sees "
    "a packet of 101 again: measured 25,000-29,000 of as many forged datagrams in 1 s, none counted. The queue "
    "mode's inet prerouting chain (in ip_rcv) still judges them. Fix: an IP-level backstop keyed by ifindex "
    "that does not depend on the ingress hook -- an inet prerouting chain at -450 with "
    "`iifgroup 7761510 iif . ip saddr != @own4 drop` (and ip6, and `iif @links` for registered links) as the "
    "queue mode has, deciding in the kernel instead of queueing; at least, the link watch could refuse or "
    "report an ingress qdisc on a container link (RTM_NEWQDISC)"
)


@pytest.fixture
def shaped(any_stack, request):
    """`any_stack` with the outside host's echo server; the default mode's run is a known breach."""
    if any_stack.mode == "default":
        request.applymarker(pytest.mark.xfail(strict=True, raises=Breach, reason=IFB))
    server = UdpEcho(any_stack.outside, OUTSIDE_V4, PORT)
    yield any_stack, server
    server.close()


def test_ingress_shaping_through_an_ifb_device(shaped):
    """The admin shapes 101's upload: ingress qdisc on vnf101, every packet redirected to ifb0, a
    token bucket there. 101's forged stream must stay refused (in both modes). Controls: before,
    the stream is refused; after, 101's honest datagrams still pass -- through the shaper (its
    qdisc counts them)."""
    stack, server = shaped
    c101 = stack.containers["101"]
    refused_first(stack, server, c101)
    before = counters(stack, "101")["DROP_SOURCE"]
    for command in (["ip", "link", "add", "ifb0", "type", "ifb"], ["ip", "link", "set", "ifb0", "up"],
                    ["tc", "qdisc", "add", "dev", "ifb0", "root", "tbf", "rate", "1gbit", "burst", "256k",
                     "latency", "50ms"],
                    ["tc", "qdisc", "add", "dev", "vnf101", "handle", "ffff:", "ingress"],
                    ["tc", "filter", "add", "dev", "vnf101", "parent", "ffff:", "protocol", "all", "u32", "match",
                     "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "ifb0"]):
        on_node(stack, *command)
    assert honest(c101), "control: honest datagrams do not pass the shaper"
    since = time.monotonic()
    flood = Flood(c101, forged(SPOOFED4), limit=1.0)
    time.sleep(1.1)
    sent = flood.close()
    time.sleep(0.2)
    qdisc = on_node(stack, "tc", "-s", "qdisc", "show", "dev", "ifb0")
    shaped_packets = int(re.search(r"Sent \d+ bytes (\d+) pkt", qdisc).group(1))  # type: ignore[union-attr]
    passed = arrivals(server, SPOOFED4, since)
    counted = counters(stack, "101")["DROP_SOURCE"] - before
    print(f"\n{stack.mode} mode: {sent} forged sent, {shaped_packets} packets through ifb0, {len(passed)} passed, "
          f"{counted} counted as DROP_SOURCE")
    assert shaped_packets >= sent // 2, "control: the stream did not go through the shaper"
    breach(passed, f"{len(passed)} of {sent} forged datagrams passed through the shaper")
    assert counted > 0


TABLE_OWNER = (
    "the table has no owner: any process may change our per-link chains, and the guard (user space, every "
    "0.5 s) only puts the table back afterwards. `flags owner` (with NFT_TABLE_F_PERSIST so that it outlives "
    "the worker) makes the kernel refuse other processes' changes (EPERM). Measured: 0.25-0.3 s, "
)


@pytest.mark.parametrize("change", [
    pytest.param("flush chain", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        TABLE_OWNER + "6,700-7,900 forged datagrams (in_N is empty, policy accept)"))),
    pytest.param("delete chain", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        TABLE_OWNER + "6,400-8,200 forged datagrams (no chain on the link at all)"))),
    pytest.param("insert accept", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        TABLE_OWNER + "6,400-8,000 forged datagrams (an `accept` before our rules)"))),
    pytest.param("delete goto", marks=pytest.mark.xfail(strict=True, raises=Breach, reason=(
        TABLE_OWNER + "6,300-7,700 forged datagrams (the chain falls through to its policy, accept)"))),
])
def test_another_tool_edits_a_per_link_chain(stack, echo, change):
    """The admin "debugs" 101's ingress chain while 101 streams forged datagrams."""
    chain = f"in_{ifindex(stack, 'vnf101')}"
    flood = Flood(stack.containers["101"], forged(SPOOFED4), limit=2.0)
    try:
        time.sleep(0.2)
        assert flood.sent > 500 and not arrivals(echo, SPOOFED4), "control: the forged stream is not refused"
        restored = stack.stats()["guard"]["tables_restored"]
        since = time.monotonic()
        if change == "flush chain":
            on_node(stack, "nft", f"flush chain netdev venetfilter {chain}")
        elif change == "delete chain":
            on_node(stack, "nft", f"delete chain netdev venetfilter {chain}")
        elif change == "insert accept":
            on_node(stack, "nft", f"insert rule netdev venetfilter {chain} accept")
        else:
            listing = on_node(stack, "nft", "-a", "list", "chain", "netdev", "venetfilter", chain)
            handle = re.search(r"goto refused_in # handle (\d+)", listing).group(1)  # type: ignore[union-attr]
            on_node(stack, "nft", f"delete rule netdev venetfilter {chain} handle {handle}")
        wait_for(lambda: stack.stats()["guard"]["tables_restored"] > restored, what="the guard's restore")
        time.sleep(0.3)
    finally:
        flood.close()
    passed = arrivals(echo, SPOOFED4, since)
    print(f"\n{change}: {window(passed)}")
    assert honest(stack.containers["101"]), "honest traffic lost afterwards"
    assert not [t for t in passed if t > 0.8], "forged datagrams passed after the guard's restore"
    breach(passed, f"{len(passed)} forged datagrams reached the outside host")


def _toggle_address(stack, ctid: str, address: str) -> None:
    """Add `address` to `ctid`'s running record or take it away, and have the worker reload: what
    `venetctl set CTID --ipadd/--ipdel` does to the filter (the host side of it is not needed here)."""
    with global_lock(stack.run_dir):
        state = load_state(stack.run_dir)
        record = state.containers[ctid]
        kept = tuple(a for a in record.addresses if str(a.address) != address)
        added = kept if len(kept) < len(record.addresses) else kept + tuple(parse_address_tokens([address]))
        save_state(stack.run_dir, state.with_container(dataclasses.replace(record, addresses=added)))
    assert request(stack.run_dir, b"reload\n").startswith(b"ok")


@pytest.mark.xfail(strict=True, raises=Breach, reason=(
    "a link whose chains change (an address added or removed: `venetctl set 102 --ipadd/--ipdel`) gets new "
    "chains whose counters start from what was read just before (rules.kernel._update_links reads "
    "read_elements(), then runs the transaction); what the kernel counted on the old chains in between is "
    "lost. (Reloads that leave a link's chains alone no longer touch them: that part holds.) Measured: 30 "
    "changes of 102's addresses under a ping-pong stream of ~35,000 packets a second lost 2,800-9,800 of "
    "40,000-52,000 ACCEPTs (~100-330 a change: the read, the rendering and nft's parse fall in the gap). "
    "At HEAD 2cbde3d every reload re-installed the whole table the same way: 40 reloads lost 1,500-3,100 of "
    "~20,000. Fix: counters the transaction does not replace -- named counter objects (`counter c_IF_ADDR`, "
    "referenced by the accept rules, added or deleted only with their address), so that swapping a chain "
    "never re-writes a count"))
def test_address_changes_keep_the_kernels_counts(stack, echo):
    """102 ping-pongs datagrams with the outside host (each exchange is one packet leaving 102 and
    one entering it: two ACCEPTs). Control: without reloads the count is exact; with 30 reloads and
    changes of 101's addresses it stays exact (102's chains are not touched). Then 102's own
    addresses change 30 times: its ACCEPTs must still add up."""
    c102 = stack.containers["102"]
    sock = in_netns(c102, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind((B4, 0))
    sock.settimeout(0.2)

    def exchange(seconds: float) -> int:
        done, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.sendto(b"pingpong", (OUTSIDE_V4, PORT))
            try:
                sock.recv(64)
                done += 1
            except TimeoutError:
                raise AssertionError("a reply was lost") from None
        return done

    def accepts() -> int:
        time.sleep(0.05)
        return counters(stack, "102")["ACCEPT"]

    def during(change) -> tuple[int, int]:
        """(packets exchanged, ACCEPTs counted) while `change()` runs 30 times in a thread."""
        start = accepts()
        worker = threading.Thread(target=lambda: [change(n) for n in range(30)])
        worker.start()
        done = 0
        while worker.is_alive():
            done += exchange(0.02)
        worker.join()
        return 2 * done, accepts() - start

    try:
        start = accepts()
        quiet = 2 * exchange(0.3)
        control = accepts() - start
        others = during(lambda n: (_toggle_address(stack, "101", "192.0.2.210"),
                                   request(stack.run_dir, b"reload\n")))
        own = during(lambda n: _toggle_address(stack, "102", "192.0.2.220"))
    finally:
        sock.close()
    print(f"\nquiet: {quiet} packets, {control} ACCEPTs; others changing: {others[0]} packets, {others[1]} "
          f"ACCEPTs; 102 changing: {own[0]} packets, {own[1]} ACCEPTs ({own[0] - own[1]} lost)")
    assert control == quiet, f"control: {control} ACCEPTs for {quiet} packets without a reload"
    assert others[1] == others[0], f"{others[0] - others[1]} ACCEPTs lost while other links changed"
    assert own[0] > 200, "control: no traffic while 102 changed"
    breach(own[1] < own[0], f"{own[0] - own[1]} of {own[0]} ACCEPTs lost over 30 changes of 102's chains")


@pytest.fixture
def each_mode(any_stack):
    server = UdpEcho(any_stack.outside, OUTSIDE_V4, PORT)
    yield any_stack, server
    server.close()


def test_a_hand_made_link_in_our_group_under_another_name(each_mode, make_netns):
    """The admin (or a tool) makes a link in our interface group, named ct999, and moves its node
    end in, up, while the namespace behind it streams forged datagrams. It is a container link by
    its group: everything on it must be refused. Control: 101's forged stream is refused. (Broken in
    the default mode while it knew links by prefix and registration only: ~27,000 of ~30,000 forged
    datagrams passed in 1 s; its link list now reads the group too.)"""
    stack, server = each_mode
    x = make_netns("vfx")
    refused_first(stack, server, stack.containers["101"])
    sent, passed = moved_in_under_a_forged_stream(stack, server, x, ["ct999", "group", "7761510"])
    print(f"\n{stack.mode} mode: {sent} sent, {window(passed)}, unknown links {stack.stats()['unknown_links']}")
    assert sent > 1000, "control: the stream did not flow"
    breach([t for t in passed if t > 0.3], f"{len(passed)} forged datagrams passed on a link of our group")


# == held =========================================================================================


def test_a_link_name_nft_cannot_write_is_set_down_and_the_table_stays_writable(stack, echo, make_netns):
    """A tool makes a link named vnf"9 (nft has no escape for '"'; the kernel allows it) with its
    peer in a namespace X that spoofs, up. Broken at HEAD 2cbde3d: every later install was a syntax
    error that the worker logged but answered 'ok' to, so container 103 started afterwards had no
    chain (~8,600 of ~8,600 forged datagrams passed) and a revoked address of 101 still passed
    (~8,800), silently. Now the link watch sets such a link down and the table leaves it out:
    103 and the revocation must be in force, nothing from X passes once the watch has acted.
    Control: 103's own address passes, and the refusal of 101's forged stream."""
    c101, x, c103 = stack.containers["101"], make_netns("vfx"), make_netns("vfc")
    refused_first(stack, echo, c101)
    ip("-n", x, "link", "add", 'vnf"9', "address", MAC, "type", "veth", "peer", "name", "eth0", "address", MAC)
    ip("-n", x, "link", "set", "eth0", "up")
    from_x = Flood(x, forged(SPOOFED4, b"from X"), ifname="eth0", limit=1.0)
    since = time.monotonic()
    ip("-n", x, "link", "set", 'vnf"9', "netns", stack.host, "up")
    node = stack.node()
    node.set("103", ["192.0.2.3"], save=True)
    started = node.start("103", netns=c103)
    try:
        assert honest(c103, "192.0.2.3"), "control: 103's own address does not pass"
        revoked = node.set("101", delete=[A4])
        time.sleep(0.2)
        after = time.monotonic()
        for netns, source in ((c103, "192.0.2.66"), (c101, A4)):
            flood = Flood(netns, forged(source), limit=0.3)
            time.sleep(0.3)
            flood.close()
        time.sleep(0.2)
    finally:
        from_x.close()
        node.stop("103")
    state = on_node(stack, "ip", "-o", "link", "show", 'vnf"9')
    early = arrivals(echo, SPOOFED4, since)
    forged_after = [t for t in arrivals(echo, SPOOFED4, after)]
    revoked_passed = arrivals(echo, A4, after)
    print(f"\nstart warnings {started.warnings}, set warnings {revoked.warnings}; from X before the watch: "
          f"{len(early) - len(forged_after)}; afterwards: forged {len(forged_after)}, revoked {len(revoked_passed)}; "
          f"the link is {'up' if ',UP' in state else 'down'}")
    assert ",UP" not in state, f"the unwritable link was left up: {state}"
    assert not forged_after, f"{len(forged_after)} forged datagrams passed (103's link or X's)"
    assert not revoked_passed, f"{len(revoked_passed)} datagrams from 101's revoked address passed"


@pytest.mark.parametrize("run_dir", ["same", "other"])
def test_a_second_worker_is_refused_and_the_first_keeps_serving(stack, echo, run_dir):
    """A second worker with another log group (--queue 7), on the same run dir or another one. Broken
    at HEAD 2cbde3d: it started, took over the control socket (unlinked as 'stale') and the two
    guards reinstalled the table in turn for as long as both ran (4-7 times each in 2.5-4 s). Now it
    must exit with a clear error before touching anything; the first keeps its group, its socket
    and its table. Control: the first worker serves group 0 and refuses 101's forged stream."""
    before = stack.stats()
    assert before["queue"] == 0, "control: the first worker does not serve log group 0"
    where = stack.run_dir if run_dir == "same" else stack.run_dir / "second"
    flood = Flood(stack.containers["101"], forged(SPOOFED4), limit=3.0)
    try:
        result = subprocess.run([sys.executable, "-m", "venetfilter.cli", "worker", "--netns", stack.host,
                                 "--run-dir", str(where), "--queue", "7"], capture_output=True, text=True, timeout=20)
        time.sleep(0.6)  # a guard's period: a fight would show
        after = stack.stats()
        refused_in = on_node(stack, "nft", "list", "chain", "netdev", "venetfilter", "refused_in")
        assert honest(stack.containers["101"]), "honest traffic lost"
    finally:
        flood.close()
    print(f"\nsecond worker ({run_dir} run dir): exit {result.returncode}: {result.stderr.strip()}")
    assert result.returncode != 0, "the second worker ran"
    assert "another worker" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert after["queue"] == 0 and "log group 0" in refused_in, "the first worker lost its socket or its group"
    assert after["guard"]["tables_restored"] == before["guard"]["tables_restored"], "the table was fought over"
    assert not arrivals(echo, SPOOFED4), "forged datagrams passed"


def test_refused_frames_with_a_mismatched_ethertype_are_counted_as_drops(stack):
    """101 writes its own IPv4 datagram under the IPv6 ethertype and its own IPv6 one under the IPv4
    ethertype, 50 each: the kernel refuses them (it reads the addresses at the ethertype's offsets).
    Broken at HEAD 2cbde3d: the core read the version nibble, saw an own source and said ACCEPT, so
    all 100 were counted as `raced` (the sign of a lagging table) and as no drop. Each must be a
    drop of 101's. Control: the same packets under their right ethertypes are accepted."""
    c101 = stack.containers["101"]
    send = link_sender(c101, "venet0")
    mac = send.mac  # type: ignore[attr-defined]
    four, six = forged(A4, b"mismatch"), forged(A6, b"mismatch")
    in_chain = f"in_{ifindex(stack, 'vnf101')}"
    before, raced, accepted = counters(stack, "101"), stack.stats()["raced"], chain_accepts(stack, in_chain)
    try:
        send(ethernet(mac, mac, 0x0800, four))  # controls
        send(ethernet(mac, mac, 0x86DD, six))
        for _ in range(50):
            send(ethernet(mac, mac, 0x86DD, four))
            send(ethernet(mac, mac, 0x0800, six))
        time.sleep(0.4)
    finally:
        send.close()  # type: ignore[attr-defined]
    after, raced = counters(stack, "101"), stack.stats()["raced"] - raced
    now = chain_accepts(stack, in_chain)
    drops = {k: after[k] - before[k] for k in after if k.startswith("DROP_") and after[k] > before[k]}
    print(f"\nkernel accepts: {now[A4] - accepted[A4]} IPv4, {now[A6] - accepted[A6]} IPv6 (the controls); "
          f"counted as drops: {drops}, as raced: {raced}")
    assert now[A4] - accepted[A4] == 1 and now[A6] - accepted[A6] == 1, "control: the right ethertypes not accepted"
    assert sum(drops.values()) >= 100 and raced == 0, f"not counted as drops: {drops}, raced {raced}"

TAG = b"<netdev-attack-frame>"


def qinq(mac: bytes, inner_type: int, body: bytes) -> bytes:
    """An 802.1ad frame: S-tag VLAN 5, C-tag VLAN 6, then `inner_type`."""
    return mac + mac + struct.pack("!HHHHH", 0x88A8, 5, 0x8100, 6, inner_type) + body


def test_frames_that_misstate_their_header_deliver_nothing(stack, echo):
    """101 writes frames that lie about their header: VLAN 5 and QinQ around a forged IPv4 (and an
    own one), the IPv6 ethertype around a forged IPv4 packet and vice versa, an own IPv6 header under
    version nibble 4 and an own IPv4 one under nibble 6, IHL 4, a total length beyond the frame, and
    headers cut short. Nothing tagged reaches the outside host or 102; the refused ones are
    counted with their reason. Control: an honest tagged frame arrives.

    Found on the way: frames with an own address at the right offset but the wrong version nibble,
    IHL < 5, a short total length, or an IPv6 header cut after byte 24 are ACCEPTED by our chain (`ip
    saddr` reads bytes 12-16, `ip6 daddr != ff00::/8` only byte 24, and nothing checks the rest) and
    counted as ACCEPT; ip_rcv/ipv6_rcv then discard them (InHdrErrors). Harmless
    for the forwarding path, but the node's ACCEPT counter counts packets that went nowhere."""
    c101 = stack.containers["101"]
    send = link_sender(c101, "venet0")
    mac = send.mac  # type: ignore[attr-defined]

    def v4(source: str, payload: bytes = TAG) -> bytes:
        return ipv4(source, OUTSIDE_V4, UDP, udp(source, OUTSIDE_V4, 4000, PORT, payload))

    def v6(source: str, payload: bytes = TAG) -> bytes:
        return ipv6(source, OUTSIDE_V6, UDP, udp(source, OUTSIDE_V6, 4000, PORT, payload))

    def nibble(packet: bytes, first: int) -> bytes:
        return bytes([first]) + packet[1:]

    long_total = bytearray(v4(A4))
    long_total[2:4], long_total[10:12] = struct.pack("!H", 1000), b"\0\0"
    long_total[10:12] = struct.pack("!H", _checksum(bytes(long_total[:20])))
    refused = {  # frame, the reason it must be counted with (None: any drop; see the mismatch test)
        "VLAN 5, forged IPv4": (ethernet(mac, mac, 0x0800, v4(SPOOFED4), vlan=5), "DROP_SOURCE"),
        "QinQ, forged IPv4": (qinq(mac, 0x0800, v4(SPOOFED4)), "DROP_NOT_IP"),
        "QinQ, own IPv4": (qinq(mac, 0x0800, v4(A4)), "DROP_NOT_IP"),
        "IPv6 ethertype, forged IPv4": (ethernet(mac, mac, 0x86DD, v4(SPOOFED4)), None),
        "IPv4 ethertype, forged IPv6": (ethernet(mac, mac, 0x0800, v6(SPOOFED6)), None),
        "IPv4 header cut at 16 bytes": (ethernet(mac, mac, 0x0800, v4(A4)[:16]), "DROP_MALFORMED"),
        "IPv6 header cut at 20 bytes": (ethernet(mac, mac, 0x86DD, v6(A6)[:20]), "DROP_MALFORMED"),
    }
    let_by_chain = {  # own address where our chain looks: accepted there, the IP stack must discard them
        "IPv6 header, version 4": ethernet(mac, mac, 0x86DD, nibble(v6(A6), 0x45)),
        "IPv4 header, version 6": ethernet(mac, mac, 0x0800, nibble(v4(A4), 0x65)),
        "IPv4, IHL 4": ethernet(mac, mac, 0x0800, nibble(v4(A4), 0x44)),
        "IPv4, total length 1000": ethernet(mac, mac, 0x0800, bytes(long_total)),
        "IPv6 header cut at 30 bytes": ethernet(mac, mac, 0x86DD, v6(A6)[:30]),  # the chain reads byte 24 only
        "VLAN 5, own IPv4": ethernet(mac, mac, 0x0800, v4(A4), vlan=5),
    }
    in_chain = f"in_{ifindex(stack, 'vnf101')}"
    before = counters(stack, "101")
    chain_before = chain_accepts(stack, in_chain)
    errors_before = snmp(stack, "Ip", "InHdrErrors") + snmp(stack, "Ip6", "Ip6InHdrErrors")
    sniffers = [Sniffer(stack.outside, "eth0", lambda p: TAG in p),
                Sniffer(stack.containers["102"], "venet0", lambda p: TAG in p)]
    rounds = 5
    try:
        for _ in range(rounds):
            for frame, _ in refused.values():
                send(frame)
            for frame in let_by_chain.values():
                send(frame)
            time.sleep(0.01)
        control = ipv4(A4, OUTSIDE_V4, UDP, udp(A4, OUTSIDE_V4, 4000, PORT + 1, b"honest" + TAG))  # no echo
        send(ethernet(mac, mac, 0x0800, control))
        time.sleep(0.4)
    finally:
        send.close()  # type: ignore[attr-defined]
        seen = [p for sniffer in sniffers for p in sniffer.close()]
    after = counters(stack, "101")
    chain_after = chain_accepts(stack, in_chain)
    errors = snmp(stack, "Ip", "InHdrErrors") + snmp(stack, "Ip6", "Ip6InHdrErrors") - errors_before
    let_by = chain_after[A4] + chain_after[A6] - chain_before[A4] - chain_before[A6] - 1
    wanted = Counter(reason for _, reason in refused.values() if reason)
    got = {reason: after[reason] - before[reason] for reason in after if reason.startswith("DROP_")}
    print(f"\nrefused and counted: {got} (at least {dict(wanted)} x {rounds}); accepted by our chain: {let_by} "
          f"of {len(let_by_chain) * rounds} misstated frames, node IP header errors: {errors}")
    assert [p for p in seen if b"honest" + TAG in p], "control: the honest frame did not arrive"
    delivered = [p for p in seen if TAG in p and b"honest" not in p]
    assert not delivered, f"{len(delivered)} misstated frames were delivered: {delivered[:3]}"
    assert all(got[reason] >= count * rounds for reason, count in wanted.items()), f"not counted: {got}"
    assert sum(got.values()) >= len(refused) * rounds, f"not all counted as drops: {got}"


def test_fragments_cannot_complete_another_containers_datagram(stack, echo):
    """102 sends the first fragment of a datagram to the outside host; 101 forges the last one
    (102's source, the same identification, the exact bytes): the outside host must never complete
    it. 101's later fragment from a forged source after an own first one is refused on its own.
    Controls: 102's and 101's own fragment pairs are reassembled and echoed. IPv4 and IPv6."""
    c101, c102 = stack.containers["101"], stack.containers["102"]
    from_101, from_102 = frame_sender(c101, "venet0"), frame_sender(c102, "venet0")
    before = counters(stack, "101")["DROP_SOURCE"]
    try:
        for own102, own101, spoofed, outside in ((B4, A4, SPOOFED4, OUTSIDE_V4), (B6, A6, SPOOFED6, OUTSIDE_V6)):
            def pair(source: str, ident: int) -> tuple[bytes, bytes]:
                datagram = udp(source, outside, 5000, PORT, b"fragmented datagram %d " % ident + bytes(48))
                return fragments(source, outside, datagram, ident=ident)

            first, last = pair(own102, 0x6001)
            from_102(first)  # 102's half datagram waits for its end at the outside host
            for _ in range(5):
                from_101(last)  # ... which 101 forges
            own_first, _ = pair(own101, 0x6003)
            _, forged_last = pair(spoofed, 0x6003)
            from_101(own_first)
            for _ in range(5):
                from_101(forged_last)
            for frame in pair(own102, 0x6002):  # controls
                from_102(frame)
            for frame in pair(own101, 0x6004):
                from_101(frame)
        time.sleep(0.4)
    finally:
        from_101.close()  # type: ignore[attr-defined]
        from_102.close()  # type: ignore[attr-defined]
    sources = Counter(source for e in (echo, echo.v6) for _, source in e.arrivals)  # type: ignore[attr-defined]
    refused = counters(stack, "101")["DROP_SOURCE"] - before
    print(f"\narrivals by source {dict(sources)}; 101's fragments refused as DROP_SOURCE: {refused}")
    assert sources[A4] == 1 and sources[A6] == 1, f"control: 101's own fragments not reassembled: {sources}"
    assert sources[B4] == 1 and sources[B6] == 1, f"102's datagrams arrived other than once (control/injection): {sources}"
    assert refused >= 20, f"each forged fragment is judged on its own: {refused} refused, 20 sent"


def test_ipv6_extension_header_chains_carry_no_other_source(stack, echo):
    """101 sends IPv6 datagrams behind hop-by-hop, destination options and fragment headers: from its
    own address they arrive (control), from a forged one nothing does and each is counted. A Home
    Address option naming 102's address (the only extension header that can replace a source, mip6,
    needs an IPsec state at the receiver) never makes a datagram arrive from 102's address."""
    c101 = stack.containers["101"]
    send = frame_sender(c101, "venet0")

    def chained(source: str, home: str | None = None, ident: int = 1) -> bytes:
        checksummed = home or source
        datagram = udp(checksummed, OUTSIDE_V6, 4000, PORT, b"extension headers %d" % ident)
        hop_by_hop = bytes([60, 0, 1, 4, 0, 0, 0, 0])  # -> destination options, PadN
        if home is None:
            options = bytes([44, 0, 1, 4, 0, 0, 0, 0])  # -> fragment, PadN
        else:  # PadN(2 bytes) then Home Address (type 0xC9, 16 bytes) at offset 6: 8n+6 alignment
            options = bytes([44, 2, 1, 2, 0, 0, 0xC9, 16]) + ipaddress.IPv6Address(home).packed
        fragment = struct.pack("!BBHI", UDP, 0, 0, 0x7000 + ident)  # atomic: offset 0, no more
        return ipv6(source, OUTSIDE_V6, 0, hop_by_hop + options + fragment + datagram)

    before = counters(stack, "101")["DROP_SOURCE"]
    try:
        for n in range(5):
            send(chained(A6, ident=n))
            send(chained(SPOOFED6, ident=10 + n))
            send(chained(A6, home=B6, ident=20 + n))
        time.sleep(0.3)
    finally:
        send.close()  # type: ignore[attr-defined]
    sources = Counter(source for _, source in echo.v6.arrivals)  # type: ignore[attr-defined]
    refused = counters(stack, "101")["DROP_SOURCE"] - before
    print(f"\narrivals {dict(sources)}, refused {refused}")
    assert sources[A6] == 5, f"control: own datagrams behind extension headers: {sources}"
    assert not sources[SPOOFED6] and not sources[B6], f"a forged or home-address source arrived: {sources}"
    assert refused == 5


def test_multicast_from_an_own_source_never_reaches_the_node(stack):
    """101 sends UDP to 224.0.0.1, 239.1.2.3, ff02::1 and ff0e::1 from its own addresses: refused
    (DROP_MULTICAST) before the node's IP stack, where an nftables counter at prerouting sees none.
    Control: the same counter sees 101's own unicast."""
    on_node(stack, "nft", "add table inet mcprobe; "
            "add chain inet mcprobe pre { type filter hook prerouting priority -300; }; "
            "add rule inet mcprobe pre iifname vnf101 ip daddr 224.0.0.0/4 counter; "
            "add rule inet mcprobe pre iifname vnf101 ip6 daddr ff00::/8 counter; "
            f"add rule inet mcprobe pre iifname vnf101 ip daddr {OUTSIDE_V4} counter")
    send = frame_sender(stack.containers["101"], "venet0")
    groups = [(A4, "224.0.0.1"), (A4, "239.1.2.3"), (A6, "ff02::1"), (A6, "ff0e::1")]
    before = counters(stack, "101")["DROP_MULTICAST"]
    try:
        for n in range(5):
            for source, group in groups:
                build = ipv6 if ":" in group else ipv4
                send(build(source, group, UDP, udp(source, group, 4000, 5353, b"multicast %d" % n)))
            send(forged(A4, b"unicast control"))
        time.sleep(0.3)
    finally:
        send.close()  # type: ignore[attr-defined]
    probe = on_node(stack, "nft", "list", "table", "inet", "mcprobe")
    seen = [int(n) for n in re.findall(r"counter packets (\d+)", probe)]
    refused = counters(stack, "101")["DROP_MULTICAST"] - before
    print(f"\nat prerouting: v4 multicast {seen[0]}, v6 multicast {seen[1]}, unicast {seen[2]}; "
          f"DROP_MULTICAST {refused}")
    assert seen[2] == 5, "control: 101's own unicast did not reach prerouting"
    assert seen[:2] == [0, 0], f"multicast from an own source reached the node: {seen[:2]}"
    # At least: the container's kernel sends router solicitations to ff02::2 at +0, +4 and +8 s
    # after its link comes up (seen with tcpdump), refused as DROP_MULTICAST in the same window.
    assert refused >= 20, f"only {refused} of 20 multicast datagrams counted"


def test_an_admins_accepting_chain_before_ours_does_not_bypass_it(stack, echo):
    """Another tool adds its own netdev chains on vnf101 -- ingress at priorities -600 and -500 that
    accept everything, and egress at -600 -- and an inet prerouting chain at -500 that accepts. An
    accept ends only that chain: ours still runs. The guard leaves foreign tables alone. Control:
    the admin's chains do see 101's forged packets (their counters), an honest datagram passes."""
    flood = Flood(stack.containers["101"], forged(SPOOFED4), limit=1.5)
    try:
        time.sleep(0.2)
        restored = stack.stats()["guard"]["tables_restored"]
        on_node(stack, "nft", "add table netdev mine; "
                "add chain netdev mine early { type filter hook ingress device vnf101 priority -600; policy accept; }; "
                "add rule netdev mine early counter accept; "
                "add chain netdev mine same { type filter hook ingress device vnf101 priority -500; policy accept; }; "
                "add rule netdev mine same accept; "
                "add chain netdev mine out { type filter hook egress device vnf101 priority -600; policy accept; }; "
                "add rule netdev mine out accept; "
                "add table inet mine; add chain inet mine pre { type filter hook prerouting priority -500; }; "
                "add rule inet mine pre accept")
        since = time.monotonic()
        time.sleep(0.8)
        assert honest(stack.containers["101"]), "honest traffic lost"
        assert honest(stack.containers["101"], A6), "honest IPv6 traffic lost"
    finally:
        sent = flood.close()
    early = on_node(stack, "nft", "list", "chain", "netdev", "mine", "early")
    seen = int(re.search(r"counter packets (\d+)", early).group(1))  # type: ignore[union-attr]
    passed = arrivals(echo, SPOOFED4, since)
    print(f"\n{sent} forged sent, the admin's chain saw {seen}, {len(passed)} passed")
    assert seen > 1000, "control: the admin's chain did not see the stream"
    assert not passed, f"{len(passed)} forged datagrams passed the admin's accept"
    assert stack.stats()["guard"]["tables_restored"] == restored, "the guard fought a foreign table"


def test_a_killed_worker_leaves_the_kernel_enforcing_and_a_new_one_takes_over(stack, echo):
    """SIGKILL the worker while 101 streams forged datagrams: the kernel still refuses them and
    honest traffic flows; `set --ipadd` with no worker updates the kernel table itself (the new
    address passes, the stream stays refused); a worker started with another log group (--queue 7)
    installs its table over the old one, counts refused packets and carries the accept counters
    over."""
    c101 = stack.containers["101"]
    flood = Flood(c101, forged(SPOOFED4), limit=4.0)
    try:
        time.sleep(0.2)
        assert not arrivals(echo, SPOOFED4), "control: the forged stream is not refused"
        assert honest(c101), "control: honest datagram lost"
        accepted = counters(stack, "101")["ACCEPT"]
        stack.stop_worker(signal.SIGKILL)
        since = time.monotonic()
        time.sleep(0.3)
        alive_honest = honest(c101) and honest(stack.containers["102"], B4)
        result = stack.node().set("101", ["192.0.2.11"])
        new_address = honest(c101, "192.0.2.11")
        dead = arrivals(echo, SPOOFED4, since)
        stack.start_worker("--queue", "7")
        refused_in = on_node(stack, "nft", "list", "chain", "netdev", "venetfilter", "refused_in")
        time.sleep(0.5)
        after = counters(stack, "101")
    finally:
        flood.close()
    print(f"\nwhile dead: {len(dead)} forged passed, honest {alive_honest}, set warnings {result.warnings}; "
          f"new worker: DROP_SOURCE {after['DROP_SOURCE']}, ACCEPT {accepted} -> {after['ACCEPT']}")
    assert alive_honest, "honest traffic lost with the worker dead"
    assert not dead, f"{len(dead)} forged datagrams passed with the worker dead"
    assert any("no worker is running" in w for w in result.warnings), result.warnings
    assert new_address, "the address added with no worker does not pass"
    assert "log group 7" in refused_in
    assert accepted >= 2 and after["DROP_SOURCE"] > 0 and after["ACCEPT"] >= accepted
    assert not arrivals(echo, SPOOFED4), "forged datagrams passed"


def test_a_reload_storm_with_stops_and_starts_under_a_flood(stack, echo):
    """101 streams forged datagrams (IPv4 and IPv6, reopening venet0 whenever it comes back) while
    the table is re-installed ~60 times: reload requests, address changes of 102, and 101 stopped
    and started twice. Nothing forged passes, 102's steady honest stream loses nothing, 101 works
    after each start."""
    c101, c102 = stack.containers["101"], stack.containers["102"]
    flood = ReopeningFlood(c101, [forged(SPOOFED4), forged(SPOOFED6)])
    sock = in_netns(c102, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind((B4, 0))
    stop, sent = threading.Event(), [0]

    def stream() -> None:
        while not stop.is_set() and sent[0] < 20000:
            sock.sendto(b"steady", (OUTSIDE_V4, PORT))
            sent[0] += 1
            time.sleep(0.001)

    streamer = threading.Thread(target=stream)
    node, reloads = stack.node(), stack.stats()["reloads"]
    try:
        time.sleep(0.2)
        streamer.start()
        for round_ in range(2):
            for _ in range(20):
                assert request(stack.run_dir, b"reload\n").startswith(b"ok")
            node.set("102", [f"192.0.2.{200 + round_}"], delete=[f"192.0.2.{199 + round_}"] if round_ else ())
            node.stop("101")
            node.start("101", netns=c101)
            assert honest(c101), "101 does not work after its start"
        stop.set()
        streamer.join()
        time.sleep(0.3)
    finally:
        stop.set()
        if streamer.is_alive():
            streamer.join()
        sent_forged = flood.close()
        sock.close()
    reloaded = stack.stats()["reloads"] - reloads
    steady = len(arrivals(echo, B4))
    forged_passed = arrivals(echo, SPOOFED4) + arrivals(echo.v6, SPOOFED6)  # type: ignore[attr-defined]
    print(f"\n{reloaded} reloads, {sent_forged} forged sent, {len(forged_passed)} passed; 102 sent {sent[0]}, "
          f"{steady} arrived")
    assert reloaded >= 45 and sent_forged > 5000, "control: no storm"
    assert not forged_passed, f"{len(forged_passed)} forged datagrams passed during the storm"
    assert steady == sent[0], f"102's honest stream lost {sent[0] - steady} of {sent[0]}"


def test_what_a_container_does_to_its_own_end_changes_nothing_on_the_node(stack, echo, make_netns):
    """101's root renames venet0, moves it into a namespace of its own, flaps it and spoofs from
    there: the node end is untouched, its chain still refuses the stream, nothing is re-installed
    (a container cannot make the worker reload), and an honest datagram from 101's address on the
    moved link still passes (the control that the path is real)."""
    c101, inner = stack.containers["101"], make_netns("vfi")
    reloads, restored = stack.stats()["reloads"], stack.stats()["guard"]["tables_restored"]
    ip("-n", c101, "link", "set", "venet0", "down")
    ip("-n", c101, "link", "set", "venet0", "name", "eth9")
    ip("-n", c101, "link", "set", "eth9", "netns", inner)
    ip("-n", inner, "addr", "add", f"{A4}/32", "dev", "eth9")
    for _ in range(3):
        ip("-n", inner, "link", "set", "eth9", "up")
        ip("-n", inner, "link", "set", "eth9", "down")
    ip("-n", inner, "link", "set", "eth9", "up")
    ip("-n", inner, "route", "add", "default", "dev", "eth9")
    flood = Flood(inner, forged(SPOOFED4), ifname="eth9", limit=1.0)
    try:
        time.sleep(0.6)
        moved_honest = honest(inner)
    finally:
        sent = flood.close()
        subprocess.run(["ip", "-n", inner, "link", "set", "eth9", "netns", c101], capture_output=True)
        subprocess.run(["ip", "-n", c101, "link", "set", "eth9", "name", "venet0"], capture_output=True)
    passed = arrivals(echo, SPOOFED4)
    stats = stack.stats()
    print(f"\n{sent} forged sent from the moved end, {len(passed)} passed; reloads +{stats['reloads'] - reloads}")
    assert moved_honest, "control: honest datagram from the moved end lost"
    assert sent > 1000 and not passed, f"{len(passed)} forged datagrams passed"
    assert stats["reloads"] == reloads and stats["guard"]["tables_restored"] == restored, \
        "the container made the node re-install"
