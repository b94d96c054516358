"""Duplicate address detection and announcements on the host's uplinks, as vzctl's ``arpsend`` did.

Before an address is given to a container, `probe` asks the uplinks whether some host already
answers for it: an ARP probe (RFC 5227: sender address 0.0.0.0) for IPv4, a neighbour solicitation
from ``::`` to the solicited-node group (IPv6 duplicate address detection). An answer means the
address belongs to someone else on that segment; proxying it would hijack that host's traffic.
After an address is given, `announce` sends a gratuitous ARP and an unsolicited neighbour
advertisement (override flag) so that the routers on the segment learn the node's MAC at once:
how OpenVZ moved addresses between nodes without waiting for caches to expire.

Frames are written on AF_PACKET sockets of the uplinks, all probes first, then one wait for the
answers: 4,096 addresses cost one wait, not 4,096.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..netns import run_in_netns
from .ipaddr import Address

__all__ = ["Answer", "announce", "probe"]

ETH_P_ARP, ETH_P_IPV6, ETH_P_ALL = 0x0806, 0x86DD, 0x0003
BROADCAST = b"\xff" * 6
ICMPV6, NS, NA = 58, 135, 136
PROBE_WAIT = 0.3  # seconds: a host on the segment answers in microseconds; 300 ms covers a busy one


@dataclass(frozen=True)
class Answer:
    """Someone answered for `address` on `device`, from `mac`."""

    address: Address
    device: str
    mac: str


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + address.packed[13:])


def _arp(mac: bytes, op: int, sender: bytes, target: bytes) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, sender, b"\0" * 6, target)
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + body


def _icmpv6(mac: bytes, source: ipaddress.IPv6Address, destination: ipaddress.IPv6Address, body: bytes) -> bytes:
    pseudo = source.packed + destination.packed + struct.pack("!IxxxB", len(body), ICMPV6)
    body = body[:2] + struct.pack("!H", _checksum(pseudo + body)) + body[4:]
    header = struct.pack("!IHBB16s16s", 0x60000000, len(body), ICMPV6, 255, source.packed, destination.packed)
    dst_mac = b"\x33\x33" + destination.packed[12:]
    return dst_mac + mac + struct.pack("!H", ETH_P_IPV6) + header + body


def _ns_probe(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    body = struct.pack("!BBHI16s", NS, 0, 0, 0, address.packed)  # from ::, so no source link-layer option
    return _icmpv6(mac, ipaddress.IPv6Address("::"), _solicited_node(address), body)


def _unsolicited_na(mac: bytes, source: ipaddress.IPv6Address, address: ipaddress.IPv6Address) -> bytes:
    body = struct.pack("!BBHI16sBB6s", NA, 0, 0, 0x20000000, address.packed, 2, 1, mac)  # override, target LLA
    return _icmpv6(mac, source, ipaddress.IPv6Address("ff02::1"), body)


def _open(device: str) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(ETH_P_ALL))
    try:
        sock.bind((device, 0))
    except OSError:
        sock.close()
        raise
    return sock, sock.getsockname()[4]


def _answer(frame: bytes, wanted: set[Address]) -> tuple[Address, str] | None:
    """The address a frame answers for (an ARP reply, or a neighbour advertisement), if wanted."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == ETH_P_ARP and len(frame) >= 42:
        op, sha, spa = struct.unpack_from("!H6s4s", frame, 20)
        address: Address = ipaddress.IPv4Address(spa)
        if op == 2 and address in wanted:
            return address, _mac_text(sha)
    elif ethertype == ETH_P_IPV6 and len(frame) >= 14 + 40 + 24:
        if frame[14 + 6] == ICMPV6 and frame[54] == NA:
            target = ipaddress.IPv6Address(frame[62:78])
            if target in wanted:
                return target, _mac_text(frame[6:12])
    return None


def probe(
    netns: str | int | os.PathLike[str] | None, requests: Mapping[str, Sequence[Address]], wait: float = PROBE_WAIT
) -> list[Answer]:
    """Probe `requests` ({uplink name: addresses}) on the uplinks of `netns`; returns who answered."""
    if not any(requests.values()):
        return []

    def work() -> list[Answer]:
        sockets = []
        try:
            for device, addresses in requests.items():
                if not addresses:
                    continue
                sock, mac = _open(device)
                sockets.append((sock, device, set(addresses)))
                for address in addresses:
                    if address.version == 4:
                        sock.send(_arp(mac, 1, b"\0" * 4, address.packed))
                    else:
                        sock.send(_ns_probe(mac, address))
            answers: dict[Address, Answer] = {}
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([s for s, _, _ in sockets], [], [], left)
                for sock in ready:
                    _, device, wanted = next(item for item in sockets if item[0] is sock)
                    found = _answer(sock.recv(2048), wanted)
                    if found is not None and found[0] not in answers:
                        answers[found[0]] = Answer(found[0], device, found[1])
            return list(answers.values())
        finally:
            for sock, _, _ in sockets:
                sock.close()

    return run_in_netns(netns, work)


def announce(
    netns: str | int | os.PathLike[str] | None,
    requests: Mapping[str, Sequence[Address]],
    sources: Mapping[str, ipaddress.IPv6Address] | None = None,
) -> None:
    """Gratuitous ARP and unsolicited neighbour advertisements of `requests` ({uplink: addresses})
    from the uplinks' MACs; `sources` gives each uplink's IPv6 address to send the NA from (its
    link-local one; without it no NA is sent on that uplink)."""

    def work() -> None:
        for device, addresses in requests.items():
            if not addresses:
                continue
            sock, mac = _open(device)
            with sock:
                for address in addresses:
                    if address.version == 4:
                        sock.send(_arp(mac, 1, address.packed, address.packed))
                    elif sources and device in sources:
                        sock.send(_unsolicited_na(mac, sources[device], address))

    run_in_netns(netns, work)
