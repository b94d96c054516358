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
import os
import socket
import struct
import sys

from pyroute2 import IPRoute

MARK = 0x76660000  # "vf" in the high half; the low half is the link's ifindex
TC_ACT_OK, TC_ACT_SHOT = 0, 2
XDP_DROP, XDP_PASS = 1, 2
BPF_PROG_TYPE_XDP = 6
BPF_F_INGRESS = 1
BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_REDIRECT = 1, 23
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD = 0, 1, 2, 4, 5
BPF_MAP_GET_NEXT_ID, BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 12, 14, 15
MAP_NAME = b"vf_counts"
BPF_PROG_TYPE_SCHED_CLS, BPF_MAP_TYPE_PERCPU_HASH, BPF_PSEUDO_MAP_FD = 3, 5, 1
KEY_V6, KEY_EGRESS = 1 << 31, 1 << 30  # map keys (20 bytes): u32 ifindex | these flags, the address
NR_BPF = 321  # x86_64
# struct __sk_buff offsets
SKB_MARK, SKB_PROTOCOL, SKB_IFINDEX, SKB_DATA, SKB_DATA_END = 8, 16, 40, 76, 80

# instruction classes and fields
LD, LDX, ST, STX, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
MEM, IMM = 0x60, 0x00
K, X = 0x00, 0x08
ADD, OR, AND, MOV = 0x00, 0x40, 0x50, 0xB0
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


def xdp_program(v4: list[str], v6: list[str]) -> bytes:
    """An XDP program for a link's node end (packets from the container, before any skb exists):
    XDP_PASS for the container's own source, not to a multicast group; XDP_DROP for the rest (a cost
    experiment: the refused copy to the worker is not built)."""
    a = Assembler()
    a.emit(insn(LDX | W | MEM, 2, 1, 0))  # xdp_md.data
    a.emit(insn(LDX | W | MEM, 3, 1, 4))  # xdp_md.data_end
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 20))
    a.jump_reg(JGT, 4, 3, "short")
    a.emit(insn(LDX | H | MEM, 5, 2, 12))
    a.jump(JNE, 5, socket.htons(0x0800), "v6")
    a.emit(insn(LDX | B | MEM, 5, 2, 14 + 16))
    a.emit(insn(ALU64 | AND | K, 5, 0, 0, 0xF0))
    a.jump(JEQ, 5, 0xE0, "drop")
    a.emit(insn(LDX | W | MEM, 5, 2, 14 + 12))
    for address in v4:
        a.jump(JEQ, 5, struct.unpack("<I", socket.inet_aton(address))[0], "pass", wide=False)
    a.emit(insn(JMP | JA), "drop")
    a.label("short")  # shorter than an IPv4 header: only an IPv6 one could not fit either
    a.emit(insn(JMP | JA), "drop")
    a.label("v6")
    a.jump(JNE, 5, socket.htons(0x86DD), "drop")
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 40))
    a.jump_reg(JGT, 4, 3, "drop")
    a.emit(insn(LDX | B | MEM, 5, 2, 14 + 24))
    a.jump(JEQ, 5, 0xFF, "drop")
    a.emit(insn(LDX | DW | MEM, 4, 2, 14 + 8))
    a.emit(insn(LDX | DW | MEM, 5, 2, 14 + 16))
    for n, address in enumerate(v6):
        high, low = struct.unpack("<QQ", socket.inet_pton(socket.AF_INET6, address))
        a.emit(ld_imm64(7, high))
        a.jump_reg(JNE, 4, 7, f"next{n}")
        a.emit(ld_imm64(7, low))
        a.jump_reg(JEQ, 5, 7, "pass")
        a.label(f"next{n}")
    a.label("drop")
    a.emit(insn(ALU64 | MOV | K, 0, 0, 0, XDP_DROP))
    a.emit(insn(JMP | EXIT))
    a.label("pass")
    a.emit(insn(ALU64 | MOV | K, 0, 0, 0, XDP_PASS))
    a.emit(insn(JMP | EXIT))
    return a.bytes()


def attach_lib(link: str, sink: str, addresses: list[str]) -> None:
    """The product's filter (venetfilter.rules.tc), counting per address, on both directions of LINK."""
    import ipaddress

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "src"))
    from venetfilter.rules.tc import attach as tc_attach
    from venetfilter.rules.tc import program as tc_program
    from venetfilter.rules.tc import syscall as tc_syscall

    owned = [ipaddress.ip_address(a) for a in addresses]
    counters = tc_syscall.create_map(tc_syscall.MAP_TYPE_PERCPU_ARRAY, 4, 8, len(owned), "vf_acc")
    with IPRoute() as ipr:
        index, sink_index = ipr.link_lookup(ifname=link)[0], ipr.link_lookup(ifname=sink)[0]
        tc_attach.ensure_clsact(ipr, index)
        for egress, parent in ((False, tc_attach.INGRESS), (True, tc_attach.EGRESS)):
            fd = tc_syscall.load_program(tc_program.link_filter(egress, index, sink_index, owned, counters), "vf")
            tc_attach.put(ipr, index, parent, fd, f"vf-{link}")


