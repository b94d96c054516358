"""Network namespaces for the host layer: resolve NAME|PATH|PID, create, remove, act inside one.

`NetnsSpec` is what every host function takes: a name (``ip netns`` style, under /run/netns), an
absolute path to a namespace file, a process id, or None for the caller's own namespace. Netlink
sockets are opened inside the namespace by pyroute2 (``IPRoute(netns=...)``, never creating one
by accident); other work (sysctls) runs in a short-lived thread that ``setns()``-es into it, since
a thread's network namespace is its own.
"""

from __future__ import annotations

import os
import threading

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

from ..errors import HostNetworkError, NetnsExistsError
from ..netns import NETNS_DIR, NetnsNotFoundError, netns_path, run_in_netns

__all__ = [
    "NetnsSpec",
    "create_netns",
    "describe_netns",
    "netns_exists",
    "netns_file",
    "open_iproute",
    "remove_netns",
    "run_in_netns",
    "same_netns",
]

NetnsSpec = str | int | os.PathLike[str] | None
"""A network namespace: NAME, absolute PATH, PID, or None for the current one."""



def netns_file(netns: NetnsSpec) -> str | None:
    """The namespace file of `netns` (None for the current namespace); `NetnsNotFoundError` if missing."""
    if netns is None:
        return None
    return netns_path(os.fspath(netns) if isinstance(netns, os.PathLike) else netns)


def netns_exists(netns: NetnsSpec) -> bool:
    """True when `netns` names an existing namespace (None: always)."""
    try:
        netns_file(netns)
    except NetnsNotFoundError:
        return False
    return True


def describe_netns(netns: NetnsSpec) -> str:
    """A short human name: ``netns NAME`` or ``the current netns``."""
    return "the current netns" if netns is None else f"netns {os.fspath(netns) if isinstance(netns, os.PathLike) else netns}"


def _identity(path: str | None) -> tuple[int, int]:
    st = os.stat(path if path is not None else f"/proc/{threading.get_native_id()}/ns/net")
    return st.st_dev, st.st_ino


def same_netns(a: NetnsSpec, b: NetnsSpec) -> bool:
    """True when `a` and `b` are the same namespace (compared by device and inode)."""
    return _identity(netns_file(a)) == _identity(netns_file(b))


def open_iproute(netns: NetnsSpec) -> IPRoute:
    """An `IPRoute` bound to `netns`; use it as a context manager so that it is closed."""
    path = netns_file(netns)
    if path is None:
        return IPRoute()
    return IPRoute(netns=path, flags=0)  # flags=0: never create a namespace that is missing


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise HostNetworkError(f"invalid network namespace name {name!r}")
    return name


def create_netns(name: str) -> str:
    """Create the named namespace (as ``ip netns add``); returns its path. `NetnsExistsError` if it exists."""
    _check_name(name)
    path = os.path.join(NETNS_DIR, name)
    if os.path.lexists(path):
        raise NetnsExistsError(name)
    try:
        pyroute2_netns.create(path)
    except OSError as exc:
        raise HostNetworkError(f"cannot create network namespace {name}: {exc.strerror or exc}") from exc
    return path


def remove_netns(name: str) -> None:
    """Remove the named namespace (as ``ip netns delete``); a missing one is not an error."""
    path = os.path.join(NETNS_DIR, _check_name(name))
    if not os.path.lexists(path):
        return
    try:
        pyroute2_netns.remove(path)
    except OSError as exc:
        raise HostNetworkError(f"cannot remove network namespace {name}: {exc.strerror or exc}") from exc
