"""The netfilterqueue backend: binds one queue and feeds its packets to a callback.

netfilterqueue's `run()` only returns on an error, and an exception raised to stop it would leave
the rest of a receive buffer without verdicts. So we drive `run_socket()` with a socket of our own
that reports "no more data" (EAGAIN) when the queue is empty, when asked to stop, or after a
budget of messages, which hands control back to the service loop between packets, never inside one.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import warnings
from netfilterqueue import COPY_PACKET, NetfilterQueue

from ..errors import QueueBindError
from .callback import Classifier, DropHandler, VerdictCallback

__all__ = ["COPY_RANGE", "NfqueueBackend"]

logger = logging.getLogger("venetfilter.worker")

COPY_RANGE = 128  # the IPv4 header with options (60) or the fixed IPv6 header (40) fits
MAX_QUEUE_LENGTH = 4096
SOCKET_BUFFER = 8 * 1024 * 1024
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
BUDGET = 256  # messages per call of `serve_once`


class _QueueSocket:
    """The queue's netlink socket as run_socket() sees it: EAGAIN ends each round."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.budget = 0
        self.enobufs = 0

    def recv(self, size: int) -> bytes:
        if self.budget <= 0:
            raise BlockingIOError(errno.EAGAIN, "budget spent")
        self.budget -= 1
        try:
            return self.sock.recv(size)
        except OSError as error:
            if error.errno == errno.ENOBUFS:  # the kernel dropped packets: count, go on
                self.enobufs += 1
            raise

    def close(self) -> None:
        self.sock.detach()  # the fd belongs to the NetfilterQueue


class NfqueueBackend:
    """One bound queue, a Python callback per packet. `fail_open` sets the queue's fail-open flag
    (accept, not drop, when it overflows)."""

    def __init__(self, queue: int, table: Classifier, on_drop: DropHandler, *, fail_open: bool = False) -> None:
        self.queue_num = queue
        self._callback = callback = VerdictCallback(table, on_drop)
        self._nfq = NetfilterQueue()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._nfq.bind(queue, callback, max_len=MAX_QUEUE_LENGTH, mode=COPY_PACKET,
                               range=COPY_RANGE, sock_len=SOCKET_BUFFER)
            for warning in caught:
                logger.warning("queue %d: %s", queue, warning.message)
        except OSError as error:
            raise QueueBindError(
                f"cannot bind NFQUEUE {queue}: {error} (is another worker bound to it? "
                "is the nfnetlink_queue kernel module available? are you root?)"
            ) from None
        self._set_flags(fail_open)
        self._socket = _QueueSocket(self._nfq.get_fd())
        self._socket.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)

    def _set_flags(self, fail_open: bool) -> None:
        try:
            from ._queue_flags import set_queue_flags
        except ImportError:
            if fail_open:
                logger.warning("queue %d: extension not built, the queue's fail-open flag is not set", self.queue_num)
            return
        # no F_GSO: the kernel segments GSO packets and completes partial checksums before it queues
        # them, so the worker judges the bytes that will leave (a container's partial checksum aimed at
        # its source address would otherwise rewrite it after the verdict: tests/e2e/test_checksum_offload.py)
        set_queue_flags(self._nfq, fail_open, False)

    @property
    def fd(self) -> int:
        return self._nfq.get_fd()

    @property
    def enobufs(self) -> int:
        return self._socket.enobufs

    @property
    def packets(self) -> int:
        return self._callback.packets

    @property
    def errors(self) -> int:
        return self._callback.errors

    def serve_once(self, timeout: float, wakeup_fd: int) -> bool:
        """Wait up to `timeout` for packets (or `wakeup_fd`: then True), give verdicts to what is queued."""
        readable, _, _ = select.select([self.fd, wakeup_fd], [], [], timeout)
        if self.fd in readable:
            self._socket.budget = BUDGET
            self._nfq.run_socket(self._socket)  # type: ignore[arg-type]  # it only calls recv()
        return wakeup_fd in readable

    def close(self) -> None:
        self._nfq.unbind()
        self._socket.close()