def attach_xdp(link: str, sink: str, v4: list[str], v6: list[str]) -> None:
    """XDP on LINK for what leaves the container, the tc egress filter above for what enters it."""
    with IPRoute() as ipr:
        index, sink_index = ipr.link_lookup(ifname=link)[0], ipr.link_lookup(ifname=sink)[0]
        fd = load(xdp_program(v4, v6), "vf_xdp", BPF_PROG_TYPE_XDP)
        ipr.link("set", index=index, xdp_fd=fd)
        ipr.tc("add", "clsact", index)
        out = load(program(False, index, sink_index, v4, v6), "vf_out")
        ipr.tc("add-filter", "bpf", index, ":1", fd=out, name=f"vf-{link}", parent="ffff:fff3", classid=1,
               direct_action=True)


def map_program(ingress: bool, map_fd: int, sink: int) -> bytes:
    """One filter for all links: looks (link, direction, address) up in a per-CPU hash map, counts
    a hit in the element's value and passes it; a miss is marked and redirected like above."""
    a = Assembler()
    a.emit(insn(ALU64 | MOV | X, 6, 1))
    a.emit(insn(LDX | W | MEM, 2, 6, SKB_DATA))
    a.emit(insn(LDX | W | MEM, 3, 6, SKB_DATA_END))
    a.emit(insn(LDX | W | MEM, 7, 6, SKB_IFINDEX))  # the link, for the key and the mark
    a.emit(insn(LDX | W | MEM, 5, 6, SKB_PROTOCOL))
    for off in (-20, -16, -12, -8):  # the address words of the key: zero unless set
        a.emit(insn(ST | W | MEM, 10, 0, off, 0))
    a.jump(JNE, 5, socket.htons(0x0800), "v6")
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 20))
    a.jump_reg(JGT, 4, 3, "refuse")
    if ingress:
        a.emit(insn(LDX | B | MEM, 5, 2, 14 + 16))
        a.emit(insn(ALU64 | AND | K, 5, 0, 0, 0xF0))
        a.jump(JEQ, 5, 0xE0, "refuse")
    a.emit(insn(LDX | W | MEM, 5, 2, 14 + (12 if ingress else 16)))
    a.emit(insn(STX | W | MEM, 10, 5, -20))
    a.emit(insn(ALU64 | MOV | X, 8, 7))
    a.emit(insn(JMP | JA), "lookup")
    a.label("v6")
    a.jump(JNE, 5, socket.htons(0x86DD), "refuse")
    a.emit(insn(ALU64 | MOV | X, 4, 2))
    a.emit(insn(ALU64 | ADD | K, 4, 0, 0, 14 + 40))
    a.jump_reg(JGT, 4, 3, "refuse")
    if ingress:
        a.emit(insn(LDX | B | MEM, 5, 2, 14 + 24))
        a.jump(JEQ, 5, 0xFF, "refuse")
    at = 14 + (8 if ingress else 24)
    for i in range(4):
        a.emit(insn(LDX | W | MEM, 5, 2, at + 4 * i))
        a.emit(insn(STX | W | MEM, 10, 5, -20 + 4 * i))
    a.emit(insn(ALU64 | MOV | X, 8, 7))
    a.emit(insn(ALU64 | OR | K, 8, 0, 0, KEY_V6))
    a.label("lookup")
    if not ingress:
        a.emit(insn(ALU64 | OR | K, 8, 0, 0, KEY_EGRESS))
    a.emit(insn(STX | W | MEM, 10, 8, -24))
    a.emit(ld_map_fd(1, map_fd))
    a.emit(insn(ALU64 | MOV | X, 2, 10))
    a.emit(insn(ALU64 | ADD | K, 2, 0, 0, -24))
    a.emit(insn(JMP | CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM))
    a.jump(JEQ, 0, 0, "refuse")
    a.emit(insn(LDX | DW | MEM, 1, 0, 0))
    a.emit(insn(ALU64 | ADD | K, 1, 0, 0, 1))
    a.emit(insn(STX | DW | MEM, 0, 1, 0))
    a.emit(insn(ALU64 | MOV | K, 0, 0, 0, TC_ACT_OK))
    a.emit(insn(JMP | EXIT))
    a.label("refuse")
    a.emit(insn(ALU64 | MOV | X, 1, 7))
    a.emit(insn(ALU64 | OR | K, 1, 0, 0, MARK | (0 if ingress else 0x8000)))
    a.emit(insn(STX | W | MEM, 6, 1, SKB_MARK))
    a.emit(insn(ALU64 | MOV | K, 1, 0, 0, sink))
    a.emit(insn(ALU64 | MOV | K, 2, 0, 0, BPF_F_INGRESS))
    a.emit(insn(JMP | CALL, 0, 0, 0, BPF_FUNC_REDIRECT))
    a.emit(insn(JMP | EXIT))
    return a.bytes()


def ld_map_fd(dst: int, fd: int) -> bytes:
    return insn(LD | DW | IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd) + insn(0)


