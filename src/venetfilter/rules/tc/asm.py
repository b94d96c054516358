"""A small eBPF assembler: instruction encoding and labelled jumps, nothing else.

Only what the link filter needs: 64-bit ALU with immediates or registers, loads and stores of
1/2/4/8 bytes, conditional jumps (64-bit, or 32-bit for compares of IPv4 addresses), calls,
64-bit immediates and map references. Jumps name labels; `Assembler.code` resolves them.
"""

from __future__ import annotations

import struct

__all__ = ["Assembler", "AssemblerError", "insn"]

# instruction classes
LD, LDX, ST, STX, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07
# sizes and modes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
# sources
K, X = 0x00, 0x08
# ALU operations
ADD, OR, AND, LSH, RSH, MOV = 0x00, 0x40, 0x50, 0x60, 0x70, 0xB0
# jump operations
JA, JEQ, JGT, JNE, CALL, EXIT, JLT = 0x00, 0x10, 0x20, 0x50, 0x80, 0x90, 0xA0
PSEUDO_MAP_FD, PSEUDO_KFUNC_CALL = 1, 2
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP = range(11)


class AssemblerError(ValueError):
    """A program the assembler cannot encode (an unknown label, an offset out of range)."""


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction; `imm` is taken modulo 2**32 (so 0xFFFFFFFF and -1 are the same)."""
    if not -(2**15) <= off < 2**15:
        raise AssemblerError(f"offset {off} does not fit 16 bits")
    return struct.pack("<BBhI", code, (src << 4) | dst, off, imm & 0xFFFFFFFF)


class Assembler:
    """Instructions in order; jumps to labels are resolved by `code`."""

    def __init__(self) -> None:
        self._items: list[tuple[bytes, str | None]] = []
        self._labels: dict[str, int] = {}
        self._slots = 0

    def emit(self, code: bytes, to: str | None = None) -> None:
        """Append an instruction (16 bytes for a 64-bit immediate); `to`: the label it jumps to."""
        self._items.append((code, to))
        self._slots += len(code) // 8

    def label(self, name: str) -> None:
        if name in self._labels:
            raise AssemblerError(f"label {name!r} defined twice")
        self._labels[name] = self._slots

    # -- the instructions the link filter uses -----------------------------------------------------

    def mov(self, dst: int, src: int) -> None:
        self.emit(insn(ALU64 | MOV | X, dst, src))

    def mov_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | MOV | K, dst, 0, 0, imm))

    def add_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | ADD | K, dst, 0, 0, imm))

    def and_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | AND | K, dst, 0, 0, imm))

    def or_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | OR | K, dst, 0, 0, imm))

    def lsh_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | LSH | K, dst, 0, 0, imm))

    def rsh_imm(self, dst: int, imm: int) -> None:
        self.emit(insn(ALU64 | RSH | K, dst, 0, 0, imm))

    def add(self, dst: int, src: int) -> None:
        self.emit(insn(ALU64 | ADD | X, dst, src))

    def load(self, size: int, dst: int, src: int, off: int) -> None:
        self.emit(insn(LDX | size | MEM, dst, src, off))

    def store(self, size: int, dst: int, off: int, src: int) -> None:
        self.emit(insn(STX | size | MEM, dst, src, off))

    def store_imm(self, size: int, dst: int, off: int, imm: int) -> None:
        self.emit(insn(ST | size | MEM, dst, 0, off, imm))

    def atomic_add(self, dst: int, off: int, src: int) -> None:
        """*(u64 *)(dst + off) += src, atomically."""
        self.emit(insn(STX | DW | ATOMIC, dst, src, off, ADD))

    def load_imm64(self, dst: int, value: int) -> None:
        value &= 0xFFFFFFFFFFFFFFFF
        self.emit(insn(LD | DW | IMM, dst, 0, 0, value & 0xFFFFFFFF) + insn(0, 0, 0, 0, value >> 32))

    def load_map(self, dst: int, map_fd: int) -> None:
        self.emit(insn(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, map_fd) + insn(0))

    def jump(self, to: str) -> None:
        self.emit(insn(JMP | JA), to)

    def jump_if(self, op: int, reg: int, imm: int, to: str, wide: bool = True) -> None:
        """Jump if `reg` OP `imm`: all 64 bits against the sign-extended immediate, or (not `wide`)
        the low 32 bits against it as it is."""
        self.emit(insn((JMP if wide else JMP32) | op | K, reg, 0, 0, imm), to)

    def jump_if_reg(self, op: int, reg: int, src: int, to: str) -> None:
        self.emit(insn(JMP | op | X, reg, src), to)

    def call(self, helper: int) -> None:
        self.emit(insn(JMP | CALL, 0, 0, 0, helper))

    def call_kfunc(self, btf_id: int) -> None:
        """A call of the kernel function with this id in the kernel's own BTF."""
        self.emit(insn(JMP | CALL, 0, PSEUDO_KFUNC_CALL, 0, btf_id))

    def exit(self) -> None:
        self.emit(insn(JMP | EXIT))

    # -- the result --------------------------------------------------------------------------------

    def code(self) -> bytes:
        """The program, every jump's offset resolved (counted in 8-byte slots from the next one)."""
        out, at = [], 0
        for code, to in self._items:
            if to is not None:
                if to not in self._labels:
                    raise AssemblerError(f"jump to an undefined label {to!r}")
                off = self._labels[to] - at - 1
                if not -(2**15) <= off < 2**15:
                    raise AssemblerError(f"jump to {to!r} too far ({off} instructions)")
                code = code[:2] + struct.pack("<h", off) + code[4:]
            out.append(code)
            at += len(code) // 8
        return b"".join(out)
