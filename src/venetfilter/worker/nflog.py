"""The NFLOG backend of the netdev mode: the kernel drops, the worker says why.

In `table netdev venetfilter` the kernel drops what it refuses and sends a rate-limited copy of
it to a log group (`log group N`); NFQUEUE does not exist in that family. This backend binds the
group on a raw nfnetlink socket (pure Python, the layout of linux/netfilter/nfnetlink_log.h),
classifies each copy with the verdict core for its reason, and hands it to the drop handler. A
copy the core accepts means the kernel chain lagged the table (`raced`); the packet is gone anyway.

Copies from netdev ingress start at the network header; copies from netdev egress start at the
link-layer (ethernet) header, which `LoggedPacket.network_packet` strips (the kernel also sends
that header on its own, as NFULA_L2HDR, in both directions).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..core import Ours, Verdict
from ..errors import QueueBindError
from .callback import Classifier, DropHandler

__all__ = [
    "BUDGET",
    "COPY_RANGE",
    "CopyHandler",
    "LoggedPacket",
    "NflogBackend",
    "config_request",
    "parse_messages",
    "split_messages",
]

logger = logging.getLogger("venetfilter.worker")

COPY_RANGE = 128  # the link-layer header and the IPv4 header with options (60) or the IPv6 one (40)
QTHRESH = 32  # copies the kernel batches into one datagram ...
FLUSH_TIMEOUT = 2  # ... or sends after this many 1/100 s
SOCKET_BUFFER = 8 * 1024 * 1024
RECEIVE_SIZE = 256 * 1024  # more than the kernel's largest batch (nlbufsiz is at most 128 KiB)
BUDGET = 256  # copies per call of `serve_once`
ACK_TIMEOUT = 2.0

NETLINK_NETFILTER = 12
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

# linux/netfilter/nfnetlink.h and nfnetlink_log.h
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
PACKET_MESSAGE = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET
CONFIG_MESSAGE = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 1, 4, 5
NFULA_PAYLOAD, NFULA_PREFIX, NFULA_L2HDR = 9, 10, 21
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH, NFULA_CFG_FLAGS = 1, 2, 3, 4, 5, 6
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2

NFPROTO_NETDEV = 5
NF_NETDEV_INGRESS, NF_NETDEV_EGRESS = 0, 1
ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
NOT_IP = b"\x00"  # what the core gets for a copy that is not IP: IP version 0, DROP_NOT_IP
MALFORMED = b"\x40"  # ... for an IP copy whose version is not its ethertype's: too short, DROP_MALFORMED
_VERSIONS = {ETH_P_IP: 4, ETH_P_IPV6: 6}

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, portid
_NLATTR = struct.Struct("=HH")  # len, type
_NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (the group)
_BE16, _BE32 = struct.Struct("!H"), struct.Struct("!I")


def _align(length: int) -> int:
    return (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One copy the kernel logged."""

    family: int  # NFPROTO_* of the hook (5: netdev)
    group: int
    hw_protocol: int  # the ethertype (skb->protocol)
    hook: int  # in netdev: 0 ingress, 1 egress
    indev: int  # ifindex, 0 when none
    outdev: int
    payload: bytes  # as the kernel copied it (at most the copy range)
    l2header: bytes = b""  # NFULA_L2HDR: from the MAC header to the network header
    prefix: bytes = b""

    @property
    def is_ip(self) -> bool:
        return self.hw_protocol in (ETH_P_IP, ETH_P_IPV6)

    def network_packet(self) -> bytes:
        """The payload from its network header on. A netdev egress copy starts at the link-layer
        header (the kernel has built it by then): it goes when the payload starts with the
        NFULA_L2HDR the kernel sent, or else when it looks like an ethernet header whose ethertype
        is the packet's protocol (and, for IP, the IP version follows). Otherwise it stays."""
        data = self.payload
        if self.family != NFPROTO_NETDEV or self.hook != NF_NETDEV_EGRESS:
            return data
        if self.l2header and data.startswith(self.l2header):
            return data[len(self.l2header):]
        if len(data) >= ETH_HLEN and data[12:14] == _BE16.pack(self.hw_protocol):
            version = {ETH_P_IP: 4, ETH_P_IPV6: 6}.get(self.hw_protocol)
            if version is None or (len(data) > ETH_HLEN and data[ETH_HLEN] >> 4 == version):
                return data[ETH_HLEN:]
        return data


def split_messages(data: bytes) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """The netlink messages of one datagram as (type, flags, seq, body), and how many were
    malformed: a bad header ends the datagram (nothing after it can be found)."""
    messages: list[tuple[int, int, int, bytes]] = []
    offset = 0
    while len(data) - offset >= _NLMSGHDR.size:
        length, kind, flags, seq, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or length > len(data) - offset:
            return messages, 1
        messages.append((kind, flags, seq, data[offset + _NLMSGHDR.size:offset + length]))
        offset += _align(length)
    return messages, int(offset < len(data))  # trailing bytes too few for a header


