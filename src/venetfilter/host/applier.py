"""`HostApplier`: the config layer's ``LiveApplier`` done with the host layer.

``ContainerManager.set`` calls ``apply(ctid, added, removed)`` before saving anything; this
changes the addresses inside the container, the host routes and the proxy entries at once (rolled
back on failure) and updates the container's record. A running container without a record (its
network not started by ``venetctl start``) has nothing on the host to change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .container import change_addresses
from .ipaddr import AddressLike
from .record import load_record, save_record

__all__ = ["HostApplier"]


class HostApplier:
    """Applies runtime address changes to containers whose records are in `record_dir`."""

    def __init__(self, record_dir: str | os.PathLike[str]) -> None:
        self.record_dir = record_dir

    def apply(self, ctid: str, added: Sequence[AddressLike], removed: Sequence[AddressLike]) -> None:
        """Remove `removed` and add `added` to running container `ctid` (all or nothing)."""
        network = load_record(self.record_dir, ctid)
        if network is None:
            return
        save_record(self.record_dir, change_addresses(network, added, removed))
