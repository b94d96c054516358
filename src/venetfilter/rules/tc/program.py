"""The filter on a container link's node end, for one direction.

Ingress (what leaves the container): a packet passes (TC_ACT_OK, its mark untouched) when its
source is one of the container's addresses and its destination is not multicast. Egress (what
enters it): when its destination is one of them. The test is a compare per address, as the
netdev chains do: measured cheaper than a map lookup (bench/README.md). A passed packet counts in
the slot of its address in a per-CPU array (`counters`), both directions in the same slot.

Ingress also refuses a packet that asks for its checksum to be completed (CHECKSUM_PARTIAL) at a
place inside its IP header: a container's root can send one (AF_PACKET with PACKET_VNET_HDR) with
its own source, and when the node or its hardware completes the checksum the sum, which it chose,
lands on the source address (tests/e2e/test_checksum_offload.py). `struct __sk_buff` does not show
`ip_summed` or `csum_start`: the program turns its context into the sk_buff it is
(`bpf_cast_to_kern_ctx`, a kfunc) and reads them at offsets from the kernel's BTF (`btf.skb_layout`).

Everything else -- another source, a multicast destination, a frame too short for its header,
anything not IPv4 or IPv6 -- gets the mark `mark(ifindex, egress)` and is redirected to the ingress
of the sink link, where a netdev chain copies it to the worker and drops it. The program never
lets a packet it did not recognise through.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence

from .asm import DW, FP, JEQ, JGT, JLT, JNE, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, W, Assembler
from .asm import B as BYTE
from .asm import H as HALF
from .btf import SkbLayout, skb_layout

__all__ = ["EGRESS_MARK", "TC_ACT_OK", "link_filter", "mark"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

TC_ACT_OK = 0
EGRESS_MARK = 1 << 31
_BPF_F_INGRESS = 1
_FUNC_MAP_LOOKUP_ELEM, _FUNC_REDIRECT = 1, 23
_CHECKSUM_PARTIAL = 3
# struct __sk_buff
_MARK, _PROTOCOL, _DATA, _DATA_END = 8, 16, 76, 80
_ETH = 14
_IP4_SRC, _IP4_DST, _IP6_SRC, _IP6_DST = 12, 16, 8, 24


def mark(ifindex: int, egress: bool) -> int:
    """The mark of a refused packet: the link's ifindex, bit 31 set for egress."""
    if not 0 < ifindex < EGRESS_MARK:
        raise ValueError(f"ifindex {ifindex} out of range")
    return ifindex | (EGRESS_MARK if egress else 0)


def link_filter(
    egress: bool,
    ifindex: int,
    sink: int,
    addresses: Sequence[Address],
    counters: int | None = None,
    layout: SkbLayout | None = None,
) -> bytes:
    """The program for one direction of link `ifindex`; `addresses` in slot order; `counters`: the
    fd of a per-CPU array with a u64 slot per address (None: no counting); `layout`: the sk_buff
    offsets for the ingress checksum test (default: the running kernel's, `BtfError` without BTF)."""
    if egress:  # what enters a container is the node's: its checksums are the node's own
        layout = None
    elif layout is None:
        layout = skb_layout()
    a = Assembler()
    a.mov(R6, R1)
    a.load(W, R2, R6, _DATA)
    a.load(W, R3, R6, _DATA_END)
    a.load(W, R5, R6, _PROTOCOL)  # network byte order in the low 16 bits
    a.jump_if(JNE, R5, socket.htons(0x0800), "v6")
    a.mov(R4, R2)
    a.add_imm(R4, _ETH + 20)
    a.jump_if_reg(JGT, R4, R3, "refuse")
    if layout is not None:  # the IPv4 header's length, for the checksum test
        a.load(BYTE, R9, R2, _ETH)
        a.and_imm(R9, 0x0F)
        a.lsh_imm(R9, 2)
    if not egress:  # not to a multicast group
        a.load(BYTE, R5, R2, _ETH + _IP4_DST)
        a.and_imm(R5, 0xF0)
        a.jump_if(JEQ, R5, 0xE0, "refuse")
    a.load(W, R5, R2, _ETH + (_IP4_DST if egress else _IP4_SRC))
    for slot, address in enumerate(addresses):
        if address.version == 4:
            a.jump_if(JEQ, R5, struct.unpack("<I", address.packed)[0], f"hit{slot}", wide=False)
    a.jump("refuse")
    a.label("v6")
    a.jump_if(JNE, R5, socket.htons(0x86DD), "refuse")
    a.mov(R4, R2)
    a.add_imm(R4, _ETH + 40)
    a.jump_if_reg(JGT, R4, R3, "refuse")
    if layout is not None:
        a.mov_imm(R9, 40)
    if not egress:
        a.load(BYTE, R5, R2, _ETH + _IP6_DST)
        a.jump_if(JEQ, R5, 0xFF, "refuse")
    at = _ETH + (_IP6_DST if egress else _IP6_SRC)
    a.load(DW, R4, R2, at)
    a.load(DW, R5, R2, at + 8)
    for slot, address in enumerate(addresses):
        if address.version == 6:
            high, low = struct.unpack("<QQ", address.packed)
            a.load_imm64(R7, high)
            a.jump_if_reg(JNE, R4, R7, f"miss{slot}")
            a.load_imm64(R7, low)
            a.jump_if_reg(JEQ, R5, R7, f"hit{slot}")
            a.label(f"miss{slot}")
    a.label("refuse")
    a.store_imm(W, R6, _MARK, mark(ifindex, egress))
    a.mov_imm(R1, sink)
    a.mov_imm(R2, _BPF_F_INGRESS)
    a.call(_FUNC_REDIRECT)
    a.exit()
    if not addresses:  # nothing passes: the verifier refuses blocks no jump reaches
        return a.code()
    after_hit = "count" if counters is not None else "pass"
    for slot in range(len(addresses)):
        a.label(f"hit{slot}")
        a.mov_imm(R8, slot)
        a.jump("checksum" if layout is not None else after_hit)
    if layout is not None:  # refuse a partial checksum that starts inside the IP header
        a.label("checksum")
        a.mov(R1, R6)
        a.call_kfunc(layout.cast_to_kern_ctx)  # r0: the sk_buff itself, its fields readable by BTF
        a.load(BYTE, R1, R0, layout.ip_summed_byte)
        a.rsh_imm(R1, layout.ip_summed_shift)
        a.and_imm(R1, 3)
        a.jump_if(JNE, R1, _CHECKSUM_PARTIAL, after_hit)
        a.load(HALF, R1, R0, layout.csum_start)
        a.load(HALF, R2, R0, layout.network_header)
        a.add(R2, R9)
        a.jump_if_reg(JLT, R1, R2, "refuse")
        a.jump(after_hit)
    if counters is not None:
        a.label("count")
        a.store(W, FP, -4, R8)
        a.load_map(R1, counters)
        a.mov(R2, FP)
        a.add_imm(R2, -4)
        a.call(_FUNC_MAP_LOOKUP_ELEM)
        a.jump_if(JEQ, R0, 0, "pass")
        a.mov_imm(R1, 1)
        a.atomic_add(R0, 0, R1)
    a.label("pass")
    a.mov_imm(R0, TC_ACT_OK)
    a.exit()
    return a.code()
