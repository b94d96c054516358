# cython: language_level=3, embedsignature=True
"""The native NFQUEUE backend: receive, parse, look up and give verdicts in C.

The loop stays in C for a whole period (`serve_once`); per round: one poll, then recvmmsg() takes up
to BATCH queued packets in one system call (the GIL released); libnetfilter_queue parses each message and calls `on_packet`, which classifies it with the
verdict core's C function; the verdict plan turns consecutive packets with the same verdict into one
batch verdict (NFQNL_MSG_VERDICT_BATCH: "every packet up to id N"), sent with the GIL released.

Classification runs with the GIL held (no Python is called), so the table cannot be swapped under
it: `AddressTable.load` needs the GIL too. Packets are judged by the old table or the new one.

Fail closed: a batch verdict covers every queued packet with an id up to N. A queue numbers its
packets from 1 in order, so an id we did not read (a truncated or lost message) shows as a jump:
everything below the new id that is still queued is dropped first. And no ACCEPT batch is sent while
a DROP send has failed and its packets may still be queued (see `send_op`).
"""

from libc.errno cimport EAGAIN, EINTR, ENOBUFS, errno
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cpython.exc cimport PyErr_CheckSignals
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from ..core._core cimport VF_ACCEPT, VF_OURS_IN, VF_OURS_OUT, AddressTable, Table, table_classify
from .libnfq cimport *

import logging

from ..core import Verdict
from ..errors import QueueBindError

logger = logging.getLogger("venetfilter.worker")


cdef extern from "<arpa/inet.h>" nogil:
    uint32_t ntohl(uint32_t)


cdef extern from "<linux/netfilter.h>" nogil:
    enum:
        NF_INET_PRE_ROUTING
        NF_INET_POST_ROUTING


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len


cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int recvmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout)
    int setsockopt(int fd, int level, int name, const void *value, unsigned int length)
    enum:
        MSG_DONTWAIT
        MSG_TRUNC
        SOL_NETLINK


cdef extern from "<linux/netlink.h>" nogil:
    enum:
        NETLINK_NO_ENOBUFS


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN


cdef enum:
    BATCH = 64                  # messages per recvmmsg
    MESSAGE_SIZE = 8192         # the receive buffer of one message
    METADATA_BUDGET = 512       # netlink and nfqueue headers and attributes around the copied bytes (~200 used)
    MAX_OPS = 2 * BATCH + 2     # verdict ops a round can need: per packet a gap and a run end, and the last run
    MAX_DROPS = 64              # drops kept per round for the log
    HEADER_COPY = 40            # bytes of a dropped packet kept for the log
    MAX_ROUNDS = 16             # recvmmsg calls per serve_once before control returns to Python
    TEST_TRUNCATED = 2          # `_plan_for_test`: a message that was not read


# -- the verdict plan ------------------------------------------------------------------------------
# Which verdict messages a sequence of judged packets needs. Packets come in id order; consecutive
# ones with the same verdict form a run, answered by one batch verdict up to the run's last id. The
# sending goes through `send` so that a test can make it fail.

ctypedef int (*send_fn)(void *context, bint batch, uint32_t packet_id, uint32_t verdict) noexcept nogil


cdef struct VerdictOp:
    uint32_t first      # the op answers the ids first..last, consecutive
    uint32_t last
    uint32_t verdict


cdef struct Plan:
    send_fn send
    void *context
    uint32_t last_id        # the last id judged or dropped as a gap; a new queue numbers from 1
    bint run_open
    VerdictOp run
    VerdictOp ops[MAX_OPS]
    int nops
    bint drop_owed          # a DROP send failed: ids up to owed_id may still be queued, unanswered
    uint32_t owed_id
    uint64_t messages       # verdict messages sent, failed ones included
    uint64_t send_errors
    uint64_t single_verdicts
    uint64_t resent_drops
    uint64_t gaps
    uint64_t truncated
    uint64_t misordered


cdef inline bint id_after(uint32_t a, uint32_t b) noexcept nogil:
    """The kernel's order of packet ids (nfq_id_after), which survives their wrap-around."""
    return <int32_t>(a - b) > 0


cdef int plan_send(Plan *plan, bint batch, uint32_t packet_id, uint32_t verdict) noexcept nogil:
    """Send one verdict message; 0 when sent, -1 (counted) when not: it then had no effect."""
    plan.messages += 1
    if plan.send(plan.context, batch, packet_id, verdict) < 0:
        plan.send_errors += 1
        return -1
    return 0


