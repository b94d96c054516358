# cython: language_level=3, embedsignature=True
"""The venet verdict core in C: the table lives in C memory and the per-packet path never touches
the Python API. `_core_py.py` is the readable specification; both must agree on every input.

Concurrency: every writer holds the GIL and does all its Python work (parsing, checks, allocation)
before it changes anything, then changes the C table without calling back into Python. A classify
that holds the GIL therefore sees the table before or after a change, never half of one. Code that
classifies without the GIL (`table_classify`) must not run while the table changes; the worker
swaps whole tables instead (see `load`).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

import socket
from ipaddress import IPv4Address, IPv6Address

from ..errors import (
    AddressInUseError,
    InvalidAddressError,
    InvalidContainerError,
    LinkInUseError,
    UnknownContainerError,
)
from ._types import Container, Verdict


cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    enum:
        AF_INET
        AF_INET6


cdef tuple VERDICTS = tuple(Verdict)
cdef size_t MIN_CAPACITY = 16
cdef uint64_t MAX_IFINDEX = 0xFFFFFFFF


# -- the hash map ------------------------------------------------------------------------------------

cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    """MurmurHash3's finaliser: every input bit affects every output bit."""
    x ^= x >> 33
    x *= 0xff51afd7ed558ccdULL
    x ^= x >> 33
    x *= 0xc4ceb9fe1a85ec53ULL
    x ^= x >> 33
    return x


cdef inline size_t home(Map *m, uint64_t hi, uint64_t lo) noexcept nogil:
    return <size_t>mix64(hi ^ mix64(lo)) & m.mask


cdef inline int32_t map_find(Map *m, uint64_t hi, uint64_t lo) noexcept nogil:
    """The owner of a key, or -1. The map is never full, so the probe ends at an empty slot."""
    if m.used == 0:
        return -1
    cdef size_t i = home(m, hi, lo)
    cdef Slot *s
    while True:
        s = &m.slots[i]
        if s.owner < 0:
            return -1
        if s.lo == lo and s.hi == hi:
            return s.owner
        i = (i + 1) & m.mask


cdef void map_put(Map *m, uint64_t hi, uint64_t lo, int32_t owner) noexcept nogil:
    """Set a key's owner. The caller has reserved room (map_reserve)."""
    cdef size_t i = home(m, hi, lo)
    cdef Slot *s
    while True:
        s = &m.slots[i]
        if s.owner < 0:
            s.hi = hi
            s.lo = lo
            s.owner = owner
            m.used += 1
            return
        if s.lo == lo and s.hi == hi:
            s.owner = owner
            return
        i = (i + 1) & m.mask


cdef void map_delete_at(Map *m, size_t i) noexcept nogil:
    """Empty slot i and shift back the entries of its cluster that would no longer be found."""
    cdef size_t j = i
    cdef size_t k
    while True:
        j = (j + 1) & m.mask
        if m.slots[j].owner < 0:
            break
        k = home(m, m.slots[j].hi, m.slots[j].lo)
        # the entry at j may stay if its home lies cyclically in (i, j]
        if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        m.slots[i] = m.slots[j]
        i = j
    m.slots[i].owner = -1
    m.used -= 1


cdef bint map_delete(Map *m, uint64_t hi, uint64_t lo) noexcept nogil:
    if m.used == 0:
        return False
    cdef size_t i = home(m, hi, lo)
    while m.slots[i].owner >= 0:
        if m.slots[i].lo == lo and m.slots[i].hi == hi:
            map_delete_at(m, i)
            return True
        i = (i + 1) & m.mask
    return False


