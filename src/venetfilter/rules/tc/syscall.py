"""bpf(2) through ctypes: load a program, make a map, read and write its elements.

Only the commands the tc layer needs. Every failure is an `OSError` with the errno and, for a
program the verifier refuses, the end of its log.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from functools import cache

__all__ = [
    "PROG_TYPE_SCHED_CLS",
    "MAP_TYPE_PERCPU_ARRAY",
    "load_program",
    "create_map",
    "update_percpu",
    "read_percpu",
    "possible_cpus",
    "program_id",
]

_NR_BPF = {"x86_64": 321, "aarch64": 280}
_MAP_CREATE, _MAP_LOOKUP_ELEM, _MAP_UPDATE_ELEM, _PROG_LOAD, _OBJ_GET_INFO_BY_FD = 0, 1, 2, 5, 15
_ATTR_SIZE = 128  # bytes of `union bpf_attr` we pass (zero-filled past what we set)
PROG_TYPE_SCHED_CLS = 3
MAP_TYPE_PERCPU_ARRAY = 6
_LOG_SIZE = 1 << 16


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: bytes) -> int:
    machine = platform.machine()
    if machine not in _NR_BPF:
        raise OSError(38, f"bpf(2) is not wired for {machine}")
    buf = ctypes.create_string_buffer(attr, _ATTR_SIZE)
    result = _libc().syscall(_NR_BPF[machine], cmd, buf, _ATTR_SIZE)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"bpf({cmd}): {os.strerror(errno)}")
    return int(result)


def load_program(code: bytes, name: str, prog_type: int = PROG_TYPE_SCHED_CLS) -> int:
    """The fd of `code` loaded as a program (license GPL); OSError with the end of the verifier's
    log if refused. Loaded without a log first: the log of a valid program with many branches can
    overflow any buffer (ENOSPC) although the verifier accepts it; the log is asked for only to
    explain a refusal."""
    if not code or len(code) % 8:
        raise ValueError("a program is a non-empty sequence of 8-byte instructions")
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(_LOG_SIZE)

    def attempt(with_log: bool) -> int:
        attr = struct.pack("<IIQQIIQII16s", prog_type, len(code) // 8, ctypes.addressof(insns),
                           ctypes.addressof(license_), 1 if with_log else 0, _LOG_SIZE if with_log else 0,
                           ctypes.addressof(log) if with_log else 0, 0, 0, name.encode()[:15])
        return _bpf(_PROG_LOAD, attr)

    try:
        return attempt(False)
    except OSError as first:
        try:
            attempt(True)  # only for the log: it failed once, it fails again
        except OSError:
            pass
        text = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(first.errno, f"the kernel refused program {name!r}: {' | '.join(text[-6:])}") from None


def create_map(map_type: int, key_size: int, value_size: int, entries: int, name: str) -> int:
    """The fd of a new map."""
    attr = struct.pack("<IIIIIII16s", map_type, key_size, value_size, entries, 0, 0, 0, name.encode()[:15])
    return _bpf(_MAP_CREATE, attr)


@cache
def possible_cpus() -> int:
    """How many values a per-CPU map element has: one per possible CPU."""
    with open("/sys/devices/system/cpu/possible") as f:
        return max(int(part.split("-")[-1]) for part in f.read().strip().split(",")) + 1


def update_percpu(map_fd: int, index: int, value: int) -> None:
    """Set slot `index` of a per-CPU array of u64 to `value` (on CPU 0, zero on the others)."""
    key = ctypes.create_string_buffer(struct.pack("<I", index), 4)
    values = ctypes.create_string_buffer(struct.pack(f"<{possible_cpus()}Q", value, *[0] * (possible_cpus() - 1)))
    _bpf(_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(key), ctypes.addressof(values), 0))


def read_percpu(map_fd: int, index: int) -> int:
    """Slot `index` of a per-CPU array of u64, summed over the CPUs."""
    key = ctypes.create_string_buffer(struct.pack("<I", index), 4)
    values = ctypes.create_string_buffer(8 * possible_cpus())
    _bpf(_MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(key), ctypes.addressof(values), 0))
    return sum(struct.unpack(f"<{possible_cpus()}Q", values.raw))


def program_id(prog_fd: int) -> int:
    """The kernel's id of a loaded program (what a tc filter listing names it by)."""
    info = ctypes.create_string_buffer(256)
    _bpf(_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", prog_fd, len(info), ctypes.addressof(info)))
    return int(struct.unpack_from("<I", info.raw, 4)[0])
