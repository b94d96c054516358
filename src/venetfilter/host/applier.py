"""`HostApplier`: the config layer's ``LiveApplier`` done with the host layer.

``ContainerManager.set`` calls ``apply(ctid, added, removed)`` before saving anything; this
changes the addresses inside the container, the host routes and the proxy entries at once (rolled
back on failure) and updates the container's record. A running container without a record (its
network not started by ``venetctl start``) is left to the `fallback` applier.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from .container import change_addresses
from .ipaddr import AddressLike
from .record import load_record, save_record

__all__ = ["HostApplier"]


class _Applier(Protocol):
    def apply(self, ctid: str, added: Any, removed: Any) -> None: ...


class HostApplier:
    """Applies runtime address changes to containers whose records are in `record_dir`."""

    def __init__(self, record_dir: str | os.PathLike[str], fallback: _Applier | None = None) -> None:
        self.record_dir = record_dir
        self.fallback = fallback

    def apply(self, ctid: str, added: Sequence[AddressLike], removed: Sequence[AddressLike]) -> None:
        """Remove `removed` and add `added` to running container `ctid` (all or nothing)."""
        network = load_record(self.record_dir, ctid)
        if network is None:
            if self.fallback is not None:
                self.fallback.apply(ctid, added, removed)
            return
        save_record(self.record_dir, change_addresses(network, added, removed))
