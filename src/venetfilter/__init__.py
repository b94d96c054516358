"""venetfilter: OpenVZ venet-style network isolation for containers on a stock Linux kernel.

Data flows one way: `config` (vzctl semantics, OpenVZ files, runtime state) -> `core` (the address
table and the per-packet verdict) -> `worker` (NFQUEUE). `host` sets up links, routes and neighbour
proxies with pyroute2; `rules` installs the iptables/ip6tables rules.
"""

from __future__ import annotations

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
    "Ours",
    "UnknownContainerError",
    "Verdict",
    "VenetfilterError",
]
__version__ = "0.1.0"