cdef void send_op(Plan *plan, VerdictOp *op) noexcept nogil:
    """Send one op. An ACCEPT batch covers every queued id up to its own, so it is only sent when no
    DROP send is owed: the owed DROP is sent again first (dropping more than judged is safe), and if
    that fails too the run's packets are accepted one by one."""
    cdef uint32_t packet_id
    if op.verdict == NF_DROP:
        if plan_send(plan, True, op.last, NF_DROP) == 0:
            if plan.drop_owed and not id_after(plan.owed_id, op.last):
                plan.drop_owed = False
        elif not plan.drop_owed or id_after(op.last, plan.owed_id):
            plan.drop_owed = True
            plan.owed_id = op.last
        return
    if plan.drop_owed:
        plan.resent_drops += 1
        if plan_send(plan, True, plan.owed_id, NF_DROP) == 0:
            plan.drop_owed = False
    if not plan.drop_owed:
        plan_send(plan, True, op.last, op.verdict)  # a failure leaves the run queued: a later verdict covers it
        return
    packet_id = op.first
    while True:
        plan.single_verdicts += 1
        plan_send(plan, False, packet_id, op.verdict)
        if packet_id == op.last:
            break
        packet_id += 1


cdef void plan_send_ops(Plan *plan) noexcept nogil:
    cdef int i
    for i in range(plan.nops):
        send_op(plan, &plan.ops[i])
    plan.nops = 0


cdef void plan_close_run(Plan *plan) noexcept nogil:
    if not plan.run_open:
        return
    if plan.nops == MAX_OPS:  # more ops than a round needs: send those so far, in order
        plan_send_ops(plan)
    plan.ops[plan.nops] = plan.run
    plan.nops += 1
    plan.run_open = False


cdef void plan_extend(Plan *plan, uint32_t first, uint32_t last, uint32_t verdict) noexcept nogil:
    """Add the ids first..last with one verdict: they extend the current run or start the next."""
    if plan.run_open and plan.run.verdict == verdict:
        plan.run.last = last
        return
    plan_close_run(plan)
    plan.run.first = first
    plan.run.last = last
    plan.run.verdict = verdict
    plan.run_open = True


cdef void plan_packet(Plan *plan, uint32_t packet_id, uint32_t verdict) noexcept nogil:
    """One judged packet. Ids below it that were not judged (a message not read) are dropped."""
    if not id_after(packet_id, plan.last_id):
        # the kernel numbers a queue's packets in increasing order; if not, drop all ids seen so far
        plan.misordered += 1
        plan_extend(plan, plan.last_id, plan.last_id, NF_DROP)
        return
    if packet_id != plan.last_id + 1:
        plan.gaps += 1
        plan_extend(plan, plan.last_id + 1, packet_id - 1, NF_DROP)
    plan_extend(plan, packet_id, packet_id, verdict)
    plan.last_id = packet_id


cdef void plan_truncated(Plan *plan) noexcept nogil:
    """A message that was not read: its id shows as a gap when the next packet arrives."""
    plan.truncated += 1


cdef void plan_flush(Plan *plan) noexcept nogil:
    """End of a round: every packet judged so far gets its verdict."""
    plan_close_run(plan)
    plan_send_ops(plan)


cdef int send_to_queue(void *context, bint batch, uint32_t packet_id, uint32_t verdict) noexcept nogil:
    cdef nfq_q_handle *qh = <nfq_q_handle *>context
    if batch:
        return nfq_set_verdict_batch(qh, packet_id, verdict)
    return nfq_set_verdict(qh, packet_id, verdict, 0, NULL)


cdef int send_to_recorder(void *context, bint batch, uint32_t packet_id, uint32_t verdict) noexcept nogil:
    """`_plan_for_test`'s send: record the message, fail it when its index is in the failures."""
    with gil:
        sends, failures = <tuple>context
        ok = len(sends) not in failures
        sends.append(("batch" if batch else "single", packet_id, 1 if verdict == NF_DROP else 0, ok))
        return 0 if ok else -1


