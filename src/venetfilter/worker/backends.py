"""The NFQUEUE backends the worker can run, behind one small interface."""

from __future__ import annotations

from typing import Literal, Protocol

from ..core import AddressTable
from .callback import DropHandler

__all__ = ["BACKENDS", "Backend", "BackendName", "default_backend", "open_backend"]

BackendName = Literal["native", "netfilterqueue"]
BACKENDS: tuple[BackendName, ...] = ("native", "netfilterqueue")


class Backend(Protocol):
    """One bound queue."""

    queue_num: int

    @property
    def packets(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def enobufs(self) -> int: ...
    def serve_once(self, timeout: float, wakeup_fd: int) -> bool:
        """Serve for up to `timeout` seconds; True when `wakeup_fd` became readable."""
        ...
    def close(self) -> None: ...


def native_available() -> bool:
    try:
        from . import _native  # noqa: F401
    except ImportError:
        return False
    from ..core import IMPLEMENTATION

    return IMPLEMENTATION == "cython"  # it classifies with the C table


def default_backend() -> BackendName:
    """native when it is built and the C core is in use, netfilterqueue otherwise."""
    return "native" if native_available() else "netfilterqueue"


def open_backend(name: BackendName, queue: int, table: AddressTable, on_drop: DropHandler, *, fail_open: bool) -> Backend:
    """Bind `queue` with the backend called `name`."""
    if name == "native":
        if not native_available():
            raise ValueError("the native backend needs the C extensions (built, and VENETFILTER_NO_EXTENSIONS unset)")
        from ._native import NativeQueue

        return NativeQueue(queue, table, on_drop, fail_open=fail_open)  # type: ignore[no-any-return]
    if name == "netfilterqueue":
        from .nfqueue import NfqueueBackend

        return NfqueueBackend(queue, table, on_drop, fail_open=fail_open)
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
