"""venetfilter: OpenVZ venet-style network isolation for containers on a stock Linux kernel.

Data flows one way: `config` (vzctl semantics, OpenVZ files, the runtime records) -> `core` (the
address table and the per-packet verdict) -> `rules` (the kernel table: a netdev chain per
container link, or the queue mode's inet table) and `worker` (the reasons of what the kernel
refuses, or every verdict in the queue mode). `host` sets up links, routes and neighbour proxies with
pyroute2; `lifecycle.Node` owns each container's start, stop and address changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .core import IMPLEMENTATION, AddressTable, Container, Ours, Verdict
from .errors import (
    AddressInUseError,
    InvalidAddressError,
    InvalidContainerError,
    LinkInUseError,
    UnknownContainerError,
    VenetfilterError,
)

__all__ = [
    "IMPLEMENTATION",
    "AddressInUseError",
    "AddressTable",
    "Container",
    "InvalidAddressError",
    "InvalidContainerError",
    "LinkInUseError",
    "Node",
    "Ours",
    "UnknownContainerError",
    "Verdict",
    "VenetfilterError",
]

if TYPE_CHECKING:
    from .lifecycle import Node


def __getattr__(name: str) -> Any:
    """`Node` on first use: the lifecycle pulls in netlink and nftables, the verdict core does not."""
    if name == "Node":
        from .lifecycle import Node

        return Node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