def _attributes(body: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each attribute from `offset`; ValueError when one is truncated."""
    while len(body) - offset >= _NLATTR.size:
        length, kind = _NLATTR.unpack_from(body, offset)
        if length < _NLATTR.size or length > len(body) - offset:
            raise ValueError("truncated attribute")
        yield kind & NLA_TYPE_MASK, body[offset + _NLATTR.size:offset + length]
        offset += _align(length)
    if offset < len(body):
        raise ValueError("trailing bytes after the attributes")


def _packet(body: bytes) -> LoggedPacket:
    """One NFULNL_MSG_PACKET body; ValueError when it is malformed. Unknown attributes are skipped
    (newer kernels add some); known ones must have their size."""
    if len(body) < _NFGENMSG.size:
        raise ValueError("no nfgenmsg")
    family, _, group = _NFGENMSG.unpack_from(body)
    header: tuple[int, int] | None = None
    indev = outdev = 0
    payload = l2header = prefix = b""
    for kind, value in _attributes(body, _NFGENMSG.size):
        if kind == NFULA_PACKET_HDR:
            if len(value) < 4:
                raise ValueError("short packet header")
            header = (_BE16.unpack_from(value)[0], value[2])
        elif kind in (NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV):
            if len(value) != 4:
                raise ValueError("bad interface index")
            if kind == NFULA_IFINDEX_INDEV:
                indev = _BE32.unpack(value)[0]
            else:
                outdev = _BE32.unpack(value)[0]
        elif kind == NFULA_PAYLOAD:
            payload = value
        elif kind == NFULA_L2HDR:
            l2header = value
        elif kind == NFULA_PREFIX:
            prefix = value.split(b"\x00", 1)[0]
    if header is None:
        raise ValueError("no packet header")
    return LoggedPacket(family, group, header[0], header[1], indev, outdev, payload, l2header, prefix)


def parse_messages(data: bytes) -> tuple[list[LoggedPacket], int]:
    """The logged packets of one datagram and how many of its messages were malformed or
    unexpected (skipped). Never raises."""
    messages, errors = split_messages(bytes(data))
    packets: list[LoggedPacket] = []
    for kind, _, _, body in messages:
        if kind == PACKET_MESSAGE:
            try:
                packets.append(_packet(body))
            except (ValueError, struct.error):
                errors += 1
        elif kind in (NLMSG_NOOP, NLMSG_DONE) or (kind == NLMSG_ERROR and body[:4] == b"\x00\x00\x00\x00"):
            continue  # the end of a batch, an acknowledgement
        else:
            errors += 1  # an error report, an overrun, a type we do not know
    return packets, errors


def config_request(group: int, seq: int, command: int | None = None, *, copy_range: int = COPY_RANGE,
                   qthresh: int | None = None, timeout: int | None = None) -> bytes:
    """An NFULNL_MSG_CONFIG request for `group` that asks for an acknowledgement."""
    attributes = b""

    def attribute(kind: int, value: bytes) -> bytes:
        return _NLATTR.pack(_NLATTR.size + len(value), kind) + value.ljust(_align(len(value)), b"\x00")

    if command is not None:
        attributes += attribute(NFULA_CFG_CMD, bytes([command]))
    if command != NFULNL_CFG_CMD_UNBIND:
        attributes += attribute(NFULA_CFG_MODE, struct.pack("!IBx", copy_range, NFULNL_COPY_PACKET))
        if qthresh is not None:
            attributes += attribute(NFULA_CFG_QTHRESH, _BE32.pack(qthresh))
        if timeout is not None:
            attributes += attribute(NFULA_CFG_TIMEOUT, _BE32.pack(timeout))
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, group) + attributes
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), CONFIG_MESSAGE, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def _as_judged(hw_protocol: int, packet: bytes) -> bytes:
    """What the core classifies for a copy: the kernel read the addresses at the offsets its
    ethertype gives, so a frame that is not IP is NOT_IP, and one whose IP version disagrees with
    its ethertype (an own IPv4 source under the IPv6 ethertype) is MALFORMED, whatever it says."""
    version = _VERSIONS.get(hw_protocol)
    if version is None:
        return NOT_IP
    if not packet or packet[0] >> 4 != version:
        return MALFORMED
    return packet


class CopyHandler:
    """Classifies each copy for its reason and hands the drops on; never raises."""

    def __init__(self, table: Classifier, on_drop: DropHandler) -> None:
        self.table = table
        self.on_drop = on_drop
        self.packets = 0
        self.errors = 0
        self.raced = 0

    def __call__(self, copy: LoggedPacket) -> None:
        self.packets += 1
        packet = copy.network_packet()
        indev, outdev = copy.indev, copy.outdev
        ours = Ours.IN if indev else Ours.OUT if outdev else Ours.NONE
        try:
            verdict = self.table.classify(_as_judged(copy.hw_protocol, packet), indev, outdev, ours)
        except Exception:
            self.errors += 1
            logger.exception("classifying a logged drop failed")
            verdict = Verdict.DROP_MALFORMED
        if verdict is Verdict.ACCEPT:  # the kernel chain lagged the table; the packet is gone anyway
            self.raced += 1
            logger.debug("the kernel dropped a packet the table accepts (indev %d, outdev %d)", indev, outdev)
            return
        try:
            self.on_drop(verdict, packet, indev, outdev)
        except Exception:
            self.errors += 1
            logger.exception("logging a drop failed")


class NflogBackend:
    """One bound NFLOG group (the `Backend` protocol; `queue_num` is the group)."""

    def __init__(self, group: int, table: Classifier, on_drop: DropHandler, *, copy_range: int = COPY_RANGE,
                 qthresh: int = QTHRESH, flush_timeout: int = FLUSH_TIMEOUT) -> None:
        if not 0 <= group <= 0xFFFF:
            raise ValueError(f"NFLOG group {group} is not in 0..65535")
        self.queue_num = group
        self._handler = CopyHandler(table, on_drop)
        self._parse_errors = 0
        self._enobufs = 0
        self._seq = 0
        self._pending: list[bytes] = []  # copies that came while we waited for an acknowledgement
        self._buffer = bytearray(RECEIVE_SIZE)
        self._sock: socket.socket | None = None
        try:
            sock = self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                              NETLINK_NETFILTER)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
            except PermissionError:
                logger.warning("NFLOG group %d: no CAP_NET_ADMIN, the receive buffer is capped by "
                               "net.core.rmem_max", group)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.bind((0, 0))
            self._request(NFULNL_CFG_CMD_BIND, copy_range=copy_range, qthresh=qthresh, timeout=flush_timeout)
            sock.setblocking(False)
        except OSError as error:
            self.close()
            raise QueueBindError(self._bind_message(error)) from None
        except BaseException:
            self.close()
            raise

    def _bind_message(self, error: OSError) -> str:
        group = self.queue_num
        if error.errno == errno.EPERM:
            return (f"cannot bind NFLOG group {group}: it is bound by another socket (another worker?), "
                    "or we lack CAP_NET_ADMIN")
        if error.errno == errno.EBUSY:
            return f"cannot bind NFLOG group {group}: this socket has bound it already"
        return (f"cannot bind NFLOG group {group}: {error.strerror or error} (is nfnetlink_log available? "
                "are you root?)")

    def _request(self, command: int | None, **config: int) -> None:
        """Send one config request and wait for its acknowledgement; OSError when it is refused."""
        assert self._sock is not None
        self._seq += 1
        seq = self._seq
        self._sock.send(config_request(self.queue_num, seq, command, **config))
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._sock], [], [], remaining)[0]:
                raise OSError(errno.ETIMEDOUT, "the kernel did not answer")
            try:
                size = self._sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                self._enobufs += 1
                continue
            data = bytes(self._buffer[:min(size, len(self._buffer))])
            messages, _ = split_messages(data)
            answer = next((body for kind, _, s, body in messages if kind == NLMSG_ERROR and s == seq), None)
            if answer is None:
                self._pending.append(data)
                continue
            if len(answer) < 4:
                raise OSError(errno.EPROTO, "a short acknowledgement")
            code = -struct.unpack_from("=i", answer)[0]
            if code:
                raise OSError(code, os.strerror(code))
            return

    # -- the Backend protocol ------------------------------------------------------------------------

    @property
    def fd(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def packets(self) -> int:
        return self._handler.packets

    @property
    def errors(self) -> int:
        return self._handler.errors + self._parse_errors

    @property
    def enobufs(self) -> int:
        return self._enobufs

    @property
    def raced(self) -> int:
        return self._handler.raced

    def feed(self, data: bytes) -> int:
        """Handle one datagram; returns how many copies it held."""
        packets, errors = parse_messages(data)
        if errors:
            self._parse_errors += errors
            logger.warning("NFLOG group %d: %d malformed or unexpected netlink message(s) skipped",
                           self.queue_num, errors)
        for packet in packets:
            self._handler(packet)
        return len(packets)

    def serve_once(self, timeout: float, wakeup_fd: int) -> bool:
        """Wait up to `timeout` for copies (or `wakeup_fd`: then True), handle up to BUDGET of them."""
        if self._sock is None:
            raise ValueError(f"NFLOG group {self.queue_num} is closed")
        handled = 0
        while self._pending:
            handled += self.feed(self._pending.pop(0))
        fd = self._sock.fileno()
        readable, _, _ = select.select([fd, wakeup_fd], [], [], timeout)
        if fd in readable:
            while handled < BUDGET:
                try:
                    size = self._sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno != errno.ENOBUFS:  # the kernel dropped copies: count, go on
                        raise
                    self._enobufs += 1
                    continue
                if size > len(self._buffer):
                    self._parse_errors += 1
                    logger.warning("NFLOG group %d: a datagram of %d bytes truncated; skipped", self.queue_num, size)
                    continue
                handled += max(1, self.feed(bytes(self._buffer[:size])))
        return wakeup_fd in readable

    def close(self) -> None:
        """Close the socket; the kernel unbinds the group with it. Idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
