# The C-level interface of the verdict core, for Cython modules that classify without the GIL
# (the native NFQUEUE backend). Python code uses `venetfilter.core` instead.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t


cdef enum:
    VF_ACCEPT = 0
    VF_DROP_SOURCE = 1
    VF_DROP_DESTINATION = 2
    VF_DROP_MULTICAST = 3
    VF_DROP_MALFORMED = 4
    VF_DROP_NOT_IP = 5
    VF_DROP_UNKNOWN_LINK = 6
    VF_NVERDICTS = 7


# `ours` flags of table_classify: the device is a container link (matched by name in the kernel).
cdef enum:
    VF_OURS_IN = 1
    VF_OURS_OUT = 2


# A key is 128 bits: an IPv6 address, or an IPv4 address (or an interface index) in `lo` with
# `hi` zero. Each family has its own map, so an IPv4 key never meets an IPv6 one.
cdef struct Slot:
    uint64_t hi
    uint64_t lo
    int32_t owner       # container slot; -1: empty


# Open-addressing hash map with linear probing and backward-shift deletion (no tombstones),
# at most 3/4 full.
cdef struct Map:
    Slot *slots
    size_t mask
    size_t used


cdef struct CtSlot:
    uint32_t ifindex    # 0: slot unused
    uint32_t naddr
    uint64_t counts[VF_NVERDICTS]


cdef struct Table:
    Map v4              # IPv4 address -> container slot
    Map v6              # IPv6 address -> container slot
    Map links           # interface index -> container slot
    CtSlot *cts         # container slots
    size_t cts_len
    size_t cts_cap
    uint64_t unknown_links  # DROP_UNKNOWN_LINK verdicts (charged to no container)


# The whole per-packet decision, counters included. No Python, no allocation. It is declared nogil
# because it calls nothing that needs the GIL, but it reads the table, which the writers below change
# in place (and `load` swaps) while holding the GIL: a caller must hold the GIL too, or keep every
# writer out by other means. The native NFQUEUE loop holds it while it classifies a batch; several
# queue threads thus classify one at a time (tens of ns a packet) and overlap only in their system
# calls. An immutable table swapped by pointer would let them classify in parallel; measured, two
# queues on this project's two CPUs deliver less than one (the sender needs a CPU), so it is not done.
cdef uint8_t table_classify(Table *t, const uint8_t *packet, size_t length,
                            uint32_t indev, uint32_t outdev, uint8_t ours) noexcept nogil


cdef struct Key:
    uint64_t hi
    uint64_t lo
    int family          # 4 or 6


cdef class Keys:
    cdef Key *keys
    cdef size_t n
    cdef size_t n4


cdef class AddressTable:
    cdef Table t
    cdef dict _slot_of        # ctid -> container slot
    cdef list _ctids          # container slot -> ctid (None when free)
    cdef list _free           # free container slots

    cdef int32_t _slot(self, ctid) except -1
    cdef int32_t _new_slot(self, str ctid) except -1
    cdef int _check_free(self, Keys keys, int32_t slot) except -1
    cdef size_t _put_keys(self, Keys keys, int32_t slot) noexcept
