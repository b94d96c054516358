"""Layout experiments below netfilter, for bench/e2e.py's x-tc-ebpf, x-tc-lib, x-tc-map and x-xdp.

x-tc-ebpf and x-tc-lib attach the product's per-link filter (`venetfilter.rules.tc`: compares of
the container's addresses; refused packets marked with their link and redirected to the ingress of
a sink link, where a netdev chain copies them to the worker and drops them), without and with its
per-address counts. The two other designs are built here on the same assembler, to be measured
against it:

- x-tc-map: one program for all links that looks (ifindex, direction, address) up in a per-CPU
  hash map whose values count the packets passed (found again by id: no bpffs pinning);
- x-xdp: an XDP program with the same compares on the node end of each link (refused packets are
  XDP_DROPped, no copy: a cost experiment), and the tc egress filter.

    ip netns exec NODE python bench/tc_ebpf.py --lib|--plain|--xdp LINK SINK V4 V6
    ip netns exec NODE python bench/tc_ebpf.py --map SINK LINK=V4,V6 ...
    python bench/tc_ebpf.py --counts        # the x-tc-map counts, node-wide

Not part of the product.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import sys
from pathlib import Path

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from venetfilter.rules.tc import attach as tc  # noqa: E402
from venetfilter.rules.tc import syscall  # noqa: E402
from venetfilter.rules.tc.asm import (  # noqa: E402
    DW, FP, JEQ, JGT, JNE, R0, R1, R2, R3, R4, R5, R6, R7, R8, W, Assembler)
from venetfilter.rules.tc.asm import B as BYTE  # noqa: E402
from venetfilter.rules.tc.asm import H as HALF  # noqa: E402
from venetfilter.rules.tc.program import EGRESS_MARK, TC_ACT_OK, link_filter  # noqa: E402

XDP_DROP, XDP_PASS = 1, 2
PROG_TYPE_XDP = 6
MAP_TYPE_PERCPU_HASH = 5
FUNC_MAP_LOOKUP_ELEM, FUNC_REDIRECT = 1, 23
F_INGRESS = 1
SKB_MARK, SKB_PROTOCOL, SKB_IFINDEX, SKB_DATA, SKB_DATA_END = 8, 16, 40, 76, 80
KEY_V6, KEY_EGRESS = 1 << 31, 1 << 30  # x-tc-map keys (20 bytes): u32 ifindex | these flags, the address
MAP_NAME = b"vf_counts"
MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_GET_NEXT_KEY = 1, 2, 4
MAP_GET_NEXT_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD = 12, 14, 15
NR_BPF = 321  # x86_64


def attach_filter(link: str, sink: str, addresses: list[str], count: bool) -> None:
    """The product's filter on both directions of LINK (x-tc-lib with counts, x-tc-ebpf without)."""
    owned = [ipaddress.ip_address(a) for a in addresses]
    counters = syscall.create_map(syscall.MAP_TYPE_PERCPU_ARRAY, 4, 8, len(owned), "vf_acc") if count else None
    with IPRoute() as ipr:
        index, sink_index = ipr.link_lookup(ifname=link)[0], ipr.link_lookup(ifname=sink)[0]
        tc.put_link_filters(ipr, index, sink_index, owned, counters, f"vf-{link}")


# -- x-xdp -----------------------------------------------------------------------------------------


def xdp_program(addresses: list[str]) -> bytes:
    """XDP_PASS for the container's own source, not to a multicast group; XDP_DROP for the rest."""
    a = Assembler()
    a.load(W, R2, R1, 0)  # xdp_md.data
    a.load(W, R3, R1, 4)  # xdp_md.data_end
    a.mov(R4, R2)
    a.add_imm(R4, 14 + 20)
    a.jump_if_reg(JGT, R4, R3, "drop")
    a.load(HALF, R5, R2, 12)
    a.jump_if(JNE, R5, socket.htons(0x0800), "v6")
    a.load(BYTE, R5, R2, 14 + 16)
    a.and_imm(R5, 0xF0)
    a.jump_if(JEQ, R5, 0xE0, "drop")
    a.load(W, R5, R2, 14 + 12)
    for address in addresses:
        if ":" not in address:
            a.jump_if(JEQ, R5, struct.unpack("<I", socket.inet_aton(address))[0], "pass", wide=False)
    a.jump("drop")
    a.label("v6")
    a.jump_if(JNE, R5, socket.htons(0x86DD), "drop")
    a.mov(R4, R2)
    a.add_imm(R4, 14 + 40)
    a.jump_if_reg(JGT, R4, R3, "drop")
    a.load(BYTE, R5, R2, 14 + 24)
    a.jump_if(JEQ, R5, 0xFF, "drop")
    a.load(DW, R4, R2, 14 + 8)
    a.load(DW, R5, R2, 14 + 16)
    for n, address in enumerate(a for a in addresses if ":" in a):
        high, low = struct.unpack("<QQ", socket.inet_pton(socket.AF_INET6, address))
        a.load_imm64(R7, high)
        a.jump_if_reg(JNE, R4, R7, f"next{n}")
        a.load_imm64(R7, low)
        a.jump_if_reg(JEQ, R5, R7, "pass")
        a.label(f"next{n}")
    a.label("drop")
    a.mov_imm(R0, XDP_DROP)
    a.exit()
    a.label("pass")
    a.mov_imm(R0, XDP_PASS)
    a.exit()
    return a.code()


