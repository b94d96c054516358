"""Log dropped packets without letting a flood of them flood the log.

A drop is a warning (an attack or a fault), but multicast is routine: a container's own is info,
and the node's own link control traffic on a container link (MLD reports and neighbour
discovery it sends when a link comes up: `start`) is debug. The verdicts stay as they are.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from ..core import Verdict

__all__ = ["DropLog", "describe_addresses", "drop_level", "is_link_control"]

logger = logging.getLogger("venetfilter.worker")


def describe_addresses(header: bytes) -> str:
    """'SRC -> DST' of an IP header, or what is wrong with it."""
    try:
        version = header[0] >> 4
        if version == 4 and len(header) >= 20:
            return f"{ipaddress.IPv4Address(header[12:16])} -> {ipaddress.IPv4Address(header[16:20])}"
        if version == 6 and len(header) >= 40:
            return f"{ipaddress.IPv6Address(header[8:24])} -> {ipaddress.IPv6Address(header[24:40])}"
        return f"{len(header)} bytes, IP version {version}"
    except IndexError:
        return "empty packet"


def is_link_control(header: bytes) -> bool:
    """Whether `header` (the first 40 bytes suffice) is link-scope control traffic a node's kernel
    sends: ICMPv6 (or a hop-by-hop header, as MLD has) from ``::`` or a link-local address to
    ff02::/16 with hop limit 1 (MLD) or 255 (neighbour discovery); IGMP to 224.0.0.0/24, TTL 1."""
    if len(header) >= 40 and header[0] >> 4 == 6:
        source = ipaddress.IPv6Address(header[8:24])
        return (header[6] in (0, 58) and header[7] in (1, 255) and header[24:26] == b"\xff\x02"
                and (source.is_unspecified or source.is_link_local))
    if len(header) >= 20 and header[0] >> 4 == 4:
        return header[9] == 2 and header[8] == 1 and header[16:19] == b"\xe0\x00\x00"
    return False


def drop_level(verdict: Verdict, header: bytes, outdev: int) -> int:
    """The logging level of a drop: debug for the node's own link control traffic entering a
    container link (it has an outgoing device), info for other multicast, warning for the rest."""
    if verdict is not Verdict.DROP_MULTICAST:
        return logging.WARNING
    return logging.DEBUG if outdev and is_link_control(header) else logging.INFO


class DropLog:
    """A token bucket: `rate` lines a second with bursts of `burst`; the rest are counted and summed up."""

    def __init__(self, rate: float = 10.0, burst: int = 20, clock=time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def drop(self, ctid: str | None, verdict: Verdict, header: bytes, indev: int, outdev: int) -> None:
        level = drop_level(verdict, header, outdev)
        if not logger.isEnabledFor(level):
            return  # a line nobody sees costs no token
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            self.suppressed += 1
            return
        self._tokens -= 1
        if self.suppressed:
            logger.warning("%d more drops not logged", self.suppressed)
            self.suppressed = 0
        logger.log(
            level, "drop %s container=%s %s indev=%d outdev=%d",
            verdict.name, ctid or "-", describe_addresses(header), indev, outdev,
        )
