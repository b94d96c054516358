"""Types shared by both implementations of the verdict core."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

__all__ = ["Container", "Verdict"]


class Verdict(IntEnum):
    """What venet does with one packet; the values are stable (the batch API writes them as bytes)."""

    ACCEPT = 0
    DROP_SOURCE = 1
    """Leaving a container with a source address that container does not own."""
    DROP_DESTINATION = 2
    """Entering a container for a destination address that container does not own."""
    DROP_MULTICAST = 3
    DROP_MALFORMED = 4
    DROP_NOT_IP = 5


class Container(NamedTuple):
    """One container as the table sees it: its link and its addresses (canonical text, sorted)."""

    ctid: str
    ifindex: int
    addresses: tuple[str, ...]
