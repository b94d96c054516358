"""sd_notify(3) without libsystemd: one datagram to ``$NOTIFY_SOCKET`` (``Type=notify`` units).

The worker says ``READY=1`` once its queues are bound and its table is installed, ``STOPPING=1``
when it begins to stop, and ``STATUS=...`` lines for ``systemctl status``. Outside systemd (no
``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["NOTIFY_SOCKET_ENV", "notify", "socket_address"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def socket_address(value: str) -> str | bytes | None:
    """The address `value` (``$NOTIFY_SOCKET``) names: a path, or an abstract name (``@...``:
    a leading NUL byte); None for anything else (empty, relative, ``vsock:``)."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (``KEY=VALUE`` lines) to the service manager; True when it was sent.

    Never raises: a manager that went away must not stop the worker."""
    address = socket_address((os.environ if environ is None else environ).get(NOTIFY_SOCKET_ENV, ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
