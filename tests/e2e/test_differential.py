"""Differential: a corpus of packets goes through the kernel, in each mode, and every packet's fate
agrees with the verdict core (`AddressTable.classify`, given the real interface indexes).

Each packet is written raw where a hostile party could put it -- on container 101's venet0, on the
outside host's wire towards the node, or by the node itself (raw sockets) -- and is looked for
where it would arrive: the outside host's eth0, a container's venet0 (captured inside the
container, incoming frames only) or a UDP socket on the node. Its expected fate is the core's
verdict at every hook the packet passes: ``leaving`` (prerouting, when it comes in on vnf101) and
``entering`` (postrouting, when the node sends it out on a container link).

What is asserted, per corpus entry (the ``want`` column):

- REFUSED: the core's verdict is not ACCEPT; the packet must never be seen delivered. This is the
  security property, and it holds in both modes with no exception.
- DELIVERED: the core accepts an ordinary packet (the sender's own source, a unicast destination
  the node routes); it must arrive. Without these, a capture that sees nothing proves nothing.
- KERNEL: the core accepts, but whether the packet arrives is the kernel's business (limited
  broadcast, a malformed option ip6_rcv discards before any netfilter hook, a type 0 routing
  header, a spoofed source from the outside that rp_filter may refuse). Nothing is asserted
  beyond the verdict itself; the fate is printed (``pytest -s``).

`want` is not the oracle, the core is: the corpus checks that REFUSED is exactly "the core does not
accept" so that a mistake in the table (a wrong ifindex, say) cannot quietly turn the refused
entries into accepted ones.

The worker's counters must grow by at least the refusals the core counts for the hooks the kernel
certainly passes the packet through (in the queue mode, by the accepts too): a refused packet is
refused by the worker, not by luck.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, ip
from tests.e2e.traffic import in_netns
from tests.e2e.wire import Tap, fragments, frame_sender, ipv4, ipv6, udp
from venetfilter.core import AddressTable, Ours, Verdict

pytestmark = pytest.mark.netns

PORT, SPORT = 7300, 40000
A4, A6 = ADDRESSES["101"]
B4, B6 = ADDRESSES["102"]
N4, N6 = UPLINK_V4, UPLINK_V6
O4, O6 = OUTSIDE_V4, OUTSIDE_V6
FOREIGN4, FOREIGN6 = "192.0.2.77", "2001:db8:1::77"  # nobody's (the second in 101's own /64)
# Addresses the test routes on the node to a container link without giving them to anyone.
ROUTES = {
    "vnf101": ("192.0.2.88/32", "2001:db8:1::88/128", "::ffff:192.0.2.1/128"),
    "vnf102": ("192.0.2.99/32", "2001:db8:2::99/128", "192.0.2.255/32", "::ffff:192.0.2.2/128"),
}
LINK = {"101": "vnf101", "102": "vnf102"}

REFUSED, DELIVERED, KERNEL = "refused", "delivered", "kernel"
UDP, ICMP, ICMPV6, HOP, ROUTING, FRAGMENT, DSTOPTS = 17, 1, 58, 0, 43, 44, 60
PADN = bytes([1, 4, 0, 0, 0, 0])  # a 6-byte PadN option: an 8-byte options header, valid
DISCARD = bytes([0x42, 4, 0, 0, 0, 0])  # unknown option, action 01: "discard the packet"


# -- building the corpus ---------------------------------------------------------------------------


def _payload(tag: bytes) -> bytes:
    """Two copies of `tag`, placed so that each fragment of a split at 32 bytes holds one."""
    return tag + b"." * (24 - len(tag)) + tag + b"." * 8


def plain(src: str, dst: str, tag: bytes, ident: int) -> list[bytes]:
    datagram = udp(src, dst, SPORT, PORT, _payload(tag))
    if ":" in dst:
        return [ipv6(src, dst, UDP, datagram)]
    return [ipv4(src, dst, UDP, datagram, ident=ident)]


def fragment(which: str) -> Callable[[str, str, bytes, int], list[bytes]]:
    """The "first" or "last" fragment of a datagram alone, or "both" of them."""

    def build(src: str, dst: str, tag: bytes, ident: int) -> list[bytes]:
        first, last = fragments(src, dst, udp(src, dst, SPORT, PORT, _payload(tag)), ident=ident)
        return {"first": [first], "last": [last], "both": [first, last]}[which]

    return build


def extension(*headers: tuple[int, bytes]) -> Callable[[str, str, bytes, int], list[bytes]]:
    """An IPv6 UDP packet behind extension headers given as (type, body after the two first bytes)."""

    def build(src: str, dst: str, tag: bytes, ident: int) -> list[bytes]:
        chain, kinds = b"", [kind for kind, _ in headers] + [UDP]
        for (_, body), following in zip(headers, kinds[1:]):
            assert (len(body) + 2) % 8 == 0
            chain += bytes([following, (len(body) + 2) // 8 - 1]) + body
        return [ipv6(src, dst, kinds[0], chain + udp(src, dst, SPORT, PORT, _payload(tag)))]

    return build


def routing(segments_left: int, *hops: str) -> tuple[int, bytes]:
    """A type 0 routing header (deprecated by RFC 5095) listing `hops`."""
    return ROUTING, bytes([0, segments_left, 0, 0, 0, 0]) + b"".join(socket.inet_pton(socket.AF_INET6, h) for h in hops)


@dataclass
class Case:
    name: str
    origin: str  # "101" (frames on its venet0), "outside" (frames to the node's up0), "node" (raw socket)
    observe: str  # "outside" (its eth0), "node" (a UDP socket there), "101" / "102" (the container's venet0)
    want: str  # REFUSED / DELIVERED / KERNEL, see the module's docstring
    src: str
    dst: str
    build: Callable[[str, str, bytes, int], list[bytes]] = plain
    via: str | None = None  # the container link the node sends it out on (the entering hook), if any
    bind: str | None = None  # node origin: the device the raw socket is bound to
    early: bool = False  # ip6_rcv discards it before any netfilter hook: the worker never sees it
    sure: bool = True  # the kernel certainly takes it as far as the entering hook (REFUSED entries)
    why: str = ""  # KERNEL entries: what the kernel does with it
    packets: list[bytes] = field(default_factory=list)
    tag: bytes = b""


def corpus() -> list[Case]:
    c = Case
    cases = [
        # --- from 101 to the outside host: judged leaving (prerouting), then forwarded on up0
        c("own v4", "101", "outside", DELIVERED, A4, O4),
        c("own v6", "101", "outside", DELIVERED, A6, O6),
        c("foreign v4 source", "101", "outside", REFUSED, FOREIGN4, O4),
        c("foreign v6 source", "101", "outside", REFUSED, FOREIGN6, O6),
        c("neighbour's v4 source", "101", "outside", REFUSED, B4, O4),
        c("neighbour's v6 source", "101", "outside", REFUSED, B6, O6),
        c("link-local v4 source", "101", "outside", REFUSED, "169.254.1.1", O4),
        c("link-local v6 source", "101", "outside", REFUSED, "fe80::1", O6),
        c("mapped source ::ffff:192.0.2.1", "101", "outside", REFUSED, "::ffff:" + A4, O6),
        c("own, hop-by-hop", "101", "outside", DELIVERED, A6, O6, extension((HOP, PADN))),
        c("neighbour's, hop-by-hop", "101", "outside", REFUSED, B6, O6, extension((HOP, PADN))),
        # a hop-by-hop option to discard: ip6_rcv_core drops it before PREROUTING, whatever the source
        c("own, discard option", "101", "outside", KERNEL, A6, O6, extension((HOP, DISCARD)), early=True,
          why="ip6_rcv_core discards it (hop-by-hop option action 01) before any hook"),
        c("foreign, discard option", "101", "outside", REFUSED, FOREIGN6, O6, extension((HOP, DISCARD)), early=True),
        c("own, destination options", "101", "outside", DELIVERED, A6, O6, extension((DSTOPTS, PADN))),
        c("foreign, destination options", "101", "outside", REFUSED, FOREIGN6, O6, extension((DSTOPTS, PADN))),
        c("own, routing header, 0 left", "101", "outside", DELIVERED, A6, O6, extension(routing(0, O6))),
        c("neighbour's, routing header", "101", "outside", REFUSED, B6, O6, extension(routing(0, O6))),
        c("own v4 first fragment", "101", "outside", DELIVERED, A4, O4, fragment("first")),
        c("own v4 last fragment", "101", "outside", DELIVERED, A4, O4, fragment("last")),
        c("neighbour's v4 first fragment", "101", "outside", REFUSED, B4, O4, fragment("first")),
        c("foreign v4 last fragment", "101", "outside", REFUSED, FOREIGN4, O4, fragment("last")),
        c("own v6 first fragment", "101", "outside", DELIVERED, A6, O6, fragment("first")),
        c("own v6 last fragment", "101", "outside", DELIVERED, A6, O6, fragment("last")),
        c("neighbour's v6 last fragment", "101", "outside", REFUSED, B6, O6, fragment("last")),
        c("foreign v6 first fragment", "101", "outside", REFUSED, FOREIGN6, O6, fragment("first")),
        # --- from 101 to the node itself: judged leaving, then delivered locally (a socket on the node)
        c("own v4 to the node", "101", "node", DELIVERED, A4, N4),
        c("own v6 to the node", "101", "node", DELIVERED, A6, N6),
        c("foreign v4 to the node", "101", "node", REFUSED, FOREIGN4, N4),
        c("neighbour's v6 to the node", "101", "node", REFUSED, B6, N6),
        c("link-local v4 to the node", "101", "node", REFUSED, "169.254.1.1", N4),
        c("link-local v6 to the node", "101", "node", REFUSED, "fe80::1", N6),
        c("mapped source to the node", "101", "node", REFUSED, "::ffff:" + A4, N6),
        # multicast: the node's socket joined these groups on vnf101 (ff02::1 it is in anyway)
        c("own to 224.0.0.251", "101", "node", REFUSED, A4, "224.0.0.251"),
        c("neighbour's to 224.0.0.251", "101", "node", REFUSED, B4, "224.0.0.251"),
        c("own to ff02::1", "101", "node", REFUSED, A6, "ff02::1"),
        c("own to ff05::1", "101", "node", REFUSED, A6, "ff05::1"),
        # limited broadcast is not multicast: the core accepts it from an honest source
        c("own to 255.255.255.255", "101", "node", KERNEL, A4, "255.255.255.255",
          why="limited broadcast, delivered to the node's sockets"),
        c("neighbour's to 255.255.255.255", "101", "node", REFUSED, B4, "255.255.255.255"),
        c("own v4 fragments to the node", "101", "node", DELIVERED, A4, N4, fragment("both")),
        c("neighbour's v6 fragments to the node", "101", "node", REFUSED, B6, N6, fragment("both")),
        c("own, destination options, to the node", "101", "node", DELIVERED, A6, N6, extension((DSTOPTS, PADN))),
        c("own, routing header, 0 left, to the node", "101", "node", DELIVERED, A6, N6, extension(routing(0, N6))),
        c("neighbour's, hop-by-hop, to the node", "101", "node", REFUSED, B6, N6, extension((HOP, PADN))),
        # a source route through the node to 102: the node refuses type 0 routing headers
        c("own, source-routed to 102", "101", "102", KERNEL, A6, N6, extension(routing(1, B6)),
          why="type 0 routing header with segments left: ICMP parameter problem, never forwarded"),
        # --- from 101 to 102: judged leaving, routed, judged entering vnf102
        c("own v4 to 102", "101", "102", DELIVERED, A4, B4, via="vnf102"),
        c("own v6 to 102", "101", "102", DELIVERED, A6, B6, via="vnf102"),
        c("foreign v4 to 102", "101", "102", REFUSED, FOREIGN4, B4, via="vnf102"),
        c("102's own address from 101", "101", "102", REFUSED, B4, B4, via="vnf102"),
        c("neighbour's v6 to 102", "101", "102", REFUSED, B6, B6, via="vnf102"),
        c("to nobody's v4 routed to 102", "101", "102", REFUSED, A4, "192.0.2.99", via="vnf102"),
        c("to nobody's v6 routed to 102", "101", "102", REFUSED, A6, "2001:db8:2::99", via="vnf102"),
        c("to 192.0.2.255 routed to 102", "101", "102", REFUSED, A4, "192.0.2.255", via="vnf102"),
        # the kernel forwards a v4-mapped destination like any other (6.18 does); not relied upon
        c("to mapped ::ffff:192.0.2.2 routed to 102", "101", "102", REFUSED, A6, "::ffff:" + B4, via="vnf102",
          sure=False, why="forwarded by this kernel, refused entering"),
        c("own v4 last fragment to 102", "101", "102", DELIVERED, A4, B4, fragment("last"), via="vnf102"),
        c("foreign v4 first fragment to 102", "101", "102", REFUSED, FOREIGN4, B4, fragment("first"), via="vnf102"),
        c("own v6 first fragment to 102", "101", "102", DELIVERED, A6, B6, fragment("first"), via="vnf102"),
        c("to nobody's, v6 last fragment", "101", "102", REFUSED, A6, "2001:db8:2::99", fragment("last"),
          via="vnf102"),
        c("own, hop-by-hop, to 102", "101", "102", DELIVERED, A6, B6, extension((HOP, PADN)), via="vnf102"),
        # back out on its own link, for an address routed there that 101 does not own
        c("to nobody's routed back to 101", "101", "101", REFUSED, A4, "192.0.2.88", via="vnf101"),
        # --- from the outside host (frames to the node's up0): judged entering only
        c("outside to 101 v4", "outside", "101", DELIVERED, O4, A4, via="vnf101"),
        c("outside to 101 v6", "outside", "101", DELIVERED, O6, A6, via="vnf101"),
        c("outside to nobody's v4 on vnf101", "outside", "101", REFUSED, O4, "192.0.2.88", via="vnf101"),
        c("outside to nobody's v6 on vnf101", "outside", "101", REFUSED, O6, "2001:db8:1::88", via="vnf101"),
        c("outside to mapped on vnf101", "outside", "101", REFUSED, O6, "::ffff:" + A4, via="vnf101", sure=False,
          why="forwarded by this kernel, refused entering"),
        c("outside to 192.0.2.255 on vnf102", "outside", "102", REFUSED, O4, "192.0.2.255", via="vnf102"),
        # the node routes no multicast: these never reach a container link (the core would refuse them there)
        c("outside to 224.0.0.251", "outside", "101", REFUSED, O4, "224.0.0.251", via="vnf101", sure=False,
          why="not routed: never reaches the entering hook"),
        c("outside to ff05::1", "outside", "101", REFUSED, O6, "ff05::1", via="vnf101", sure=False,
          why="not routed: never reaches the entering hook"),
        c("outside, 102's source, to 101", "outside", "101", KERNEL, B4, A4, via="vnf101",
          why="venet judges what comes in by its destination; rp_filter (off here) could refuse it"),
        c("outside v4 first fragment to nobody's", "outside", "101", REFUSED, O4, "192.0.2.88", fragment("first"),
          via="vnf101"),
        c("outside v6 last fragment to nobody's", "outside", "101", REFUSED, O6, "2001:db8:1::88",
          fragment("last"), via="vnf101"),
        c("outside v4 last fragment to 101", "outside", "101", DELIVERED, O4, A4, fragment("last"), via="vnf101"),
        c("outside v6 first fragment to 101", "outside", "101", DELIVERED, O6, A6, fragment("first"), via="vnf101"),
        # --- from the node itself (raw sockets in its namespace): judged entering only
        c("node to 101 v4", "node", "101", DELIVERED, N4, A4, via="vnf101"),
        c("node to 101 v6", "node", "101", DELIVERED, N6, A6, via="vnf101"),
        c("node to 102 v4", "node", "102", DELIVERED, N4, B4, via="vnf102"),
        c("node to nobody's v4 on vnf101", "node", "101", REFUSED, N4, "192.0.2.88", via="vnf101"),
        c("node to nobody's v6 on vnf101", "node", "101", REFUSED, N6, "2001:db8:1::88", via="vnf101"),
        c("node to 102's address on vnf101", "node", "101", REFUSED, N4, B4, via="vnf101", bind="vnf101"),
        c("node to 224.0.0.251 on vnf101", "node", "101", REFUSED, N4, "224.0.0.251", via="vnf101", bind="vnf101"),
        c("node to ff02::1 on vnf101", "node", "101", REFUSED, N6, "ff02::1", via="vnf101", bind="vnf101"),
        c("node to ff05::1 on vnf101", "node", "101", REFUSED, N6, "ff05::1", via="vnf101", bind="vnf101"),
        # the copy of a broadcast the node loops back to itself passes postrouting on vnf101 too: counted twice
        c("node to 255.255.255.255 on vnf101", "node", "101", REFUSED, N4, "255.255.255.255", via="vnf101",
          bind="vnf101", why="its looped-back copy is refused entering as well"),
        c("node v6 fragment to nobody's", "node", "101", REFUSED, N6, "2001:db8:1::88", fragment("first"),
          via="vnf101"),
    ]
    for number, case in enumerate(cases):
        case.tag = b"<vnfdiff-%03d>" % number
        case.packets = case.build(case.src, case.dst, case.tag, 0x3000 + number)
    return cases


# -- the core's verdict ----------------------------------------------------------------------------


def hooks(case: Case, index: dict[str, int]) -> list[tuple[int, int, Ours]]:
    """(indev, outdev, ours) of each of our hooks the packet passes, in order."""
    indev = {"101": index["vnf101"], "outside": index["up0"], "node": 0}[case.origin]
    passes = [(indev, 0, Ours.IN)] if case.origin == "101" else []
    if case.via is not None:
        passes.append((indev, index[case.via], Ours.OUT))
    return passes


def judge(table: AddressTable, packet: bytes, passes: list[tuple[int, int, Ours]]) -> Verdict:
    """The core's verdict over `passes`: the first refusal, or ACCEPT."""
    for indev, outdev, ours in passes:
        verdict = table.classify(packet, indev, outdev, ours)
        if verdict != Verdict.ACCEPT:
            return verdict
    return Verdict.ACCEPT