cdef size_t map_delete_owner(Map *m, int32_t owner) noexcept nogil:
    """Delete every key of `owner`. The walk starts after an empty slot so that no cluster wraps
    around its start, and looks again at a slot whose entry it deleted (a later one moved in)."""
    if m.used == 0:
        return 0
    cdef size_t capacity = m.mask + 1
    cdef size_t start = 0
    cdef size_t deleted = 0
    cdef size_t step = 0
    cdef size_t i
    while m.slots[start].owner >= 0:
        start += 1
    while step < capacity:
        i = (start + 1 + step) & m.mask
        if m.slots[i].owner == owner:
            map_delete_at(m, i)
            deleted += 1
        else:
            step += 1
    return deleted


cdef int map_reserve(Map *m, size_t count) except -1:
    """Make room for `count` keys in all, so that later puts cannot fail."""
    cdef size_t old_capacity = m.mask + 1 if m.slots != NULL else 0
    cdef size_t capacity = MIN_CAPACITY
    while count * 4 > capacity * 3:
        capacity *= 2
    if capacity <= old_capacity:
        return 0
    cdef Slot *slots = <Slot *>malloc(capacity * sizeof(Slot))
    if slots == NULL:
        raise MemoryError()
    memset(slots, 0xFF, capacity * sizeof(Slot))  # owner -1 everywhere
    cdef Slot *old = m.slots
    m.slots = slots
    m.mask = capacity - 1
    m.used = 0
    cdef size_t i
    for i in range(old_capacity):
        if old[i].owner >= 0:
            map_put(m, old[i].hi, old[i].lo, old[i].owner)
    free(old)
    return 0


cdef void map_free(Map *m) noexcept nogil:
    free(m.slots)
    m.slots = NULL
    m.mask = 0
    m.used = 0


# -- the per-packet decision -------------------------------------------------------------------------

