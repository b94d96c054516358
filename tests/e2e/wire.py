"""Packets as a hostile container root writes them: any header, any source, fragments, sent raw on a
link (AF_PACKET), and a sniffer that counts what arrives where.

Unlike `tests.packets` (what NFQUEUE hands over), these are valid on the wire: IPv4 header
checksums and UDP/ICMP checksums are right, so the kernel takes them.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable

from tests.e2e.traffic import in_netns

__all__ = ["Sniffer", "frame_sender", "ipv4", "ipv6", "udp", "icmp_echo", "fragments"]

ETH_P_ALL = 0x0003
UDP, ICMP, ICMPV6, FRAGMENT = 17, 1, 58, 44


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(src: str, dst: str, protocol: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if len(s) == 4:
        return s + d + struct.pack("!BBH", 0, protocol, length)
    return s + d + struct.pack("!IxxxB", length, protocol)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram (header + payload) with its checksum for (src, dst)."""
    length = 8 + len(payload)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    checksum = _checksum(_pseudo(src, dst, UDP, length) + header + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, checksum) + payload


def icmp_echo(src: str, dst: str, ident: int = 0x4242, seq: int = 1, payload: bytes = b"venetfilter") -> tuple[int, bytes]:
    """(protocol, ICMP or ICMPv6 echo request) for (src, dst)."""
    if ":" in dst:
        body = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
        checksum = _checksum(_pseudo(src, dst, ICMPV6, len(body)) + body)
        return ICMPV6, body[:2] + struct.pack("!H", checksum) + body[4:]
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return ICMP, body[:2] + struct.pack("!H", _checksum(body)) + body[4:]


def ipv4(src: str, dst: str, protocol: int, payload: bytes, *, ttl: int = 64, ident: int = 0x1234,
         offset: int = 0, more: bool = False, dont_fragment: bool = False) -> bytes:
    """An IPv4 packet with a correct header checksum; `offset` in bytes (a multiple of 8)."""
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more else 0) | (offset // 8)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, ttl, protocol, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, protocol: int, payload: bytes, *, hop_limit: int = 64,
         fragment: tuple[int, int, bool] | None = None) -> bytes:
    """An IPv6 packet; `fragment` = (identification, offset in bytes, more) adds a fragment header."""
    if fragment is not None:
        ident, offset, more = fragment
        payload = struct.pack("!BBHI", protocol, 0, offset | int(more), ident) + payload
        protocol = FRAGMENT
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), protocol, hop_limit,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def fragments(src: str, dst: str, datagram: bytes, protocol: int = UDP, ident: int = 0x5151,
              first_size: int = 32) -> tuple[bytes, bytes]:
    """The two fragments (first, last) of `datagram` (a UDP header and payload), split at `first_size`."""
    first, rest = datagram[:first_size], datagram[first_size:]
    if ":" in dst:
        return (ipv6(src, dst, protocol, first, fragment=(ident, 0, True)),
                ipv6(src, dst, protocol, rest, fragment=(ident, first_size, False)))
    return (ipv4(src, dst, protocol, first, ident=ident, more=True),
            ipv4(src, dst, protocol, rest, ident=ident, offset=first_size))


def frame_sender(netns: str, ifname: str) -> Callable[[bytes], None]:
    """A function that puts IP packets on link `ifname` of `netns` as raw Ethernet frames addressed
    to the link's own MAC (what a NOARP venet-like link sends)."""
    sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    sock.bind((ifname, 0))
    mac = sock.getsockname()[4]

    def send(packet: bytes) -> None:
        ethertype = b"\x86\xdd" if packet[0] >> 4 == 6 else b"\x08\x00"
        try:
            sock.send(mac + mac + ethertype + packet)
        except OSError:
            pass  # the link went away (a container stopping): a hostile sender keeps trying

    send.close = sock.close  # type: ignore[attr-defined]
    return send


class Sniffer:
    """Counts the IP packets seen on `ifname` in `netns` (both directions) that `match(ip_packet)` accepts."""

    def __init__(self, netns: str, ifname: str, match: Callable[[bytes], bool]) -> None:
        self.match = match
        self.seen: list[bytes] = []
        self.sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = frame[14:]
            if packet and packet[0] >> 4 in (4, 6) and self.match(packet):
                self.seen.append(packet)

    def close(self) -> list[bytes]:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.seen