def table_of(index: dict[str, int]) -> AddressTable:
    table = AddressTable()
    for ctid, addresses in ADDRESSES.items():
        table.set_container(ctid, index[LINK[ctid]], addresses)
    return table


def expected_counts(cases: list[Case], index: dict[str, int]) -> dict[str, dict[Verdict, int]]:
    """What the worker counts, at least: every hook the kernel certainly takes each packet to
    (`classify` counts as the worker does; its ACCEPTs only the queue mode sees)."""
    table = table_of(index)
    for case in cases:
        passes = hooks(case, index)
        if case.early:
            passes = []
        elif case.want == KERNEL or (case.want == REFUSED and not case.sure):
            passes = passes[:1] if case.origin == "101" else []  # leaving: yes; beyond: the kernel decides
        for packet in case.packets:
            judge(table, packet, passes)
    return table.counters()


# -- observing -------------------------------------------------------------------------------------


def _final_protocol(packet: bytes) -> int:
    if packet[0] >> 4 == 4:
        return packet[9]
    following, offset = packet[6], 40
    while following in (HOP, ROUTING, DSTOPTS, FRAGMENT) and offset + 8 <= len(packet):
        if following == FRAGMENT:
            return packet[offset]
        following, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
    return following


class Capture(Tap):
    """The IP packets that come in on `ifname` of `netns` (not those it sends, not ICMP errors,
    which quote what they answer), read afterwards."""

    def read(self) -> list[bytes]:  # type: ignore[override]
        packets = [frame[14:] for frame in super().read()]
        return [p for p in packets if p and p[0] >> 4 in (4, 6) and _final_protocol(p) not in (ICMP, ICMPV6)]


