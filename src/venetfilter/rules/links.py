"""The links of the current network namespace, as the default mode's table needs them: index,
name and interface group, from one RTM_GETLINK dump read with a plain netlink socket (pyroute2's
parsing of every attribute of every link takes a second for a few hundred links)."""

from __future__ import annotations

import errno
import socket
import struct
from typing import NamedTuple

__all__ = ["Link", "dump_links"]

NETLINK_ROUTE = 0
RTM_GETLINK = 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_IFNAME, IFLA_GROUP = 3, 27
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")


class Link(NamedTuple):
    ifindex: int
    name: str
    group: int


def _attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > end:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def dump_links() -> list[Link]:
    """Every link of the current namespace (OSError when netlink fails)."""
    links: list[Link] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        request = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(_HEADER.pack(_HEADER.size + len(request), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request)
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size or offset + length > len(data):
                    raise OSError("a truncated netlink message in the link dump")
                if kind == NLMSG_DONE:
                    return links
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                    raise OSError(code, f"link dump: {errno.errorcode.get(code, code)}")
                body = offset + _HEADER.size
                if length >= _HEADER.size + _IFINFO.size:
                    index = _IFINFO.unpack_from(data, body)[2]
                    attrs = _attributes(data, body + _IFINFO.size, offset + length)
                    name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
                    group = struct.unpack("=I", attrs[IFLA_GROUP])[0] if len(attrs.get(IFLA_GROUP, b"")) == 4 else 0
                    links.append(Link(index, name, group))
                offset += (length + 3) & ~3