def is_icmp_error_to(address: str) -> Callable[[bytes], bool]:
    """Matches ICMP errors (unreachable, time exceeded, too big) sent to `address`."""
    target = ipaddress.ip_address(address).packed

    def match(packet: bytes) -> bool:
        if packet[0] >> 4 == 4:
            return packet[16:20] == target and packet[9] == ICMP and packet[(packet[0] & 15) * 4] in (3, 11, 12)
        return packet[24:40] == target and packet[6] == ICMPV6 and packet[40] in (1, 2, 3, 4)

    return match


# -- more of what a hostile container root writes (tests/e2e/test_attacks.py, test_admin_mistakes.py) --

HOP_BY_HOP, DESTINATION_OPTIONS = 0, 60
PACKET_OUTGOING = 4


def ipv6_options(src: str, dst: str, protocol: int, payload: bytes, options: bytes, *,
                 header: int = HOP_BY_HOP, hop_limit: int = 64) -> bytes:
    """An IPv6 packet whose `payload` (of `protocol`) sits behind one options header -- hop-by-hop
    (`header` 0) or destination options (60) -- holding the TLVs `options`, padded with PadN."""
    body = bytes([protocol, 0]) + options
    pad = -len(body) % 8
    if pad == 1:
        body += b"\x00"  # Pad1
    elif pad:
        body += bytes([1, pad - 2]) + bytes(pad - 2)
    body = body[:1] + bytes([len(body) // 8 - 1]) + body[2:]
    return ipv6(src, dst, header, body + payload, hop_limit=hop_limit)


def ipv4_options(src: str, dst: str, protocol: int, payload: bytes, options: bytes, *,
                 ttl: int = 64, ident: int = 0x1234) -> bytes:
    """An IPv4 packet carrying `options` (padded with End of Options List), header checksum right."""
    options += bytes(-len(options) % 4)
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, 0, ttl, protocol, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def link_sender(netns: str, ifname: str) -> Callable[[bytes], None]:
    """A function that puts whole Ethernet frames (any addresses, any ethertype) on `ifname` of
    `netns`; its `.mac` is the link's own MAC, `.close()` closes it."""
    sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    sock.bind((ifname, 0))

    def send(frame: bytes) -> None:
        try:
            sock.send(frame)
        except OSError:
            pass

    send.mac = sock.getsockname()[4]  # type: ignore[attr-defined]
    send.close = sock.close  # type: ignore[attr-defined]
    return send


def ethernet(destination: bytes, source: bytes, ethertype: int, body: bytes, *, vlan: int | None = None) -> bytes:
    """An Ethernet frame; `vlan` adds an 802.1Q tag with that VLAN id (0: priority-tagged)."""
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return destination + source + tag + struct.pack("!H", ethertype) + body


class Tap:
    """A packet socket (ETH_P_ALL) on `ifname` of `netns`, as a node daemon using one has (a DHCP
    server, lldpd, a capture tool): the frames that come in on the link, read afterwards."""

    def __init__(self, netns: str, ifname: str) -> None:
        self.sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((ifname, 0))

    def read(self) -> list[bytes]:
        """Every incoming frame so far (the socket is closed afterwards)."""
        seen: list[bytes] = []
        with self.sock:
            while True:
                try:
                    frame, address = self.sock.recvfrom(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return seen
                if address[2] != PACKET_OUTGOING:
                    seen.append(frame)


class Flood:
    """`packet` (an IP packet) written on `ifname` of `netns` from a thread, in bursts of `burst`
    frames with a short pause between, until `close()` or for at most `limit` seconds."""

    def __init__(self, netns: str, packet: bytes, *, ifname: str = "venet0", burst: int = 20,
                 pause: float = 0.0005, limit: float = 5.0) -> None:
        self.sent = 0
        self._send = frame_sender(netns, ifname)
        self._packet, self._burst, self._pause, self._limit = packet, burst, pause, limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            for _ in range(self._burst):
                self._send(self._packet)
            self.sent += self._burst
            time.sleep(self._pause)

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        self._send.close()  # type: ignore[attr-defined]
        return self.sent


class Breach(AssertionError):
    """What an attack test raises when the attack worked (a forbidden packet delivered, the node
    acting on a forged one, a counter lost): its xfail mark expects this and only this, so that a
    broken fixture or a failed control is an error, never an "expected" failure."""


def breach(condition: object, message: str) -> None:
    """Raise `Breach(message)` when `condition` is true."""
    if condition:
        raise Breach(message)