class NodeSockets:
    """UDP sockets on the node (both families, every address) in the multicast groups of the corpus
    on vnf101; what they received, read afterwards."""

    def __init__(self, node: str, vnf101: int) -> None:
        def make() -> list[socket.socket]:
            v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            v4.bind(("0.0.0.0", PORT))
            v4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                          socket.inet_aton("224.0.0.251") + bytes(4) + vnf101.to_bytes(4, sys.byteorder))
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::", PORT))
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                          socket.inet_pton(socket.AF_INET6, "ff05::1") + vnf101.to_bytes(4, sys.byteorder))
            return [v4, v6]

        self.socks = in_netns(node, make)

    def read(self) -> list[bytes]:
        seen: list[bytes] = []
        for sock in self.socks:
            with sock:
                while True:
                    try:
                        seen.append(sock.recv(65535, socket.MSG_DONTWAIT))
                    except BlockingIOError:
                        break
        return seen


def outside_sender(stack) -> Callable[[bytes], None]:
    """Frames from the outside host's eth0 addressed to the node's up0 (what a router upstream sends)."""
    with in_netns(stack.host, lambda: _bound_packet_socket("up0")) as probe:
        node_mac = probe.getsockname()[4]
    sock = in_netns(stack.outside, lambda: _bound_packet_socket("eth0"))
    own_mac = sock.getsockname()[4]

    def send(packet: bytes) -> None:
        sock.send(node_mac + own_mac + (b"\x86\xdd" if packet[0] >> 4 == 6 else b"\x08\x00") + packet)

    send.close = sock.close  # type: ignore[attr-defined]
    return send


