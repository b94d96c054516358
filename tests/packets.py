"""Build IPv4/IPv6 packets as NFQUEUE hands them over (starting at the IP header)."""

from __future__ import annotations

import ipaddress
import struct

__all__ = ["ipv4", "ipv6", "EXT_HOP_BY_HOP", "EXT_ROUTING", "EXT_FRAGMENT", "EXT_DEST_OPTS"]

EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DEST_OPTS = 60
UDP = 17


def ipv4(
    src: str,
    dst: str,
    payload: bytes = b"\x00" * 8,
    *,
    options: bytes = b"",
    protocol: int = UDP,
    fragment_offset: int = 0,
    more_fragments: bool = False,
    ttl: int = 64,
) -> bytes:
    """An IPv4 packet; `options` is padded to a multiple of 4 bytes."""
    options += b"\x00" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more_fragments else 0) | (fragment_offset & 0x1FFF)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload),
        0x1234,
        flags,
        ttl,
        protocol,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + options + payload


def ipv6(
    src: str,
    dst: str,
    payload: bytes = b"\x00" * 8,
    *,
    extensions: tuple[int, ...] = (),
    protocol: int = UDP,
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet whose extension headers (hop-by-hop, routing, fragment, ...) precede `payload`."""
    chain = b""
    kinds = list(extensions)
    for i, kind in enumerate(kinds):
        following = kinds[i + 1] if i + 1 < len(kinds) else protocol
        if kind == EXT_FRAGMENT:
            chain += struct.pack("!BBHI", following, 0, 0x0001, 0xABCDEF)
        else:  # an empty 8-byte options / routing header
            chain += struct.pack("!BB", following, 0) + b"\x01\x04\x00\x00\x00\x00"
    first = kinds[0] if kinds else protocol
    header = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        len(chain) + len(payload),
        first,
        hop_limit,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + chain + payload
