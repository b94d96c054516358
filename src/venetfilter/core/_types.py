"""Types shared by both implementations of the verdict core."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import NamedTuple

__all__ = ["Container", "Ours", "Verdict"]


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
    DROP_UNKNOWN_LINK = 6
    """On a link the caller says is a container link (`Ours`) that the table does not know: a
    container that is starting, stopping, or was never registered. Charged to no container."""


class Ours(IntFlag):
    """Which of a packet's devices the caller knows to be container links (the kernel rules matched
    them by name). Such a device must be in the table, or the packet is DROP_UNKNOWN_LINK; without
    the flag an unknown device is simply not a container's."""

    NONE = 0
    IN = 1
    """`indev` is a container link: the packet leaves a container."""
    OUT = 2
    """`outdev` is a container link: the packet enters a container."""
    BOTH = 3


class Container(NamedTuple):
    """One container as the table sees it: its link and its addresses (canonical text, sorted)."""

    ctid: str
    ifindex: int
    addresses: tuple[str, ...]