def _plan_for_test(rounds, failures):
    """Run the verdict plan (the loop's own functions) on `rounds`, each a list of (packet id,
    verdict: 0 accept, 1 drop, 2 a truncated message), the sends whose index is in `failures`
    failing. Returns the sends attempted as (kind "batch" or "single", id, verdict, ok)."""
    cdef Plan *plan = <Plan *>malloc(sizeof(Plan))
    if plan == NULL:
        raise MemoryError()
    memset(plan, 0, sizeof(Plan))
    context = ([], frozenset(failures))
    plan.send = send_to_recorder
    plan.context = <void *>context
    try:
        for packets in rounds:
            for packet_id, verdict in packets:
                if verdict == TEST_TRUNCATED:
                    plan_truncated(plan)
                elif verdict in (0, 1):
                    plan_packet(plan, packet_id, NF_DROP if verdict else NF_ACCEPT)
                else:
                    raise ValueError(f"verdict {verdict!r}: 0 accept, 1 drop or 2 truncated")
            plan_flush(plan)
    finally:
        free(plan)
    return context[0]


# -- the loop ----------------------------------------------------------------------------------------

cdef struct Drop:
    uint8_t verdict
    uint32_t indev
    uint32_t outdev
    uint32_t length
    uint8_t header[HEADER_COPY]


cdef struct Loop:
    Table *table        # the queue's AddressTable: set at construction, never NULL
    bint closing        # the queue is being destroyed: libnetfilter_queue may still hand us packets
    Plan plan
    Drop drops[MAX_DROPS]
    int ndrops
    uint64_t packets
    uint64_t errors
    uint64_t drops_not_kept


cdef inline double monotonic() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef inline uint8_t ours_at_hook(uint8_t hook) noexcept nogil:
    """Which device the kernel rules matched by name: the incoming one before routing (the packet
    leaves a container), the outgoing one after it (the packet enters one)."""
    if hook == NF_INET_PRE_ROUTING:
        return VF_OURS_IN
    if hook == NF_INET_POST_ROUTING:
        return VF_OURS_OUT
    return 0


cdef int on_packet(nfq_q_handle *qh, nfgenmsg *nfmsg, nfq_data *nfa, void *data) noexcept nogil:
    """libnetfilter_queue's callback for one packet: classify it and add it to the verdict plan."""
    cdef Loop *loop = <Loop *>data
    if loop.closing:
        return 0  # no verdict: unbinding drops (or, fail-open, accepts) what is still queued
    cdef nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa)
    if ph == NULL:
        loop.errors += 1  # no id: it shows as a gap
        return 0
    cdef uint32_t packet_id = ntohl(ph.packet_id)
    cdef unsigned char *payload = NULL
    cdef int length = nfq_get_payload(nfa, &payload)
    if length < 0 or payload == NULL:
        length = 0
    cdef uint32_t indev = nfq_get_indev(nfa)
    cdef uint32_t outdev = nfq_get_outdev(nfa)
    cdef uint8_t verdict = table_classify(loop.table, payload, length, indev, outdev, ours_at_hook(ph.hook))
    plan_packet(&loop.plan, packet_id, NF_ACCEPT if verdict == VF_ACCEPT else NF_DROP)
    loop.packets += 1
    cdef Drop *drop
    if verdict != VF_ACCEPT:
        if loop.ndrops < MAX_DROPS:
            drop = &loop.drops[loop.ndrops]
            drop.verdict = verdict
            drop.indev = indev
            drop.outdev = outdev
            drop.length = length if length < HEADER_COPY else HEADER_COPY
            if drop.length:
                memcpy(drop.header, payload, drop.length)
            loop.ndrops += 1
        else:
            loop.drops_not_kept += 1
    return 0


