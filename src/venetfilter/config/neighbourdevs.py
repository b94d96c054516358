"""vzctl's ``NEIGHBOUR_DEVS``: which host interfaces answer ARP/NDP for a container's addresses.

``all`` (every uplink: up, not loopback, NOARP, a bonding slave or a container link, with an
address that is not link-local), ``detect`` (the interface of the host's route to the address) or
a list of names (``list:eth0 eth1``, or ``eth0,eth1``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidOptionError

__all__ = ["NeighbourDevs", "format_neighbour_devs", "parse_neighbour_devs"]

NeighbourDevs = str | tuple[str, ...]
"""``"all"``, ``"detect"``, or a tuple of interface names."""


def parse_neighbour_devs(value: str | Sequence[str]) -> NeighbourDevs:
    """``all``, ``detect``, ``list:eth0 eth1`` (or ``eth0,eth1``, or a sequence of names);
    `InvalidOptionError` (exit 21) for anything else."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("all", "detect"):
            return text
        text = text.removeprefix("list:")
        names = tuple(n for n in text.replace(",", " ").split() if n)
    else:
        names = tuple(value)
    if not names or any(not n or "/" in n or len(n) > 15 or n in ("all", "detect") or not n.isprintable()
                        for n in names):
        raise InvalidOptionError(f"invalid neighbour devices {value!r}: give all, detect or list:IFNAME...")
    return names


def format_neighbour_devs(devs: NeighbourDevs) -> str:
    """The text `parse_neighbour_devs` reads back."""
    return devs if isinstance(devs, str) else "list:" + " ".join(devs)