def bpf(cmd: int, attr: bytes, out: int = 0) -> int:
    """bpf(2); with `out`, the u32 the kernel wrote at that offset of the attributes instead."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    result = libc.syscall(NR_BPF, cmd, buf, 128)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"bpf({cmd}): {os.strerror(errno)}")
    return struct.unpack_from("<I", buf.raw, out)[0] if out else result


def map_key(ifindex: int, address: str, ingress: bool) -> bytes:
    six = ":" in address
    raw = socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, address).ljust(16, b"\0")
    return struct.pack("<I", ifindex | (KEY_V6 if six else 0) | (0 if ingress else KEY_EGRESS)) + raw


def attach_map(links: dict[str, list[str]], sink: str) -> None:
    """One map and one program per direction for all LINKS (name: addresses), in this namespace."""
    ncpus = _possible_cpus()
    map_fd = bpf(BPF_MAP_CREATE, struct.pack("<IIIIIII16s", BPF_MAP_TYPE_PERCPU_HASH, 20, 8, 65536, 0, 0, 0,
                                             MAP_NAME))
    zero = ctypes.create_string_buffer(8 * ncpus)
    with IPRoute() as ipr:
        sink_index = ipr.link_lookup(ifname=sink)[0]
        programs = {ingress: load(map_program(ingress, map_fd, sink_index), f"vf_map_{int(ingress)}")
                    for ingress in (True, False)}
        for link, addresses in links.items():
            index = ipr.link_lookup(ifname=link)[0]
            for address in addresses:
                for ingress in (True, False):
                    key = ctypes.create_string_buffer(map_key(index, address, ingress), 20)
                    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(key),
                                                         ctypes.addressof(zero), 0))
            ipr.tc("add", "clsact", index)
            for ingress, parent in ((True, "ffff:fff2"), (False, "ffff:fff3")):
                ipr.tc("add-filter", "bpf", index, ":1", fd=programs[ingress], name="vf-map", parent=parent,
                       classid=1, direct_action=True)


def counts() -> dict[tuple[int, str, bool], int]:
    """The counts of every map named MAP_NAME: (ifindex, address, ingress) -> packets passed. Maps
    are found by id (bpf(2) walks them node-wide): no pinning, no file system to mount."""
    ncpus, found, next_id = _possible_cpus(), {}, 0
    while True:
        try:
            next_id = bpf(BPF_MAP_GET_NEXT_ID, struct.pack("<II", next_id, 0), out=4)
        except OSError:
            return found
        try:
            fd = bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("<I", next_id))
        except OSError:
            continue
        try:
            info = ctypes.create_string_buffer(88)
            bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, len(info), ctypes.addressof(info)))
            if info.raw[24:40].rstrip(b"\0") != MAP_NAME:
                continue
            key, value = ctypes.create_string_buffer(20), ctypes.create_string_buffer(8 * ncpus)
            previous = None
            while True:
                try:
                    bpf(BPF_MAP_GET_NEXT_KEY, struct.pack("<IIQQ", fd, 0, ctypes.addressof(previous) if previous
                                                          else 0, ctypes.addressof(key)))
                except OSError:
                    break
                bpf(BPF_MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(key),
                                                     ctypes.addressof(value), 0))
                flags = struct.unpack("<I", key.raw[:4])[0]
                raw = key.raw[4:20]
                address = (socket.inet_ntop(socket.AF_INET6, raw) if flags & KEY_V6
                           else socket.inet_ntoa(raw[:4]))
                found[(flags & 0xFFFFFF, address, not flags & KEY_EGRESS)] = sum(
                    struct.unpack(f"<{ncpus}Q", value.raw))
                previous = ctypes.create_string_buffer(key.raw, 20)
        finally:
            os.close(fd)


def _possible_cpus() -> int:
    """Per-CPU map values come one per possible CPU (/sys/devices/system/cpu/possible: "0-1")."""
    with open("/sys/devices/system/cpu/possible") as f:
        return max(int(part.split("-")[-1]) for part in f.read().strip().split(",")) + 1


def load(code: bytes, name: str, kind: int = BPF_PROG_TYPE_SCHED_CLS) -> int:
    """bpf(BPF_PROG_LOAD): the program's fd, or OSError with the verifier's log."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(code)
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16s", kind, len(code) // 8, ctypes.addressof(buf),
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
    if sys.argv[1] == "--counts":
        for (link, addr, ingress), packets in sorted(counts().items()):
            print(f"{link} {addr} {'in' if ingress else 'out'} {packets}")
    elif sys.argv[1] == "--lib":  # --lib LINK SINK V4 V6: venetfilter.rules.tc, with counters
        attach_lib(sys.argv[2], sys.argv[3], [sys.argv[4], sys.argv[5]])
    elif sys.argv[1] == "--xdp":  # --xdp LINK SINK V4 V6
        attach_xdp(sys.argv[2], sys.argv[3], [sys.argv[4]], [sys.argv[5]])
    elif sys.argv[1] == "--map":  # --map SINK LINK=V4,V6 ...
        attach_map({arg.split("=")[0]: arg.split("=")[1].split(",") for arg in sys.argv[3:]}, sys.argv[2])
    else:
        link_name, sink_name, address4, address6 = sys.argv[1:5]
        attach(link_name, sink_name, [address4], [address6])