def _bound_packet_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    return sock


def node_send(node: str, case: Case) -> str:
    """Send the case's packets from the node with a raw socket (header included); "" or the error."""
    family = socket.AF_INET6 if ":" in case.dst else socket.AF_INET

    def make() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        if case.bind:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, case.bind.encode())
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.bind((case.src, 0))  # a multicast route picks a source on the link only: vnf101 has none
        return sock

    with in_netns(node, make) as sock:
        for packet in case.packets:
            try:
                sock.sendto(packet, (case.dst, 0) if family == socket.AF_INET else (case.dst, 0, 0, 0))
            except OSError as error:
                return f"send failed: {error.strerror}"
    return ""


# -- the test --------------------------------------------------------------------------------------


def test_every_packet_meets_the_cores_verdict(any_stack):
    stack = any_stack
    for link, destinations in ROUTES.items():
        for destination in destinations:
            ip("-n", stack.host, "-6" if ":" in destination else "-4", "route", "add", destination, "dev", link)
    index = in_netns(stack.host, lambda: {name: socket.if_nametoindex(name) for name in ("up0", "vnf101", "vnf102")})
    cases = corpus()
    table = table_of(index)
    verdicts = {id(case): [judge(table, p, hooks(case, index)) for p in case.packets] for case in cases}
    wrong = [f"{case.name}: want {case.want}, core says {[v.name for v in verdicts[id(case)]]}" for case in cases
             if (case.want == REFUSED) != any(v != Verdict.ACCEPT for v in verdicts[id(case)])
             or len(set(verdicts[id(case)])) != 1]
    assert not wrong, "the corpus does not say what the core says:\n" + "\n".join(wrong)

    notes: dict[int, str] = {}
    with contextlib.ExitStack() as cleanup:  # every socket closed, whatever fails
        captures = {where: Capture(netns, ifname) for where, netns, ifname in (
            ("outside", stack.outside, "eth0"), ("101", stack.containers["101"], "venet0"),
            ("102", stack.containers["102"], "venet0"))}
        for capture in captures.values():
            cleanup.callback(capture.sock.close)
        node_sockets = NodeSockets(stack.host, index["vnf101"])
        for sock in node_sockets.socks:
            cleanup.callback(sock.close)
        from_101 = frame_sender(stack.containers["101"], "venet0")
        cleanup.callback(from_101.close)  # type: ignore[attr-defined]
        from_outside = outside_sender(stack)
        cleanup.callback(from_outside.close)  # type: ignore[attr-defined]
        time.sleep(0.2)  # the groups joined, their first reports gone out
        before = stack.stats()["containers"]
        started = time.monotonic()
        for case in cases:
            if case.origin == "node":
                notes[id(case)] = node_send(stack.host, case)
            else:
                for packet in case.packets:
                    (from_101 if case.origin == "101" else from_outside)(packet)
                    time.sleep(0.002)
            time.sleep(0.003)
        time.sleep(0.5)
        seen = {where: capture.read() for where, capture in captures.items()}
        seen["node"] = node_sockets.read()
    after = stack.stats()["containers"]
    elapsed = time.monotonic() - started

    fates = {id(case): any(case.tag in packet for packet in seen[case.observe]) for case in cases}
    lines = [f"{stack.mode} mode: {sum(len(c.packets) for c in cases)} packets in {elapsed:.2f} s"]
    for case in cases:
        verdict = verdicts[id(case)][0].name
        fate = "delivered" if fates[id(case)] else "not delivered"
        extra = notes.get(id(case)) or case.why
        lines.append(f"  {case.origin:>7} -> {case.observe:<7} {case.name:<42} {verdict:<16} {fate:<13} {extra}")
    report = "\n".join(lines)
    print(report)

    unsent = [f"{case.name}: {note}" for case in cases if (note := notes.get(id(case)))]
    assert not unsent, f"the node could not send: {unsent}\n{report}"
    leaked = [case.name for case in cases if case.want == REFUSED and fates[id(case)]]
    lost = [case.name for case in cases if case.want == DELIVERED and not fates[id(case)]]
    assert not leaked, f"refused by the core, delivered by the kernel: {leaked}\n{report}"
    assert not lost, f"accepted by the core, ordinary, not delivered: {lost}\n{report}"

    expected = expected_counts(cases, index)
    short = []
    for ctid, counts in expected.items():
        for verdict, count in counts.items():
            if verdict == Verdict.ACCEPT and stack.mode != "queue":
                continue  # the kernel's sets pass them in the default mode, uncounted by the worker
            grown = after.get(ctid, {}).get(verdict.name, 0) - before.get(ctid, {}).get(verdict.name, 0)
            print(f"  worker counted {ctid} {verdict.name}: +{grown} (the core: at least {count})")
            if grown < count:
                short.append(f"{ctid} {verdict.name}: counted {grown}, expected at least {count}")
    assert not short, "the worker did not count what it refused:\n" + "\n".join(short) + "\n" + report
    assert elapsed < 10
