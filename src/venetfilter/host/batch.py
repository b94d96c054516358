"""Many rtnetlink changes in a few system calls: addresses, host routes and proxy entries by the
thousand.

pyroute2 sends one request and waits for its answer: about 0.25 ms each here, so 4,096 addresses
(an address inside, a route and a proxy entry each) took seconds, and compiling them with its
`IPBatch` costs as much again in Python. These three message kinds are small and fixed, so they
are packed here with `struct` (pyroute2's constants), sent up to 60 KiB at a time on one netlink
socket, and every answer is read back: `Batch.run` returns what failed, by operation.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)

from ..netns import run_in_netns
from .ipaddr import Address

__all__ = ["MISSING", "Batch", "Failure", "Op"]

NETLINK_ROUTE = 0
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF = 1, 4
NDA_DST = 1
NTF_PROXY = 0x08
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST = 254, 4, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
NUD_PERMANENT = 0x80
_CHUNK = 60 * 1024
_HEADER = struct.Struct("=IHHII")


@dataclass(frozen=True)
class Op:
    """One change: ``kind`` is address, route or proxy; ``add`` or delete; the link it is on."""

    kind: str
    add: bool
    address: Address
    index: int

    def __str__(self) -> str:
        where = {"address": "inside, on", "route": "route via", "proxy": "proxy entry on"}[self.kind]
        return f"{'add' if self.add else 'delete'} {self.address} ({where} link #{self.index})"

    def inverse(self) -> Op:
        return Op(self.kind, not self.add, self.address, self.index)


@dataclass(frozen=True)
class Failure:
    op: Op
    error: int  # errno

    def __str__(self) -> str:
        return f"cannot {self.op}: {os.strerror(self.error)}"


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _family(address: Address) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _encode(op: Op, seq: int) -> bytes:
    family, packed = _family(op.address), op.address.packed
    create = NLM_F_CREATE | NLM_F_EXCL if op.add else 0
    if op.kind == "address":
        kind = RTM_NEWADDR if op.add else RTM_DELADDR
        scope = RT_SCOPE_UNIVERSE
        body = struct.pack("=BBBBI", family, op.address.max_prefixlen, IFA_F_NODAD, scope, op.index)
        body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed) + _attr(IFA_FLAGS, struct.pack("=I", IFA_F_NODAD))
    elif op.kind == "route":
        kind = RTM_NEWROUTE if op.add else RTM_DELROUTE
        scope = RT_SCOPE_LINK if op.address.version == 4 else RT_SCOPE_UNIVERSE
        body = struct.pack("=BBBBBBBBI", family, op.address.max_prefixlen, 0, 0, RT_TABLE_MAIN,
                           RTPROT_STATIC, scope, RTN_UNICAST, 0)
        body += _attr(RTA_DST, packed) + _attr(RTA_OIF, struct.pack("=I", op.index))
    elif op.kind == "proxy":
        kind = RTM_NEWNEIGH if op.add else RTM_DELNEIGH
        body = struct.pack("=BxxxiHBB", family, op.index, NUD_PERMANENT, NTF_PROXY, 0) + _attr(NDA_DST, packed)
    else:
        raise ValueError(f"unknown operation {op.kind!r}")
    return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | create, seq, 0) + body


class Batch:
    """Operations collected in order, then sent at once by `run` in a network namespace."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, kind: str, address: Address, index: int) -> None:
        self.ops.append(Op(kind, True, address, index))

    def delete(self, kind: str, address: Address, index: int) -> None:
        self.ops.append(Op(kind, False, address, index))

    def extend(self, ops: Iterable[Op]) -> None:
        self.ops.extend(ops)

    def __len__(self) -> int:
        return len(self.ops)

    def run(self, netns: str | int | os.PathLike[str] | None, *, missing_ok: bool = False) -> list[Failure]:
        """Send every operation (in `netns`); returns the ones that failed, in order. With
        `missing_ok`, deleting what is already gone is not a failure."""
        if not self.ops:
            return []
        ops = self.ops
        tolerated = MISSING if missing_ok else frozenset()
        return run_in_netns(netns, lambda: _send(ops, tolerated))


MISSING = frozenset({errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENODEV})
"""What the kernel answers for a deletion of something that is not there."""


def _send(ops: list[Op], tolerated: frozenset[int]) -> list[Failure]:
    failures: list[Failure] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        start = 0
        while start < len(ops):
            chunk, end = bytearray(), start
            while end < len(ops) and len(chunk) < _CHUNK:
                chunk += _encode(ops[end], end + 1)
                end += 1
            sock.send(chunk)
            waiting = end - start
            while waiting:
                data = sock.recv(1 << 20)
                offset = 0
                while offset + _HEADER.size <= len(data):
                    length, kind, _, seq, _ = _HEADER.unpack_from(data, offset)
                    if kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                        waiting -= 1
                        if code and code not in tolerated and 1 <= seq <= len(ops):
                            failures.append(Failure(ops[seq - 1], code))
                    offset += (length + 3) & ~3 if length else len(data)
            start = end
    return failures  # in the order of the operations: the kernel answers in order
