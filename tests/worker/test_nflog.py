"""The NFLOG backend: parsing (property-tested, on captured kernel messages too), the per-copy
handling, and the real kernel in namespaces of the test's own (a netdev table on a veth link)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venetfilter.core import AddressTable, Ours, Verdict
from venetfilter.errors import QueueBindError
from venetfilter.netns import run_in_netns
from venetfilter.worker.nflog import (
    NFULNL_CFG_CMD_BIND,
    CopyHandler,
    LoggedPacket,
    NflogBackend,
    config_request,
    parse_messages,
    split_messages,
)

# Captured from kernel 6.18 (qthresh 3): group 7, link vnf1 (ifindex 2, MAC da:a3:69:6c:ff:17),
# its peer 6a:96:02:1e:ad:b4. Ingress: UDP from 192.0.2.99, UDP from 2001:db8::99, an ARP frame.
# Egress (prefix "eg" on the first): UDP to 192.0.2.98, UDP to 2001:db8::98, an ARP frame.
# Each batch ends with NLMSG_DONE.
INGRESS_BATCH = bytes.fromhex(
    "c000000000040000000000000000000005000007080001000800000005000a0000000000080004000000000210000800"
    "000600006a96021eadb4000006000f000001000006001100000e000012001000daa3696cff176a96021eadb408000000"
    "14000300000000006b0c7389000000000006302e08000b000000000008000e000000000012001500daa3696cff176a96"
    "021eadb408000000250009004500002118d8400040119d8fc0000263c000020199600009000d848368656c6c6f000000"
    "d4000000000400000000000000000000050000070800010086dd000005000a0000000000080004000000000210000800"
    "000600006a96021eadb4000006000f000001000006001100000e000012001000daa3696cff176a96021eadb486dd0000"
    "14000300000000006b0c7389000000000006306008000b000000000008000e000000000012001500daa3696cff176a96"
    "021eadb486dd000039000900600e9b58000d114020010db800000000000000000000009920010db80000000000000000"
    "00000001c3a10009000d5c2a68656c6c6f000000b8000000000400000000000000000000050000070800010008060000"
    "05000a0000000000080004000000000210000800000600006a96021eadb4000006000f000001000006001100000e0000"
    "12001000daa3696cff176a96021eadb40806000014000300000000006b0c73890000000000066ce708000b0000000000"
    "08000e000000000012001500daa3696cff176a96021eadb4080600002000090000000000000000000000000000000000"
    "0000000000000000000000001400000003000000000000000000000000000007"
)
EGRESS_BATCH = bytes.fromhex(
    "9800000000040000000000000000000005000007080001000800010007000a0065670000080005000000000214000300"
    "000000006b0c7389000000000006bcb008000b000000000008000e0000000000120015006a96021eadb4daa3696cff17"
    "08000000330009006a96021eadb4daa3696cff17080045000021e9d040004011cc97c0000201c0000262ba320009000d"
    "848268656c6c6f00ac000000000400000000000000000000050000070800010086dd010005000a000000000008000500"
    "0000000214000300000000006b0c7389000000000006bcd908000b000000000008000e0000000000120015006a96021e"
    "adb4daa3696cff1786dd0000470009006a96021eadb4daa3696cff1786dd6008adc1000d114020010db8000000000000"
    "00000000000120010db800000000000000000000009883630009000d5c2968656c6c6f00940000000004000000000000"
    "0000000005000007080001000806010005000a0000000000080005000000000214000300000000006b0c738900000000"
    "0006f95308000b000000000008000e0000000000120015006a96021eadb4daa3696cff17080600002e0009006a96021e"
    "adb4daa3696cff1708060000000000000000000000000000000000000000000000000000000000001400000003000000"
    "000000000000000000000007"
)

VNF1, PEER_MAC, VNF1_MAC = 2, bytes.fromhex("6a96021eadb4"), bytes.fromhex("daa3696cff17")


def nlmsg(kind: int, body: bytes, flags: int = 0, seq: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body + bytes(-len(body) % 4)


def attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)


def packet_message(*attributes: bytes, family: int = 5, group: int = 7) -> bytes:
    return nlmsg(0x0400, struct.pack("!BBH", family, 0, group) + b"".join(attributes))


IPV4 = bytes.fromhex("450000210000400040110000c0000263c0000201")  # 192.0.2.99 -> 192.0.2.1
HDR_IPV4_IN = attr(1, struct.pack("!HBx", 0x0800, 0))
GOOD = packet_message(HDR_IPV4_IN, attr(4, struct.pack("!I", 3)), attr(9, IPV4))


# -- parsing -----------------------------------------------------------------------------------------


def test_captured_ingress_batch() -> None:
    packets, errors = parse_messages(INGRESS_BATCH)
    assert errors == 0
    assert [(p.family, p.group, p.hook, p.indev, p.outdev, p.hw_protocol) for p in packets] == [
        (5, 7, 0, VNF1, 0, 0x0800), (5, 7, 0, VNF1, 0, 0x86DD), (5, 7, 0, VNF1, 0, 0x0806)]
    v4, v6, arp = packets
    assert v4.network_packet() == v4.payload and v4.payload[0] == 0x45
    assert v4.payload[12:16] == bytes([192, 0, 2, 99])
    assert v6.network_packet() == v6.payload and v6.payload[0] >> 4 == 6
    assert v6.payload[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::99")
    assert arp.network_packet() == arp.payload == bytes(28) and not arp.is_ip
    assert v4.l2header == VNF1_MAC + PEER_MAC + b"\x08\x00"  # the ingress payload does not include it


def test_captured_egress_batch_starts_at_the_mac_header() -> None:
    packets, errors = parse_messages(EGRESS_BATCH)
    assert errors == 0
    assert [(p.hook, p.indev, p.outdev, p.hw_protocol) for p in packets] == [
        (1, 0, VNF1, 0x0800), (1, 0, VNF1, 0x86DD), (1, 0, VNF1, 0x0806)]
    v4, v6, arp = packets
    assert v4.prefix == b"eg" and v6.prefix == b""
    for packet in packets:
        assert packet.payload.startswith(PEER_MAC + VNF1_MAC) and packet.payload.startswith(packet.l2header)
        assert packet.network_packet() == packet.payload[14:]
    assert v4.network_packet()[16:20] == bytes([192, 0, 2, 98])
    assert v6.network_packet()[24:40] == socket.inet_pton(socket.AF_INET6, "2001:db8::98")
    assert arp.network_packet() == bytes(28)


def test_egress_strip_without_l2hdr_and_its_limits() -> None:
    frame = PEER_MAC + VNF1_MAC + b"\x08\x00" + IPV4
    egress = LoggedPacket(5, 7, 0x0800, 1, 0, VNF1, frame)
    assert egress.network_packet() == IPV4  # no NFULA_L2HDR (older kernels): the ethernet header
    assert replace(egress, l2header=frame[:18] + b"\x81\x00\x00\x01").network_packet() == IPV4  # L2HDR not a prefix
    assert replace(egress, l2header=frame[:18]).network_packet() == frame[18:]  # L2HDR rules (a VLAN tag, ...)
    assert replace(egress, hw_protocol=0x86DD).network_packet() == frame  # the ethertype is not the protocol
    bad_version = PEER_MAC + VNF1_MAC + b"\x08\x00" + b"\x60" + IPV4[1:]
    assert replace(egress, payload=bad_version).network_packet() == bad_version
    assert replace(egress, payload=IPV4).network_packet() == IPV4  # no link-layer header at all
    assert replace(egress, payload=frame[:10]).network_packet() == frame[:10]
    assert replace(egress, hook=0).network_packet() == frame  # ingress: never stripped
    assert replace(egress, family=2, hook=1).network_packet() == frame  # not netdev: never stripped


def test_malformed_messages_are_counted_and_skipped() -> None:
    cases = {
        "no packet header": packet_message(attr(9, IPV4)),
        "short packet header": packet_message(attr(1, b"\x08\x00"), attr(9, IPV4)),
        "bad ifindex": packet_message(HDR_IPV4_IN, attr(4, b"\x00\x03"), attr(9, IPV4)),
        "truncated attribute": packet_message(HDR_IPV4_IN, struct.pack("=HH", 200, 9) + IPV4),
        "attribute shorter than its header": packet_message(HDR_IPV4_IN, struct.pack("=HH", 2, 9)),
        "no nfgenmsg": nlmsg(0x0400, b"\x05\x00"),
        "unknown message type": nlmsg(0x0401, bytes(4)),
        "an error report": nlmsg(2, struct.pack("=i", -errno.EPERM) + bytes(16)),
        "an overrun": nlmsg(4, b""),
    }
    for name, message in cases.items():
        packets, errors = parse_messages(message + GOOD)
        assert (len(packets), errors) == (1, 1), name  # skipped, the next message still read
        assert packets[0].indev == 3 and packets[0].payload == IPV4
    for broken in (struct.pack("=IHHII", 15, 0x0400, 0, 0, 0), struct.pack("=IHHII", 999, 0x0400, 0, 0, 0),
                   b"\x01\x02\x03"):
        assert parse_messages(GOOD + broken) == (parse_messages(GOOD)[0], 1)  # the rest of the datagram is lost
    assert parse_messages(b"") == ([], 0)
    ack = nlmsg(2, bytes(4) + bytes(16))
    assert parse_messages(GOOD + ack + nlmsg(3, bytes(4)) + nlmsg(1, b""))[1] == 0  # acks, done, noop


def test_unknown_attributes_are_skipped() -> None:
    message = packet_message(attr(0x8014, attr(1, b"\x81\x00")), HDR_IPV4_IN, attr(99, b"x"), attr(9, IPV4))
    packets, errors = parse_messages(message)
    assert errors == 0 and packets[0].payload == IPV4 and packets[0].indev == packets[0].outdev == 0


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([INGRESS_BATCH, EGRESS_BATCH, GOOD])))
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["byte", "u16", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if operation == "byte" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif operation == "u16" and at + 2 <= len(data):
            data[at & ~1:(at & ~1) + 2] = struct.pack("=H", draw(st.integers(0, 0xFFFF)))
        elif operation == "cut":
            del data[at:]
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


def check_never_raises(data: bytes) -> None:
    packets, errors = parse_messages(data)
    assert errors >= 0
    table = AddressTable()
    table.set_container("101", VNF1, ["192.0.2.2", "2001:db8::2"])
    handler = CopyHandler(table, lambda *_: None)
    for packet in packets:
        assert 0 <= packet.hw_protocol <= 0xFFFF and 0 <= packet.indev < 2**32 and 0 <= packet.outdev < 2**32
        assert isinstance(packet.network_packet(), bytes)
        handler(packet)
    assert handler.packets == len(packets) and handler.errors == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1024))
def test_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    check_never_raises(data)


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_parser_never_raises_on_mutated_real_messages(data: bytes) -> None:
    check_never_raises(data)


def test_config_request_layout() -> None:
    request = config_request(7, 42, NFULNL_CFG_CMD_BIND, copy_range=128, qthresh=32, timeout=2)
    messages, errors = split_messages(request)
    assert errors == 0 and len(messages) == 1
    kind, flags, seq, body = messages[0]
    assert (kind, flags, seq) == (0x0401, 0x1 | 0x4, 42)  # ULOG config, NLM_F_REQUEST | NLM_F_ACK
    assert body[:4] == struct.pack("!BBH", 0, 0, 7)
    assert body[4:] == (attr(1, b"\x01") + attr(2, struct.pack("!IBx", 128, 2))
                        + attr(5, struct.pack("!I", 32)) + attr(4, struct.pack("!I", 2)))


# -- one copy ----------------------------------------------------------------------------------------


class FakeTable:
    def __init__(self, verdict: Verdict = Verdict.DROP_SOURCE, error: Exception | None = None) -> None:
        self.verdict, self.error = verdict, error
        self.calls: list[tuple[bytes, int, int, int]] = []

    def classify(self, packet: bytes, indev: int, outdev: int, ours: int = 0) -> Verdict:
        self.calls.append((packet, indev, outdev, ours))
        if self.error is not None:
            raise self.error
        return self.verdict


def test_handler_classifies_with_the_right_devices_and_flags() -> None:
    ingress, egress = parse_messages(INGRESS_BATCH)[0], parse_messages(EGRESS_BATCH)[0]
    table, drops = FakeTable(), []
    handler = CopyHandler(table, lambda *args: drops.append(args))
    for packet in ingress + egress:
        handler(packet)
    assert [call[1:] for call in table.calls] == [(VNF1, 0, Ours.IN)] * 3 + [(0, VNF1, Ours.OUT)] * 3
    assert [call[0] for call in table.calls] == [ingress[0].payload, ingress[1].payload, b"\x00",
                                                 egress[0].payload[14:], egress[1].payload[14:], b"\x00"]
    assert [d[1] for d in drops] == [p.network_packet() for p in ingress + egress]  # the real ARP bytes too
    assert drops[2][1] == drops[5][1] == bytes(28)
    assert handler.packets == 6 and handler.errors == handler.raced == 0


def test_handler_counts_raced_accepts_without_a_drop() -> None:
    drops: list[object] = []
    handler = CopyHandler(FakeTable(Verdict.ACCEPT), lambda *args: drops.append(args))
    handler(parse_messages(GOOD)[0][0])
    assert (handler.packets, handler.raced, handler.errors, drops) == (1, 1, 0, [])


def test_handler_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    packet = parse_messages(GOOD)[0][0]
    drops: list[tuple[Verdict, bytes, int, int]] = []
    handler = CopyHandler(FakeTable(error=RuntimeError("boom")), lambda *args: drops.append(args))
    with caplog.at_level(logging.ERROR, "venetfilter.worker"):
        handler(packet)
    assert drops == [(Verdict.DROP_MALFORMED, IPV4, 3, 0)] and handler.errors == 1
    assert "classifying" in caplog.text

    def fail(*_: object) -> None:
        raise OSError("disk full")

    handler = CopyHandler(FakeTable(), fail)
    with caplog.at_level(logging.ERROR, "venetfilter.worker"):
        handler(packet)
        handler(packet)
    assert handler.errors == 2 and handler.packets == 2


# -- the real kernel ---------------------------------------------------------------------------------

RULES = """table netdev t {
  chain i {
    type filter hook ingress device "vnf1" priority -500; policy accept;
    ip saddr 192.0.2.99 log group 7 drop
    ip6 saddr 2001:db8::99 log group 7 drop
    ip saddr 192.0.2.2 udp dport 7 log group 7 drop
    meta protocol arp log group 7 drop
  }
  chain e {
    type filter hook egress device "vnf1" priority -500; policy accept;
    ip daddr 192.0.2.98 log group 7 drop
    ip6 daddr 2001:db8::98 log group 7 drop
    meta protocol arp log group 7 drop
  }
}
"""


@dataclass
class Link:
    """`vnf1` in the node namespace, its peer `eth0` in the container namespace."""

    node: str
    ct: str
    ifindex: int
    node_mac: bytes
    ct_mac: bytes


def sysfs(ns: str, path: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", path], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def link(make_netns: Callable[[str], str]) -> Link:
    node, ct = make_netns("vfl"), make_netns("vfc")

    def ip(ns: str, *args: str) -> None:
        subprocess.run(["ip", "-n", ns, *args], check=True)

    ip(node, "link", "add", "vnf1", "type", "veth", "peer", "name", "eth0", "netns", ct)
    for ns, dev, addresses in ((node, "vnf1", ("192.0.2.1/24", "2001:db8::1/64")),
                               (ct, "eth0", ("192.0.2.2/24", "192.0.2.99/32", "2001:db8::2/64", "2001:db8::99/128"))):
        for address in addresses:
            ip(ns, "addr", "add", address, "dev", dev, *(["nodad"] if ":" in address else []))
        ip(ns, "link", "set", dev, "up")
    node_mac, ct_mac = sysfs(node, "/sys/class/net/vnf1/address"), sysfs(ct, "/sys/class/net/eth0/address")
    for address in ("192.0.2.1", "2001:db8::1"):  # static: no ARP or ND on the wire
        ip(ct, "neigh", "replace", address, "lladdr", node_mac, "dev", "eth0", "nud", "permanent")
    for address in ("192.0.2.98", "2001:db8::98"):
        ip(node, "neigh", "replace", address, "lladdr", ct_mac, "dev", "vnf1", "nud", "permanent")
    subprocess.run(["ip", "netns", "exec", node, "nft", "-f", "-"], input=RULES, text=True, check=True)
    return Link(node, ct, int(sysfs(node, "/sys/class/net/vnf1/ifindex")),
                bytes.fromhex(node_mac.replace(":", "")), bytes.fromhex(ct_mac.replace(":", "")))


def send_udp(ns: str, family: socket.AddressFamily, source: str | None, destination: str, port: int = 9) -> None:
    def send() -> None:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            if source is not None:
                sock.bind((source, 0))
            sock.sendto(b"hello", (destination, port))

    run_in_netns(ns, send)


def send_arp(ns: str, dev: str, frame: bytes) -> None:
    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as sock:
            sock.bind((dev, 0x0806))
            try:
                sock.send(frame)
            except OSError as error:  # an egress drop is reported to the sender as ENOBUFS
                if error.errno != errno.ENOBUFS:
                    raise

    run_in_netns(ns, send)


ARP_BODY = bytes.fromhex("0001080006040001") + bytes(20)


@pytest.fixture
def wakeup() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


class Bound:
    """A backend bound in the node namespace with a real table: CT 101 owns 192.0.2.2 and 2001:db8::2."""

    def __init__(self, link: Link, table: AddressTable | None = None) -> None:
        self.table = table if table is not None else AddressTable()
        if table is None:
            self.table.set_container("101", link.ifindex, ["192.0.2.2", "2001:db8::2"])
        self.drops: list[tuple[Verdict, bytes, int, int]] = []
        self.backend = run_in_netns(link.node, lambda: NflogBackend(7, self.table, self.on_drop))

    def on_drop(self, verdict: Verdict, packet: bytes, indev: int, outdev: int) -> None:
        self.drops.append((verdict, packet, indev, outdev))

    def wait(self, count: int, wakeup_fd: int, within: float = 1.0) -> None:
        """Serve until `count` copies came (each test sends a few and expects them within a second)."""
        deadline = time.monotonic() + within
        while self.backend.packets < count and time.monotonic() < deadline:
            self.backend.serve_once(0.05, wakeup_fd)
        assert self.backend.packets == count, self.drops


@pytest.fixture
def bound(link: Link) -> Iterator[Bound]:
    bound = Bound(link)
    yield bound
    bound.backend.close()


@pytest.mark.netns
def test_ingress_copies(link: Link, bound: Bound, wakeup: tuple[int, int]) -> None:
    send_udp(link.ct, socket.AF_INET, "192.0.2.99", "192.0.2.1")
    send_udp(link.ct, socket.AF_INET6, "2001:db8::99", "2001:db8::1")
    bound.wait(2, wakeup[0])
    (v4, p4, in4, out4), (v6, p6, in6, out6) = sorted(bound.drops, key=lambda d: d[1][0])
    assert (v4, in4, out4, p4[0], p4[12:16]) == (Verdict.DROP_SOURCE, link.ifindex, 0, 0x45, bytes([192, 0, 2, 99]))
    assert (v6, in6, out6, p6[0] >> 4) == (Verdict.DROP_SOURCE, link.ifindex, 0, 6)
    assert p6[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::99")
    assert bound.table.counters()["101"][Verdict.DROP_SOURCE] == 2
    assert (bound.backend.errors, bound.backend.raced, bound.backend.enobufs) == (0, 0, 0)


@pytest.mark.netns
def test_egress_copies_start_at_the_ip_header(link: Link, bound: Bound, wakeup: tuple[int, int]) -> None:
    send_udp(link.node, socket.AF_INET, None, "192.0.2.98")
    send_udp(link.node, socket.AF_INET6, None, "2001:db8::98")
    bound.wait(2, wakeup[0])
    (v4, p4, in4, out4), (v6, p6, in6, out6) = sorted(bound.drops, key=lambda d: d[1][0])
    assert (v4, in4, out4, p4[0], p4[16:20]) == (Verdict.DROP_DESTINATION, 0, link.ifindex, 0x45,
                                                  bytes([192, 0, 2, 98]))
    assert (v6, in6, out6, p6[0] >> 4) == (Verdict.DROP_DESTINATION, 0, link.ifindex, 6)
    assert p6[24:40] == socket.inet_pton(socket.AF_INET6, "2001:db8::98")
    assert len(p4) == 33 and len(p6) == 53  # the whole packet (UDP "hello"), no link-layer header
    assert bound.table.counters()["101"][Verdict.DROP_DESTINATION] == 2


@pytest.mark.netns
def test_not_ip_is_drop_not_ip_for_the_container(link: Link, bound: Bound, wakeup: tuple[int, int]) -> None:
    send_arp(link.ct, "eth0", link.node_mac + link.ct_mac + b"\x08\x06" + ARP_BODY)  # ingress
    send_arp(link.node, "vnf1", link.ct_mac + link.node_mac + b"\x08\x06" + ARP_BODY)  # egress
    bound.wait(2, wakeup[0])
    assert sorted(bound.drops, key=lambda d: d[2]) == [(Verdict.DROP_NOT_IP, ARP_BODY, 0, link.ifindex),
                                                       (Verdict.DROP_NOT_IP, ARP_BODY, link.ifindex, 0)]
    assert bound.table.counters()["101"][Verdict.DROP_NOT_IP] == 2


@pytest.mark.netns
def test_raced_and_unknown_link(link: Link, wakeup: tuple[int, int]) -> None:
    bound = Bound(link)
    try:
        send_udp(link.ct, socket.AF_INET, "192.0.2.2", "192.0.2.1", port=7)  # the table accepts it
        bound.wait(1, wakeup[0])
        assert bound.backend.raced == 1 and bound.drops == []
        assert bound.table.counters()["101"][Verdict.ACCEPT] == 1
    finally:
        bound.backend.close()
    bound = Bound(link, AddressTable())  # a link the table does not know
    try:
        send_udp(link.ct, socket.AF_INET, "192.0.2.99", "192.0.2.1")
        bound.wait(1, wakeup[0])
        assert [d[0] for d in bound.drops] == [Verdict.DROP_UNKNOWN_LINK] and bound.table.unknown_links == 1
    finally:
        bound.backend.close()


@pytest.mark.netns
def test_a_bound_group_cannot_be_bound_again(link: Link, bound: Bound) -> None:
    with pytest.raises(QueueBindError, match="group 7: .*bound by another socket"):
        run_in_netns(link.node, lambda: NflogBackend(7, bound.table, bound.on_drop))
    other = run_in_netns(link.node, lambda: NflogBackend(8, bound.table, bound.on_drop))  # another group is free
    other.close()
    bound.backend.close()  # the kernel unbinds it with the socket
    again = run_in_netns(link.node, lambda: NflogBackend(7, bound.table, bound.on_drop))
    again.close()


@pytest.mark.netns
def test_wakeup_garbage_and_close(make_netns: Callable[[str], str], wakeup: tuple[int, int]) -> None:
    ns = make_netns("vfw")
    backend = run_in_netns(ns, lambda: NflogBackend(7, AddressTable(), lambda *_: None))
    read, write = wakeup
    started = time.monotonic()
    assert backend.serve_once(0.05, read) is False
    assert time.monotonic() - started >= 0.03
    os.write(write, b"x")
    assert backend.serve_once(5, read) is True
    os.read(read, 1)
    assert backend.feed(b"\x00" * 10) == 0 and backend.errors == 1  # counted, not raised
    assert backend.queue_num == 7 and backend.fd >= 0
    backend.close()
    backend.close()
    assert backend.fd == -1
    with pytest.raises(ValueError, match="closed"):
        backend.serve_once(0, read)


def test_group_out_of_range() -> None:
    with pytest.raises(ValueError):
        NflogBackend(70000, AddressTable(), lambda *_: None)
