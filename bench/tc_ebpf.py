"""Layout experiment: an eBPF filter on each container link's node end (tc clsact, direct action).

What a fast path below netfilter would look like, built without a compiler: the program is
assembled here, loaded with bpf(2) and attached with pyroute2. Per link and direction it passes the
container's own addresses (TC_ACT_OK; the mark is not touched) and redirects everything else to
the ingress of a sink link, with the mark set to MARK | ifindex, where a netdev chain copies it to
the worker (NFLOG carries the mark, so the worker knows the link) and drops it.

    ip netns exec NODE python bench/tc_ebpf.py LINK SINK V4 V6   # attach both directions

Only bench/e2e.py's x-tc-ebpf configuration uses it; it is not part of the product.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

from pyroute2 import IPRoute

MARK = 0x76660000  # "vf" in the high half; the low half is the link's ifindex
TC_ACT_OK, TC_ACT_SHOT = 0, 2
BPF_F_INGRESS = 1
BPF_FUNC_REDIRECT = 23
BPF_PROG_LOAD, BPF_PROG_TYPE_SCHED_CLS = 5, 3
NR_BPF = 321  # x86_64
# struct __sk_buff offsets
SKB_MARK, SKB_PROTOCOL, SKB_DATA, SKB_DATA_END = 8, 16, 76, 80

# instruction classes and fields
LD, LDX, ST, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x05, 0x06, 0x07
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
MEM, IMM = 0x60, 0x00
K, X = 0x00, 0x08
ADD, AND, MOV = 0x00, 0x50, 0xB0

JA, JEQ, JGT, JNE, CALL, EXIT = 0x00, 0x10, 0x20, 0x50, 0x80, 0x90


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm if imm < 2**31 else imm - 2**32)


def ld_imm64(dst: int, value: int) -> bytes:
    low, high = value & 0xFFFFFFFF, value >> 32
    return insn(LD | DW | IMM, dst, 0, 0, low) + insn(0, 0, 0, 0, high)


class Assembler:
    """Instructions with labelled jumps, resolved at the end (each jump's offset counts 8-byte slots)."""

    def __init__(self) -> None:
        self.code: list[tuple[bytes, str | None]] = []  # (instruction, label it jumps to)
        self.labels: dict[str, int] = {}

    def slot(self) -> int:
        return sum(len(c) // 8 for c, _ in self.code)

    def emit(self, code: bytes, to: str | None = None) -> None:
        self.code.append((code, to))

    def label(self, name: str) -> None:
        self.labels[name] = self.slot()

    def jump(self, op: int, reg: int, imm: int, to: str, wide: bool = True) -> None:
        """A compare with an immediate: 64-bit (sign-extended imm) or, not wide, of the low 32 bits."""
        self.emit(insn((JMP if wide else JMP32) | op | K, reg, 0, 0, imm), to)

    def jump_reg(self, op: int, reg: int, src: int, to: str) -> None:
        self.emit(insn(JMP | op | X, reg, src, 0), to)

    def bytes(self) -> bytes:
        out, at = b"", 0
        for code, to in self.code:
            if to is not None:
                off = self.labels[to] - at - 1
                code = code[:2] + struct.pack("<h", off) + code[4:]
            out += code
            at += len(code) // 8
        return out


def program(ingress: bool, ifindex: int, sink: int, v4: list[str], v6: list[str]) -> bytes:
    """The filter for one direction of one link."""
    a = Assembler()
    a.emit(insn(ALU64 | MOV | X, 6, 1))  # r6 = ctx
    a.emit(insn(LDX | W | MEM, 2, 6, SKB_DATA))
    a.emit(insn(LDX | W | MEM, 3, 6, SKB_DATA_END))
    a.emit(insn(LDX | W | MEM, 5, 6, SKB_PROTOCOL))  # network order in the low 16 bits
    a.jump(JNE, 5, socket.htons(0x0800), "v6")
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 20))
    a.jump_reg(JGT, 4, 3, "refuse")
    if ingress:  # not to a multicast group
        a.emit(insn(LDX | B | MEM, 5, 2, 14 + 16))
        a.emit(insn(ALU64 | AND | K, 5, 0, 0, 0xF0))
        a.jump(JEQ, 5, 0xE0, "refuse")
    a.emit(insn(LDX | W | MEM, 5, 2, 14 + (12 if ingress else 16)))
    for address in v4:
        a.jump(JEQ, 5, struct.unpack("<I", socket.inet_aton(address))[0], "pass", wide=False)
    a.emit(insn(JMP | JA), "refuse")
    a.label("v6")
    a.jump(JNE, 5, socket.htons(0x86DD), "refuse")
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 40))
    a.jump_reg(JGT, 4, 3, "refuse")
    if ingress:
        a.emit(insn(LDX | B | MEM, 5, 2, 14 + 24))
        a.jump(JEQ, 5, 0xFF, "refuse")
    at = 14 + (8 if ingress else 24)
    a.emit(insn(LDX | DW | MEM, 4, 2, at))
    a.emit(insn(LDX | DW | MEM, 5, 2, at + 8))
    for n, address in enumerate(v6):
        raw = socket.inet_pton(socket.AF_INET6, address)
        high, low = struct.unpack("<QQ", raw)
        a.emit(ld_imm64(7, high))
        a.jump_reg(JNE, 4, 7, f"next{n}")
        a.emit(ld_imm64(7, low))
        a.jump_reg(JEQ, 5, 7, "pass")
        a.label(f"next{n}")
    a.label("refuse")
    a.emit(insn(ST | W | MEM, 6, 0, SKB_MARK, MARK | ifindex | (0 if ingress else 0x8000)))
    a.emit(insn(ALU64 | MOV | K, 1, 0, 0, sink))
    a.emit(insn(ALU64 | MOV | K, 2, 0, 0, BPF_F_INGRESS))
    a.emit(insn(JMP | CALL, 0, 0, 0, BPF_FUNC_REDIRECT))
    a.emit(insn(JMP | EXIT))
    a.label("pass")
    a.emit(insn(ALU64 | MOV | K, 0, 0, 0, TC_ACT_OK))
    a.emit(insn(JMP | EXIT))
    return a.bytes()


def load(code: bytes, name: str) -> int:
    """bpf(BPF_PROG_LOAD): the program's fd, or OSError with the verifier's log."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(code)
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_SCHED_CLS, len(code) // 8, ctypes.addressof(buf),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0,
                       name.encode()[:15])
    attr_buf = ctypes.create_string_buffer(attr, 128)
    fd = libc.syscall(NR_BPF, BPF_PROG_LOAD, attr_buf, 128)
    if fd < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"BPF_PROG_LOAD: {log.value.decode(errors='replace')[-2000:]}")
    return fd


def attach(link: str, sink: str, v4: list[str], v6: list[str]) -> None:
    """clsact on LINK and one filter per direction, in the current network namespace."""
    with IPRoute() as ipr:
        index, sink_index = ipr.link_lookup(ifname=link)[0], ipr.link_lookup(ifname=sink)[0]
        ipr.tc("add", "clsact", index)
        for ingress, parent in ((True, "ffff:fff2"), (False, "ffff:fff3")):
            fd = load(program(ingress, index, sink_index, v4, v6), f"vf_{'in' if ingress else 'out'}")
            ipr.tc("add-filter", "bpf", index, ":1", fd=fd, name=f"vf-{link}", parent=parent, classid=1,
                   direct_action=True)


if __name__ == "__main__":
    link_name, sink_name, address4, address6 = sys.argv[1:5]
    attach(link_name, sink_name, [address4], [address6])
