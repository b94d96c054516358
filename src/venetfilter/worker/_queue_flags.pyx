# cython: language_level=3, embedsignature=True
"""What netfilterqueue's Python API does not expose about a bound queue: its flags.

Uses netfilterqueue's private `_impl.pxd` (hence the exact version pin in pyproject.toml).
"""

from libc.stdint cimport uint32_t
from netfilterqueue._impl cimport NetfilterQueue, nfq_q_handle


cdef extern from "libnetfilter_queue/libnetfilter_queue.h" nogil:
    int nfq_set_queue_flags(nfq_q_handle *qh, uint32_t mask, uint32_t flags)


cdef extern from "libnetfilter_queue/linux_nfnetlink_queue.h":
    enum:
        NFQA_CFG_F_FAIL_OPEN
        NFQA_CFG_F_GSO


def set_queue_flags(NetfilterQueue queue, bint fail_open, bint gso):
    """Set the bound queue's fail-open flag (accept, not drop, when the queue is full) and its GSO
    flag (no segmentation before queueing). Raises OSError when the kernel refuses."""
    if queue.qh == NULL:
        raise ValueError("the queue is not bound")
    cdef uint32_t mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
    cdef uint32_t flags = (NFQA_CFG_F_FAIL_OPEN if fail_open else 0) | (NFQA_CFG_F_GSO if gso else 0)
    if nfq_set_queue_flags(queue.qh, mask, flags) < 0:
        raise OSError("the kernel refused the queue flags (fail-open/GSO)")
