# cython: language_level=3, embedsignature=True
"""The native NFQUEUE backend: receive, parse, look up and give verdicts in C.

The loop stays in C for a whole period (`serve_once`); per round: one poll, then recvmmsg() takes up
to BATCH queued packets in one system call (the GIL released); libnetfilter_queue parses each message and calls `on_packet`, which classifies it with the
verdict core's C function; consecutive packets with the same verdict become one batch verdict
(NFQNL_MSG_VERDICT_BATCH: "every packet up to id N"), sent with the GIL released.

Classification runs with the GIL held (no Python is called), so the table cannot be swapped under
it: `AddressTable.load` needs the GIL too. Packets are judged by the old table or the new one.

Fail closed: a batch verdict covers every queued packet with an id up to N. A message we did not
read (truncated) would be covered by the next run's verdict, so when the ids jump, everything below
the new id that is still queued is dropped first.
"""

from libc.errno cimport EAGAIN, EINTR, ENOBUFS, errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cpython.exc cimport PyErr_CheckSignals
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from ..core._core cimport VF_ACCEPT, VF_OURS_IN, VF_OURS_OUT, AddressTable, Table, table_classify
from .libnfq cimport *

from ..core import Verdict
from ..errors import QueueBindError


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
    MESSAGE_SIZE = 8192         # a message carries at most the copy range plus ~200 bytes of metadata
    MAX_OPS = 2 * BATCH + 2     # verdict messages a round can need
    MAX_DROPS = 64              # drops kept per round for the log
    HEADER_COPY = 40            # bytes of a dropped packet kept for the log
    MAX_ROUNDS = 16             # recvmmsg calls per serve_once before control returns to Python


cdef struct VerdictOp:
    uint32_t id
    uint32_t verdict


cdef struct Drop:
    uint8_t verdict
    uint32_t indev
    uint32_t outdev
    uint32_t length
    uint8_t header[HEADER_COPY]


cdef struct Loop:
    Table *table
    bint run_open
    uint32_t run_id
    uint32_t run_verdict
    bint have_last
    uint32_t last_id
    VerdictOp ops[MAX_OPS]
    int nops
    Drop drops[MAX_DROPS]
    int ndrops
    uint64_t packets
    uint64_t gaps
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


cdef inline void close_run(Loop *loop) noexcept nogil:
    if loop.run_open:
        loop.ops[loop.nops].id = loop.run_id
        loop.ops[loop.nops].verdict = loop.run_verdict
        loop.nops += 1
        loop.run_open = False


cdef int on_packet(nfq_q_handle *qh, nfgenmsg *nfmsg, nfq_data *nfa, void *data) noexcept nogil:
    """libnetfilter_queue's callback for one packet: classify, extend or close the current run."""
    cdef Loop *loop = <Loop *>data
    cdef nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa)
    if ph == NULL:
        loop.errors += 1
        return 0
    cdef uint32_t packet_id = ntohl(ph.packet_id)
    cdef unsigned char *payload = NULL
    cdef int length = nfq_get_payload(nfa, &payload)
    if length < 0 or payload == NULL:
        length = 0
    cdef uint32_t indev = nfq_get_indev(nfa)
    cdef uint32_t outdev = nfq_get_outdev(nfa)
    cdef uint8_t verdict = table_classify(loop.table, payload, length, indev, outdev, ours_at_hook(ph.hook))
    cdef uint32_t nf_verdict = NF_ACCEPT if verdict == VF_ACCEPT else NF_DROP
    if loop.have_last and packet_id != loop.last_id + 1:
        # some message was not read: nothing below this id may be accepted by a later batch
        close_run(loop)
        loop.ops[loop.nops].id = packet_id - 1
        loop.ops[loop.nops].verdict = NF_DROP
        loop.nops += 1
        loop.gaps += 1
    loop.have_last = True
    loop.last_id = packet_id
    if loop.run_open and loop.run_verdict != nf_verdict:
        close_run(loop)
    loop.run_open = True
    loop.run_id = packet_id
    loop.run_verdict = nf_verdict
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
    cdef readonly uint64_t verdict_messages
    cdef readonly uint64_t verdict_errors
    cdef readonly uint64_t truncated
    cdef readonly uint64_t enobufs

    def __cinit__(self, int queue, AddressTable table not None, on_drop, *, bint fail_open=False,
                  bint gso=True, uint32_t copy_range=128, uint32_t max_length=4096,
                  unsigned int receive_buffer=8 * 1024 * 1024):
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
        if nfq_set_mode(self.qh, NFQNL_COPY_PACKET, copy_range) < 0:
            raise QueueBindError(f"NFQUEUE {queue}: the kernel refused copy mode")
        nfq_set_queue_maxlen(self.qh, max_length)
        cdef uint32_t flags = (NFQA_CFG_F_FAIL_OPEN if fail_open else 0) | (NFQA_CFG_F_GSO if gso else 0)
        if nfq_set_queue_flags(self.qh, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO, flags) < 0:
            raise QueueBindError(f"NFQUEUE {queue}: the kernel refused the queue flags")
        nfnl_rcvbufsiz(nfq_nfnlh(self.h), receive_buffer)
        self.fd = nfq_fd(self.h)
        cdef int one = 1
        setsockopt(self.fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one))

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
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
        return self.loop.errors if self.loop else 0

    @property
    def gaps(self):
        return self.loop.gaps if self.loop else 0

    @property
    def drops_not_kept(self):
        return self.loop.drops_not_kept if self.loop else 0

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
        loop.table = &self.table.t
        loop.nops = 0
        for i in range(n):
            if self.messages[i].msg_hdr.msg_flags & MSG_TRUNC:
                self.truncated += 1  # its packet stays queued until the next id jump drops it
                continue
            nfq_handle_packet(self.h, self.buffers + i * MESSAGE_SIZE, self.messages[i].msg_len)
        close_run(loop)
        cdef int sent_errors = 0
        with nogil:
            for i in range(loop.nops):
                if nfq_set_verdict_batch(self.qh, loop.ops[i].id, loop.ops[i].verdict) < 0:
                    sent_errors += 1
        self.verdict_messages += loop.nops
        self.verdict_errors += sent_errors

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
