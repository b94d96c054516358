"""Early: a packet venet forbids never reaches the node's IP stack -- no ICMP error to a forged
source, no reassembly with a neighbour's fragment -- in both modes, both families.

The hostile container root writes raw frames on its venet0 (`tests.e2e.wire`); each test has a
control that shows the same thing with an honest source does reach the stack, so that a capture
that sees nothing means something.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, ip
from tests.e2e.traffic import UdpEcho
from tests.e2e.wire import Sniffer, fragments, frame_sender, icmp_echo, ipv4, ipv6, is_icmp_error_to, udp

pytestmark = pytest.mark.netns
PORT = 7100
OUTSIDE = {4: OUTSIDE_V4, 6: OUTSIDE_V6}
NODE = {4: UPLINK_V4, 6: UPLINK_V6}
UNROUTABLE = {4: "203.0.113.99", 6: "2001:db8:dead::99"}


def own(ctid: str, family: int) -> str:
    return ADDRESSES[ctid][0 if family == 4 else 1]


def packet(family: int, src: str, dst: str, *, hops: int = 64, size: int = 0) -> bytes:
    protocol, body = icmp_echo(src, dst, payload=b"x" * max(size, 11))
    if family == 4:
        return ipv4(src, dst, protocol, body, ttl=hops, dont_fragment=True)
    return ipv6(src, dst, protocol, body, hop_limit=hops)


@pytest.mark.parametrize("family", [4, 6])
def test_spoofed_packets_cause_no_icmp_error(any_stack, family):
    """101 forges the outside host's address on packets the node would answer with an ICMP error
    (hop limit 1, no route, bigger than the uplink's MTU). The outside host must get no error; the
    same packets from 101's own address do make the node answer 101 (the control)."""
    stack = any_stack
    c101 = stack.containers["101"]
    ip("-n", stack.host, "link", "set", "up0", "mtu", "1280")
    for kind in ("ttl-1", "unroutable", "too-big"):
        dst = UNROUTABLE[family] if kind == "unroutable" else OUTSIDE[family]
        shape = {"hops": 1} if kind == "ttl-1" else {"size": 1300} if kind == "too-big" else {}
        send = frame_sender(c101, "venet0")
        victim = Sniffer(stack.outside, "eth0", is_icmp_error_to(OUTSIDE[family]))
        control = Sniffer(c101, "venet0", is_icmp_error_to(own("101", family)))
        before = stack.counter("101", "DROP_SOURCE")
        try:
            for _ in range(20):
                send(packet(family, OUTSIDE[family], dst, **shape))
            for _ in range(3):
                send(packet(family, own("101", family), dst, **shape))
                time.sleep(0.05)
        finally:
            send.close()  # type: ignore[attr-defined]
            to_victim, to_honest = victim.close(), control.close()
        assert to_honest, f"{kind} control: the node did not answer the honest packet with an ICMP error"
        assert not to_victim, f"{kind}: {len(to_victim)} ICMP errors sent to the forged source"
        assert stack.counter("101", "DROP_SOURCE") >= before + 20


def _load_conntrack(host: str) -> None:
    """A conntrack rule in the node's namespace: from now on the node defragments in prerouting."""
    subprocess.run(
        ["ip", "netns", "exec", host, "nft", "add table inet ct_test; "
         "add chain inet ct_test pre { type filter hook prerouting priority 0; }; "
         "add rule inet ct_test pre ct state new counter"],
        check=True, capture_output=True,
    )


@pytest.mark.parametrize("family", [4, 6])
def test_cross_container_fragments_deliver_nothing(any_stack, family):
    """101 sends the first fragment of a datagram "from" 102; 102 sends the genuine last fragment
    with the same identification. Nothing is delivered (to the node's socket, or forwarded to the
    outside host), without conntrack and then with it. Control: both fragments from 102 are
    delivered once."""
    for conntrack in (False, True):
        if conntrack:
            _load_conntrack(any_stack.host)
        for target in ("node", "outside"):
            _inject_fragments(any_stack, family, target, base=0x100 if conntrack else 0x300)


def _inject_fragments(stack, family: int, target: str, base: int) -> None:
    victim = own("102", family)
    where, dst = (stack.host, NODE[family]) if target == "node" else (stack.outside, OUTSIDE[family])
    echo = UdpEcho(where, dst, PORT)
    from_101, from_102 = frame_sender(stack.containers["101"], "venet0"), frame_sender(stack.containers["102"], "venet0")
    try:
        datagram = udp(victim, dst, 5353, PORT, b"injected-by-101-" + b"y" * 40)
        base += 0x10 if target == "outside" else 0
        for ident in range(base, base + 5):
            first, last = fragments(victim, dst, datagram, ident=ident)
            from_101(first)
            time.sleep(0.01)
            from_102(last)
        time.sleep(0.3)
        injected = echo.received
        honest = udp(victim, dst, 5354, PORT, b"honest-from-102-" + b"z" * 40)
        first, last = fragments(victim, dst, honest, ident=base + 8)
        from_102(first)
        from_102(last)
        deadline = time.monotonic() + 2
        while echo.received == injected and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for send in (from_101, from_102):
            send.close()  # type: ignore[attr-defined]
        echo.close()
    assert echo.received == 1, f"{target} control: the honest fragmented datagram was not delivered"
    assert injected == 0, f"{target}: {injected} datagrams reassembled from 101's forged fragment and 102's genuine one"
    assert stack.counter("101", "DROP_SOURCE") >= 5
