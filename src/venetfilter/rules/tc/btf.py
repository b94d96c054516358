"""Where the running kernel keeps a few fields of `struct sk_buff`, read from its BTF.

The link filter needs three fields `struct __sk_buff` does not show: `ip_summed` (a 2-bit
bitfield), `csum_start` and `network_header`. Their offsets depend on the kernel's build, so they
are looked up in /sys/kernel/btf/vmlinux (type information every kernel with CONFIG_DEBUG_INFO_BTF
exports): the format's header, then its types, walking into anonymous unions and structs.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import NamedTuple

__all__ = ["BtfError", "Field", "SkbLayout", "function_id", "skb_layout", "struct_fields"]

VMLINUX = "/sys/kernel/btf/vmlinux"
_MAGIC = 0xEB9F
_STRUCT, _UNION, _FUNC = 4, 5, 12
# bytes that follow a type's 12-byte header, by kind: fixed, or per `vlen` entry
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}
_PER_ENTRY = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}


class BtfError(OSError):
    """No BTF, or not the fields we need in it."""


class Field(NamedTuple):
    bit_offset: int
    bit_size: int  # 0: not a bitfield (the member's own type gives its size)


class SkbLayout(NamedTuple):
    """Byte offsets in `struct sk_buff` (the tc program's context pointer points at one)."""

    ip_summed_byte: int
    ip_summed_shift: int
    csum_start: int
    network_header: int
    cast_to_kern_ctx: int  # the BTF id of the kfunc that turns the program's context into the sk_buff


_Types = tuple[list[tuple[int, int, int, bytes]], bytes]


def _types(data: bytes) -> _Types:
    """[(name_off, info, size_or_type, the kind's own data)], index = type id - 1; and the strings."""
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != _MAGIC:
        raise BtfError(f"{VMLINUX} is not BTF")
    at, end = hdr_len + type_off, hdr_len + type_off + type_len
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    found = []
    while at < end:
        name_off, info, size = struct.unpack_from("<III", data, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        extra = _FIXED.get(kind, 0) + _PER_ENTRY.get(kind, 0) * vlen
        found.append((name_off, info, size, data[at + 12:at + 12 + extra]))
        at += 12 + extra
    return found, strings


def _name(strings: bytes, offset: int) -> str:
    return strings[offset:strings.index(b"\0", offset)].decode()


def function_id(data: bytes, name: str) -> int:
    """The BTF id of kernel function `name` (what a kfunc call names it by)."""
    return _function_id(_types(data), name)


def struct_fields(data: bytes, name: str) -> dict[str, Field]:
    """The members of struct `name`, members of its anonymous unions and structs included, with
    their offsets from the start of the struct."""
    return _struct_fields(_types(data), name)


def _function_id(parsed: _Types, name: str) -> int:
    types, strings = parsed
    for i, (off, info, _, _) in enumerate(types, 1):
        if (info >> 24) & 0x1F == _FUNC and off and _name(strings, off) == name:
            return i
    raise BtfError(f"no function {name} in the kernel's BTF")


def _struct_fields(parsed: _Types, name: str) -> dict[str, Field]:
    types, strings = parsed
    ids = [i for i, (off, info, _, _) in enumerate(types, 1)
           if (info >> 24) & 0x1F == _STRUCT and off and _name(strings, off) == name]
    if not ids:
        raise BtfError(f"no struct {name} in the kernel's BTF")
    fields: dict[str, Field] = {}

    def walk(type_id: int, base: int) -> None:
        _, info, _, extra = types[type_id - 1]
        flagged = bool(info >> 31)
        for n in range(info & 0xFFFF):
            member_name, member_type, offset = struct.unpack_from("<III", extra, 12 * n)
            bit_offset, bit_size = (offset & 0xFFFFFF, offset >> 24) if flagged else (offset, 0)
            if member_name:
                fields.setdefault(_name(strings, member_name), Field(base + bit_offset, bit_size))
            elif (types[member_type - 1][1] >> 24) & 0x1F in (_STRUCT, _UNION):
                walk(member_type, base + bit_offset)

    walk(ids[0], 0)
    return fields


@cache
def skb_layout() -> SkbLayout:
    """The running kernel's offsets of the sk_buff fields the link filter reads."""
    try:
        with open(VMLINUX, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BtfError(exc.errno, f"cannot read the kernel's BTF ({VMLINUX}): {exc.strerror}") from None
    parsed = _types(data)  # once: the whole of vmlinux's BTF, about 0.1 s
    fields = _struct_fields(parsed, "sk_buff")
    missing = {"ip_summed", "csum_start", "network_header"} - set(fields)
    if missing:
        raise BtfError(f"struct sk_buff has no {', '.join(sorted(missing))} in the kernel's BTF")
    summed = fields["ip_summed"]
    if summed.bit_size != 2 or summed.bit_offset % 8 > 6:
        raise BtfError(f"sk_buff.ip_summed is not the 2-bit field expected: {summed}")
    if fields["csum_start"].bit_offset % 8 or fields["network_header"].bit_offset % 8:
        raise BtfError("sk_buff.csum_start or network_header is not byte-aligned")
    return SkbLayout(summed.bit_offset // 8, summed.bit_offset % 8, fields["csum_start"].bit_offset // 8,
                     fields["network_header"].bit_offset // 8, _function_id(parsed, "bpf_cast_to_kern_ctx"))