cdef class NativeQueue:
    """One bound queue served in C. `on_drop(verdict, header, indev, outdev)` is called for the drops
    of each round (at most MAX_DROPS; the rest are counted in `drops_not_kept`)."""

    cdef nfq_handle *h
    cdef nfq_q_handle *qh
    cdef int fd
    cdef Loop *loop
    cdef char *buffers
    cdef mmsghdr *messages
    cdef iovec *iovecs
    cdef AddressTable table
    cdef object on_drop
    cdef readonly int queue_num
    cdef readonly uint64_t recv_calls
    cdef readonly uint64_t enobufs
    cdef readonly unsigned int receive_buffer
    cdef readonly int setup_warnings

    def __cinit__(self, int queue, AddressTable table not None, on_drop, *, bint fail_open=False,
                  bint gso=False, uint32_t copy_range=128, uint32_t max_length=4096,
                  unsigned int receive_buffer=8 * 1024 * 1024):
        # the kernel reads 0 as "everything"; a message that does not fit a buffer is not read
        if copy_range == 0 or copy_range > MESSAGE_SIZE - METADATA_BUDGET:
            raise ValueError(f"copy_range must be 1 to {MESSAGE_SIZE - METADATA_BUDGET} bytes, not {copy_range}")
        self.queue_num = queue
        self.table = table
        self.on_drop = on_drop
        self.loop = <Loop *>malloc(sizeof(Loop))
        self.buffers = <char *>malloc(BATCH * MESSAGE_SIZE)
        self.messages = <mmsghdr *>malloc(BATCH * sizeof(mmsghdr))
        self.iovecs = <iovec *>malloc(BATCH * sizeof(iovec))
        if not (self.loop and self.buffers and self.messages and self.iovecs):
            raise MemoryError()
        memset(self.loop, 0, sizeof(Loop))
        self.loop.table = &self.table.t  # the table object's struct: reloads change it in place
        memset(self.messages, 0, BATCH * sizeof(mmsghdr))
        cdef int i
        for i in range(BATCH):
            self.iovecs[i].iov_base = self.buffers + i * MESSAGE_SIZE
            self.iovecs[i].iov_len = MESSAGE_SIZE
            self.messages[i].msg_hdr.msg_iov = &self.iovecs[i]
            self.messages[i].msg_hdr.msg_iovlen = 1
        self.h = nfq_open()
        if self.h == NULL:
            raise QueueBindError("cannot open nfnetlink_queue: is the kernel module available, are you root?")
        self.qh = nfq_create_queue(self.h, queue, on_packet, self.loop)
        if self.qh == NULL:
            raise QueueBindError(f"cannot bind NFQUEUE {queue}: is another worker bound to it?")
        self.loop.plan.send = send_to_queue
        self.loop.plan.context = self.qh
        if nfq_set_mode(self.qh, NFQNL_COPY_PACKET, copy_range) < 0:
            raise QueueBindError(f"NFQUEUE {queue}: the kernel refused copy mode")
        if nfq_set_queue_maxlen(self.qh, max_length) < 0:
            raise QueueBindError(f"NFQUEUE {queue}: the kernel refused the queue length {max_length}")
        # gso False (the default): the kernel segments GSO packets and completes partial checksums
        # before queueing, so the verdict is on the bytes that leave (see nfqueue.NfqueueBackend)
        cdef uint32_t flags = (NFQA_CFG_F_FAIL_OPEN if fail_open else 0) | (NFQA_CFG_F_GSO if gso else 0)
        if nfq_set_queue_flags(self.qh, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO, flags) < 0:
            raise QueueBindError(f"NFQUEUE {queue}: the kernel refused the queue flags")
        # the kernel doubles the size asked for (room for its bookkeeping), unless it caps it
        self.receive_buffer = nfnl_rcvbufsiz(nfq_nfnlh(self.h), receive_buffer)
        if <uint64_t>self.receive_buffer < 2 * <uint64_t>receive_buffer:
            self.setup_warnings += 1
            logger.warning("queue %d: the receive buffer is capped at %d bytes (asked for %d, doubled by the "
                           "kernel): more messages may be lost", queue, self.receive_buffer, receive_buffer)
        self.fd = nfq_fd(self.h)
        cdef int one = 1
        if setsockopt(self.fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0:
            # then recvmmsg reports lost messages with ENOBUFS, which is counted: only a warning
            self.setup_warnings += 1
            logger.warning("queue %d: cannot set NETLINK_NO_ENOBUFS (errno %d)", queue, errno)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        if self.loop != NULL:
            self.loop.closing = True  # nfq_destroy_queue reads what is queued and calls on_packet
        if self.qh != NULL:
            nfq_destroy_queue(self.qh)
            self.qh = NULL
        if self.h != NULL:
            nfq_close(self.h)
            self.h = NULL
        free(self.loop)
        free(self.buffers)
        free(self.messages)
        free(self.iovecs)
        self.loop = NULL
        self.buffers = NULL
        self.messages = NULL
        self.iovecs = NULL

    def close(self):
        """Unbind the queue; packets still queued are then dropped (or accepted, fail-open) by the kernel."""
        self._close()

    @property
    def packets(self):
        return self.loop.packets if self.loop else 0

    @property
    def errors(self):
        """Messages without a packet header, misordered ids, failed `on_drop` calls."""
        return self.loop.errors + self.loop.plan.misordered if self.loop else 0

    @property
    def drops_not_kept(self):
        return self.loop.drops_not_kept if self.loop else 0

    @property
    def verdict_messages(self):
        """Verdict messages sent, failed ones included."""
        return self.loop.plan.messages if self.loop else 0

    @property
    def verdict_errors(self):
        """Verdict messages the kernel did not take."""
        return self.loop.plan.send_errors if self.loop else 0

    @property
    def gaps(self):
        """Jumps in the packet ids (messages not read): the ids skipped were dropped."""
        return self.loop.plan.gaps if self.loop else 0

    @property
    def truncated(self):
        """Messages larger than the receive buffer, not read."""
        return self.loop.plan.truncated if self.loop else 0

    @property
    def single_verdicts(self):
        """Packets accepted one by one because a DROP verdict was owed."""
        return self.loop.plan.single_verdicts if self.loop else 0

    @property
    def resent_drops(self):
        """DROP batches sent again after a failed one."""
        return self.loop.plan.resent_drops if self.loop else 0

    def serve_once(self, double timeout, int wakeup_fd):
        """Serve the queue for `timeout` seconds, or until `wakeup_fd` is readable (then True), and
        report the period's drops to `on_drop`. The loop stays in C: Python runs once a period."""
        if self.h == NULL:
            raise ValueError("the queue is closed")
        cdef pollfd fds[2]
        fds[0].fd = self.fd
        fds[0].events = POLLIN
        fds[1].fd = wakeup_fd
        fds[1].events = POLLIN
        cdef double deadline = monotonic() + timeout
        cdef double left
        cdef int ready
        cdef bint woken = False
        try:
            while not woken:
                left = deadline - monotonic()
                if left <= 0:
                    break
                with nogil:
                    ready = poll(fds, 2, <int>(left * 1000) + 1)
                if ready < 0:
                    if errno != EINTR:
                        raise OSError(errno, "poll on the queue socket failed")
                    PyErr_CheckSignals()  # run Python's signal handlers now, in this thread
                    continue
                woken = (fds[1].revents & POLLIN) != 0
                if fds[0].revents & POLLIN:
                    self._drain()
        finally:
            self._report_drops()
        return woken

    cdef int _drain(self) except -1:
        """Give verdicts to everything queued: recvmmsg rounds until the socket is empty."""
        cdef int rounds, n
        for rounds in range(MAX_ROUNDS):
            with nogil:
                n = recvmmsg(self.fd, self.messages, BATCH, MSG_DONTWAIT, NULL)
            self.recv_calls += 1
            if n < 0:
                if errno == ENOBUFS:
                    self.enobufs += 1
                    continue
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return 0
                raise OSError(errno, "recvmmsg on the queue socket failed")
            self._handle(n)
            if n < BATCH:
                return 0
        return 0

    cdef void _handle(self, int n):
        """Classify `n` received messages (GIL held: the table cannot change), then send the verdicts
        with the GIL released."""
        cdef Loop *loop = self.loop
        cdef int i
        for i in range(n):
            if self.messages[i].msg_hdr.msg_flags & MSG_TRUNC:
                plan_truncated(&loop.plan)
                continue
            # -1 for the kernel's error replies (ENOENT: a gap's DROP batch found nothing queued) and
            # unparsable messages: a packet not judged shows as a gap, so nothing to do here
            nfq_handle_packet(self.h, self.buffers + i * MESSAGE_SIZE, self.messages[i].msg_len)
        with nogil:
            plan_flush(&loop.plan)

    cdef void _report_drops(self) noexcept:
        cdef Loop *loop = self.loop
        cdef int i, count = loop.ndrops
        cdef Drop *drop
        loop.ndrops = 0
        if self.on_drop is None:
            return
        for i in range(count):
            drop = &loop.drops[i]
            try:
                self.on_drop(Verdict(drop.verdict), (<char *>drop.header)[:drop.length], drop.indev, drop.outdev)
            except Exception:
                loop.errors += 1