def attach_xdp(link: str, sink: str, addresses: list[str]) -> None:
    """XDP on LINK for what leaves the container, the product's tc egress filter for what enters it."""
    with IPRoute() as ipr:
        index, sink_index = ipr.link_lookup(ifname=link)[0], ipr.link_lookup(ifname=sink)[0]
        ipr.link("set", index=index, xdp_fd=syscall.load_program(xdp_program(addresses), "vf_xdp", PROG_TYPE_XDP))
        tc.ensure_clsact(ipr, index)
        owned = [ipaddress.ip_address(a) for a in addresses]
        tc.put(ipr, index, tc.EGRESS, syscall.load_program(link_filter(True, index, sink_index, owned), "vf_out"),
               f"vf-{link}")


# -- x-tc-map --------------------------------------------------------------------------------------


def map_program(egress: bool, map_fd: int, sink: int) -> bytes:
    """One filter for all links: (link, direction, address) looked up in a per-CPU hash map; a hit
    counts in the element's value and passes, a miss is marked and redirected like the product's."""
    a = Assembler()
    a.mov(R6, R1)
    a.load(W, R2, R6, SKB_DATA)
    a.load(W, R3, R6, SKB_DATA_END)
    a.load(W, R7, R6, SKB_IFINDEX)  # the link, for the key and the mark
    a.load(W, R5, R6, SKB_PROTOCOL)
    for off in (-20, -16, -12, -8):  # the address words of the key: zero unless set
        a.store_imm(W, FP, off, 0)
    a.mov(R8, R7)
    a.jump_if(JNE, R5, socket.htons(0x0800), "v6")
    a.mov(R4, R2)
    a.add_imm(R4, 14 + 20)
    a.jump_if_reg(JGT, R4, R3, "refuse")
    if not egress:
        a.load(BYTE, R5, R2, 14 + 16)
        a.and_imm(R5, 0xF0)
        a.jump_if(JEQ, R5, 0xE0, "refuse")
    a.load(W, R5, R2, 14 + (16 if egress else 12))
    a.store(W, FP, -20, R5)
    a.jump("lookup")
    a.label("v6")
    a.jump_if(JNE, R5, socket.htons(0x86DD), "refuse")
    a.mov(R4, R2)
    a.add_imm(R4, 14 + 40)
    a.jump_if_reg(JGT, R4, R3, "refuse")
    if not egress:
        a.load(BYTE, R5, R2, 14 + 24)
        a.jump_if(JEQ, R5, 0xFF, "refuse")
    for i in range(4):
        a.load(W, R5, R2, 14 + (24 if egress else 8) + 4 * i)
        a.store(W, FP, -20 + 4 * i, R5)
    a.or_imm(R8, KEY_V6)
    a.label("lookup")
    if egress:
        a.or_imm(R8, KEY_EGRESS)
    a.store(W, FP, -24, R8)
    a.load_map(R1, map_fd)
    a.mov(R2, FP)
    a.add_imm(R2, -24)
    a.call(FUNC_MAP_LOOKUP_ELEM)
    a.jump_if(JEQ, R0, 0, "refuse")
    a.mov_imm(R1, 1)
    a.atomic_add(R0, 0, R1)
    a.mov_imm(R0, TC_ACT_OK)
    a.exit()
    a.label("refuse")
    if egress:
        a.or_imm(R7, EGRESS_MARK)
    a.store(W, R6, SKB_MARK, R7)
    a.mov_imm(R1, sink)
    a.mov_imm(R2, F_INGRESS)
    a.call(FUNC_REDIRECT)
    a.exit()
    return a.code()