cdef inline uint64_t load64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t load32(const uint8_t *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint8_t decide(Table *t, const uint8_t *p, size_t n,
                           int32_t leaving, int32_t entering) noexcept nogil:
    cdef size_t header_length, total_length
    if n == 0:
        return VF_DROP_MALFORMED
    cdef uint8_t version = p[0] >> 4
    if version == 4:
        if n < 20:
            return VF_DROP_MALFORMED
        header_length = (p[0] & 0x0F) * 4
        total_length = (<size_t>p[2] << 8) | p[3]
        if header_length < 20 or header_length > n or total_length < header_length:
            return VF_DROP_MALFORMED
        if (p[16] & 0xF0) == 0xE0:
            return VF_DROP_MULTICAST
        if leaving >= 0 and map_find(&t.v4, 0, load32(p + 12)) != leaving:
            return VF_DROP_SOURCE
        if entering >= 0 and map_find(&t.v4, 0, load32(p + 16)) != entering:
            return VF_DROP_DESTINATION
        return VF_ACCEPT
    if version == 6:
        if n < 40:
            return VF_DROP_MALFORMED
        if p[24] == 0xFF:
            return VF_DROP_MULTICAST
        if leaving >= 0 and map_find(&t.v6, load64(p + 8), load64(p + 16)) != leaving:
            return VF_DROP_SOURCE
        if entering >= 0 and map_find(&t.v6, load64(p + 24), load64(p + 32)) != entering:
            return VF_DROP_DESTINATION
        return VF_ACCEPT
    return VF_DROP_NOT_IP


cdef uint8_t table_classify(Table *t, const uint8_t *packet, size_t length,
                            uint32_t indev, uint32_t outdev, uint8_t ours) noexcept nogil:
    cdef int32_t leaving = map_find(&t.links, 0, indev) if indev else -1
    cdef int32_t entering = map_find(&t.links, 0, outdev) if outdev else -1
    if ((ours & VF_OURS_IN) and leaving < 0) or ((ours & VF_OURS_OUT) and entering < 0):
        t.unknown_links += 1
        return VF_DROP_UNKNOWN_LINK
    if leaving < 0 and entering < 0:
        return VF_ACCEPT  # not a container's packet: not our business
    cdef uint8_t verdict = decide(t, packet, length, leaving, entering)
    cdef int32_t charged = entering if verdict == VF_DROP_DESTINATION or leaving < 0 else leaving
    t.cts[charged].counts[verdict] += 1
    return verdict


# -- addresses ---------------------------------------------------------------------------------------

cdef int parse_address(object value, Key *key) except -1:
    """Read an address as text (inet_pton, IPv6 when it has ':') or an ipaddress object."""
    cdef uint8_t packed[16]
    cdef bytes text
    cdef const char *s
    cdef int rc
    if isinstance(value, str):
        try:
            text = (<str>value).encode("ascii")
        except UnicodeEncodeError:
            raise InvalidAddressError(value) from None
        s = PyBytes_AS_STRING(text)
        if memchr(s, 0, PyBytes_GET_SIZE(text)) != NULL:
            raise InvalidAddressError(value)
        if memchr(s, 0x3A, PyBytes_GET_SIZE(text)) != NULL:  # ':'
            key.family = 6
            rc = inet_pton(AF_INET6, s, packed)
        else:
            key.family = 4
            rc = inet_pton(AF_INET, s, packed)
        if rc != 1:
            raise InvalidAddressError(value)
    elif isinstance(value, IPv6Address):
        if value.scope_id:
            raise InvalidAddressError(value, "zone ids are not allowed")
        key.family = 6
        memcpy(packed, PyBytes_AS_STRING(value.packed), 16)
    elif isinstance(value, IPv4Address):
        key.family = 4
        memcpy(packed, PyBytes_AS_STRING(value.packed), 4)
    else:
        raise InvalidAddressError(value)
    if key.family == 4:
        key.hi = 0
        key.lo = load32(packed)
    else:
        key.hi = load64(packed)
        key.lo = load64(packed + 8)
    return 0


cdef str format_key(uint64_t hi, uint64_t lo, int family):
    cdef uint8_t packed[16]
    if family == 4:
        memcpy(packed, &lo, 4)
        return socket.inet_ntop(socket.AF_INET, (<char *>packed)[:4])
    memcpy(packed, &hi, 8)
    memcpy(packed + 8, &lo, 8)
    return socket.inet_ntop(socket.AF_INET6, (<char *>packed)[:16])


cdef inline Map *family_map(Table *t, int family) noexcept:
    return &t.v4 if family == 4 else &t.v6


cdef class Keys:
    """A parsed list of addresses in C memory, duplicates included."""

    def __cinit__(self, addresses):
        if isinstance(addresses, (str, bytes)):
            raise InvalidAddressError(addresses, "expected an iterable of addresses, not one string")
        items = list(addresses)
        self.keys = <Key *>malloc((len(items) or 1) * sizeof(Key))
        if self.keys == NULL:
            raise MemoryError()
        for value in items:
            parse_address(value, &self.keys[self.n])
            self.n4 += self.keys[self.n].family == 4
            self.n += 1

    def __dealloc__(self):
        free(self.keys)


cdef uint8_t check_ours(object ours) except? 255:
    try:
        value = ours.__index__()
    except (AttributeError, TypeError):
        raise TypeError(f"ours must be an Ours flag, not {type(ours).__name__}") from None
    if not 0 <= value <= 3:
        raise ValueError(f"ours = {value} is not an Ours flag (0 to 3)")
    return value


cdef str check_ctid(object ctid):
    if not isinstance(ctid, str) or not ctid:
        raise InvalidContainerError(f"invalid container id {ctid!r}: must be a non-empty string")
    return ctid


cdef uint32_t check_ifindex(object ifindex) except 0:
    try:
        value = ifindex.__index__()
    except (AttributeError, TypeError):
        raise InvalidContainerError(f"invalid interface index {ifindex!r}") from None
    if not 1 <= value <= MAX_IFINDEX:
        raise InvalidContainerError(f"invalid interface index {ifindex!r}: must be 1..{MAX_IFINDEX}")
    return value


# -- the table ---------------------------------------------------------------------------------------

cdef class AddressTable:
    """Which container owns which address, and which interface is each container's link."""

    def __cinit__(self):
        memset(&self.t, 0, sizeof(Table))
        self._slot_of = {}
        self._ctids = []
        self._free = []

    def __dealloc__(self):
        map_free(&self.t.v4)
        map_free(&self.t.v6)
        map_free(&self.t.links)
        free(self.t.cts)

    # -- changes -----------------------------------------------------------------------------------

    def set_container(self, ctid, ifindex, addresses):
        """Give container `ctid` the link `ifindex` and exactly `addresses`, replacing what it had."""
        ctid = check_ctid(ctid)
        cdef uint32_t link = check_ifindex(ifindex)
        cdef Keys keys = Keys(addresses)
        cdef int32_t slot = self._slot_of.get(ctid, -1)
        cdef int32_t other = map_find(&self.t.links, 0, link)
        if other >= 0 and other != slot:
            raise LinkInUseError(link, self._ctids[other])
        self._check_free(keys, slot)
        map_reserve(&self.t.v4, self.t.v4.used + keys.n4)
        map_reserve(&self.t.v6, self.t.v6.used + keys.n - keys.n4)
        map_reserve(&self.t.links, self.t.links.used + 1)
        if slot < 0:
            slot = self._new_slot(ctid)
        # from here on: no Python, nothing can fail
        cdef CtSlot *ct = &self.t.cts[slot]
        if ct.naddr:
            map_delete_owner(&self.t.v4, slot)
            map_delete_owner(&self.t.v6, slot)
            ct.naddr = 0
        if ct.ifindex and ct.ifindex != link:
            map_delete(&self.t.links, 0, ct.ifindex)
        ct.ifindex = link
        map_put(&self.t.links, 0, link, slot)
        ct.naddr = self._put_keys(keys, slot)

    def remove_container(self, ctid):
        """Forget container `ctid` and its addresses; False when it was not there."""
        ctid = check_ctid(ctid)
        cdef int32_t slot = self._slot_of.pop(ctid, -1)
        if slot < 0:
            return False
        cdef CtSlot *ct = &self.t.cts[slot]
        map_delete_owner(&self.t.v4, slot)
        map_delete_owner(&self.t.v6, slot)
        map_delete(&self.t.links, 0, ct.ifindex)
        memset(ct, 0, sizeof(CtSlot))
        self._ctids[slot] = None
        self._free.append(slot)
        return True

    def add_addresses(self, ctid, addresses):
        """Give `ctid` these addresses too; re-adding one it already has is not an error."""
        cdef int32_t slot = self._slot(ctid)
        cdef Keys keys = Keys(addresses)
        self._check_free(keys, slot)
        map_reserve(&self.t.v4, self.t.v4.used + keys.n4)
        map_reserve(&self.t.v6, self.t.v6.used + keys.n - keys.n4)
        self.t.cts[slot].naddr += self._put_keys(keys, slot)

    def remove_addresses(self, ctid, addresses):
        """Take these addresses from `ctid`; returns how many it had. Absent ones are ignored."""
        cdef int32_t slot = self._slot(ctid)
        cdef Keys keys = Keys(addresses)
        cdef size_t i, removed = 0
        cdef Map *m
        for i in range(keys.n):
            m = family_map(&self.t, keys.keys[i].family)
            if map_find(m, keys.keys[i].hi, keys.keys[i].lo) == slot:
                map_delete(m, keys.keys[i].hi, keys.keys[i].lo)
                removed += 1
        self.t.cts[slot].naddr -= removed
        return removed

    def load(self, containers):
        """Replace the whole table at once; counters of containers that stay are kept."""
        cdef AddressTable fresh = AddressTable()
        for ctid, (ifindex, addresses) in containers.items():
            fresh.set_container(ctid, ifindex, addresses)
        cdef int32_t old_slot
        for ctid, new_slot in fresh._slot_of.items():
            old_slot = self._slot_of.get(ctid, -1)
            if old_slot >= 0:
                memcpy(fresh.t.cts[<int32_t>new_slot].counts, self.t.cts[old_slot].counts,
                       sizeof(self.t.cts[old_slot].counts))
        fresh.t.unknown_links = self.t.unknown_links
        # swap: `fresh` leaves with the old table and frees it
        cdef Table old = self.t
        self.t = fresh.t
        fresh.t = old
        self._slot_of, fresh._slot_of = fresh._slot_of, self._slot_of
        self._ctids, fresh._ctids = fresh._ctids, self._ctids
        self._free, fresh._free = fresh._free, self._free

    cdef int32_t _slot(self, ctid) except -1:
        ctid = check_ctid(ctid)
        slot = self._slot_of.get(ctid)
        if slot is None:
            raise UnknownContainerError(ctid)
        return slot

    cdef int32_t _new_slot(self, str ctid) except -1:
        cdef int32_t slot
        cdef CtSlot *cts
        if self._free:
            slot = self._free.pop()
            self._ctids[slot] = ctid
        else:
            if self.t.cts_len == self.t.cts_cap:
                cts = <CtSlot *>realloc(self.t.cts, (self.t.cts_cap * 2 + 4) * sizeof(CtSlot))
                if cts == NULL:
                    raise MemoryError()
                self.t.cts = cts
                self.t.cts_cap = self.t.cts_cap * 2 + 4
            slot = self.t.cts_len
            self.t.cts_len += 1
            self._ctids.append(ctid)
        memset(&self.t.cts[slot], 0, sizeof(CtSlot))
        self._slot_of[ctid] = slot
        return slot

    cdef int _check_free(self, Keys keys, int32_t slot) except -1:
        cdef size_t i
        cdef int32_t owner
        cdef Key *k
        for i in range(keys.n):
            k = &keys.keys[i]
            owner = map_find(family_map(&self.t, k.family), k.hi, k.lo)
            if owner >= 0 and owner != slot:
                raise AddressInUseError(format_key(k.hi, k.lo, k.family), self._ctids[owner])
        return 0

    cdef size_t _put_keys(self, Keys keys, int32_t slot) noexcept:
        """Give the keys to `slot`; returns how many it did not have. Room is reserved."""
        cdef size_t i, added = 0
        cdef Map *m
        cdef Key *k
        for i in range(keys.n):
            k = &keys.keys[i]
            m = family_map(&self.t, k.family)
            if map_find(m, k.hi, k.lo) != slot:
                map_put(m, k.hi, k.lo, slot)
                added += 1
        return added

    # -- lookups -----------------------------------------------------------------------------------

    def owner(self, address):
        """The container that owns `address`, or None."""
        cdef Key key
        parse_address(address, &key)
        cdef int32_t slot = map_find(family_map(&self.t, key.family), key.hi, key.lo)
        return None if slot < 0 else self._ctids[slot]

    def containers(self):
        """Every container with its link and its addresses."""
        keys = {slot: [] for slot in self._slot_of.values()}
        cdef Slot *s
        cdef size_t i
        cdef uint8_t packed[16]
        for i in range(self.t.v4.mask + 1 if self.t.v4.slots != NULL else 0):
            s = &self.t.v4.slots[i]
            if s.owner >= 0:
                memcpy(packed, &s.lo, 4)
                keys[s.owner].append((<char *>packed)[:4])
        for i in range(self.t.v6.mask + 1 if self.t.v6.slots != NULL else 0):
            s = &self.t.v6.slots[i]
            if s.owner >= 0:
                memcpy(packed, &s.hi, 8)
                memcpy(packed + 8, &s.lo, 8)
                keys[s.owner].append((<char *>packed)[:16])
        result = {}
        for ctid in sorted(self._slot_of):
            slot = self._slot_of[ctid]
            ordered = sorted(keys[slot], key=lambda k: (len(k), k))
            result[ctid] = Container(
                ctid,
                self.t.cts[<int32_t>slot].ifindex,
                tuple([socket.inet_ntop(socket.AF_INET if len(k) == 4 else socket.AF_INET6, k)
                       for k in ordered]),
            )
        return result

    def counters(self):
        """Packets classified per container and verdict (containers' own packets only)."""
        result = {}
        cdef CtSlot *ct
        for ctid in sorted(self._slot_of):
            ct = &self.t.cts[<int32_t>self._slot_of[ctid]]
            result[ctid] = {verdict: ct.counts[<int>verdict] for verdict in VERDICTS}
        return result

    @property
    def unknown_links(self):
        """How many packets were DROP_UNKNOWN_LINK (they are charged to no container)."""
        return self.t.unknown_links

    def __len__(self):
        return self.t.v4.used + self.t.v6.used

    # -- the per-packet path -----------------------------------------------------------------------

    def classify(self, packet, uint32_t indev, uint32_t outdev, ours=0):
        """venet's verdict for one IP packet that came in on `indev` and goes out on `outdev` (0: none);
        `ours` (`Ours`) says which of them the caller knows to be container links."""
        cdef Py_buffer view
        cdef uint8_t verdict
        cdef uint8_t flags = check_ours(ours)
        if type(packet) is bytes:
            verdict = table_classify(&self.t, <const uint8_t *>PyBytes_AS_STRING(packet),
                                     PyBytes_GET_SIZE(packet), indev, outdev, flags)
        else:
            PyObject_GetBuffer(packet, &view, PyBUF_SIMPLE)
            try:
                verdict = table_classify(&self.t, <const uint8_t *>view.buf, view.len, indev, outdev, flags)
            finally:
                PyBuffer_Release(&view)
        return VERDICTS[verdict]

    def classify_batch(self, const uint8_t[::1] data, const uint32_t[::1] offsets,
                       const uint32_t[::1] indevs, const uint32_t[::1] outdevs, uint8_t[::1] out,
                       const uint8_t[::1] ours=None):
        """Classify n packets in one call, without a Python object per packet.

        Packet i is ``data[offsets[i]:offsets[i + 1]]`` (`offsets` holds n + 1 unsigned 32-bit
        integers, non-decreasing, within `data`); `indevs` and `outdevs` hold n unsigned 32-bit
        integers; the verdicts are written as bytes to `out` (n bytes, writable). `ours`, when
        given, holds n bytes of `Ours` flags (0 to 3).
        """
        cdef size_t n = indevs.shape[0]
        cdef size_t i
        cdef uint32_t previous = 0
        if (offsets.shape[0] != n + 1 or outdevs.shape[0] != n or out.shape[0] < n
                or (ours is not None and ours.shape[0] != n)):
            raise ValueError(
                f"batch sizes disagree: {offsets.shape[0]} offsets, {n} indevs, "
                f"{outdevs.shape[0]} outdevs, {out.shape[0]} out"
                + ("" if ours is None else f", {ours.shape[0]} ours")
            )
        if ours is not None:
            for i in range(n):
                if ours[i] > 3:
                    raise ValueError(f"ours[{i}] = {ours[i]} is not an Ours flag (0 to 3)")
        for i in range(n + 1):
            if offsets[i] < previous or offsets[i] > <size_t>data.shape[0]:
                raise ValueError(
                    f"offsets[{i}] = {offsets[i]} is out of order or beyond the data ({data.shape[0]} bytes)"
                )
            previous = offsets[i]
        cdef const uint8_t *base = &data[0] if data.shape[0] else NULL
        for i in range(n):
            out[i] = table_classify(&self.t, base + offsets[i], offsets[i + 1] - offsets[i],
                                    indevs[i], outdevs[i], 0 if ours is None else ours[i])