def _bpf(cmd: int, attr: bytes, out: int = 0) -> int:
    """bpf(2); with `out`, the u32 the kernel wrote at that offset of the attributes instead."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    result = libc.syscall(NR_BPF, cmd, buf, 128)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"bpf({cmd}): {os.strerror(errno)}")
    return struct.unpack_from("<I", buf.raw, out)[0] if out else result


def map_key(ifindex: int, address: str, egress: bool) -> bytes:
    six = ":" in address
    raw = socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, address).ljust(16, b"\0")
    return struct.pack("<I", ifindex | (KEY_V6 if six else 0) | (KEY_EGRESS if egress else 0)) + raw


def attach_map(links: dict[str, list[str]], sink: str) -> None:
    """One map and one program per direction for all LINKS (name: addresses), in this namespace."""
    map_fd = syscall.create_map(MAP_TYPE_PERCPU_HASH, 20, 8, 65536, MAP_NAME.decode())
    zero = ctypes.create_string_buffer(8 * syscall.possible_cpus())
    with IPRoute() as ipr:
        sink_index = ipr.link_lookup(ifname=sink)[0]
        programs = {egress: syscall.load_program(map_program(egress, map_fd, sink_index), "vf_map")
                    for egress in (False, True)}
        for link, addresses in links.items():
            index = ipr.link_lookup(ifname=link)[0]
            for address in addresses:
                for egress in (False, True):
                    key = ctypes.create_string_buffer(map_key(index, address, egress), 20)
                    _bpf(MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(key),
                                                      ctypes.addressof(zero), 0))
            tc.ensure_clsact(ipr, index)
            for egress, parent in ((False, tc.INGRESS), (True, tc.EGRESS)):
                tc.put(ipr, index, parent, programs[egress], "vf-map")


def counts() -> dict[tuple[int, str, bool], int]:
    """The counts of every map named MAP_NAME, node-wide: (ifindex, address, egress) -> packets."""
    ncpus, found, next_id = syscall.possible_cpus(), {}, 0
    while True:
        try:
            next_id = _bpf(MAP_GET_NEXT_ID, struct.pack("<II", next_id, 0), out=4)
        except OSError:
            return found
        try:
            fd = _bpf(MAP_GET_FD_BY_ID, struct.pack("<I", next_id))
        except OSError:
            continue
        try:
            info = ctypes.create_string_buffer(88)
            _bpf(OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, len(info), ctypes.addressof(info)))
            if info.raw[24:40].rstrip(b"\0") != MAP_NAME:
                continue
            key, value = ctypes.create_string_buffer(20), ctypes.create_string_buffer(8 * ncpus)
            previous = None
            while True:
                try:
                    _bpf(MAP_GET_NEXT_KEY, struct.pack("<IIQQ", fd, 0, ctypes.addressof(previous) if previous
                                                       else 0, ctypes.addressof(key)))
                except OSError:
                    break
                _bpf(MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(key),
                                                  ctypes.addressof(value), 0))
                flags = struct.unpack("<I", key.raw[:4])[0]
                raw = key.raw[4:20]
                address = socket.inet_ntop(socket.AF_INET6, raw) if flags & KEY_V6 else socket.inet_ntoa(raw[:4])
                found[(flags & 0xFFFFFF, address, bool(flags & KEY_EGRESS))] = sum(
                    struct.unpack(f"<{ncpus}Q", value.raw))
                previous = ctypes.create_string_buffer(key.raw, 20)
        finally:
            os.close(fd)


def main(argv: list[str]) -> None:
    if argv[0] == "--counts":
        for (link, address, egress), packets in sorted(counts().items()):
            print(f"{link} {address} {'out' if egress else 'in'} {packets}")
    elif argv[0] == "--map":
        attach_map({arg.split("=")[0]: arg.split("=")[1].split(",") for arg in argv[2:]}, argv[1])
    elif argv[0] == "--xdp":
        attach_xdp(argv[1], argv[2], argv[3:5])
    else:
        attach_filter(argv[1], argv[2], argv[3:5], count=argv[0] == "--lib")


if __name__ == "__main__":
    main(sys.argv[1:])
