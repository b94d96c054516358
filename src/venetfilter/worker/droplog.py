"""Log dropped packets without letting a flood of them flood the log."""

from __future__ import annotations

import ipaddress
import logging
import time

from ..core import Verdict

__all__ = ["DropLog", "describe_addresses"]

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


class DropLog:
    """A token bucket: `rate` lines a second with bursts of `burst`; the rest are counted and summed up."""

    def __init__(self, rate: float = 10.0, burst: int = 20, clock=time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def drop(self, ctid: str | None, verdict: Verdict, header: bytes, indev: int, outdev: int) -> None:
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
        # multicast (a container's own MLD and neighbour discovery) is routine; the rest is an attack or a fault
        level = logging.INFO if verdict is Verdict.DROP_MULTICAST else logging.WARNING
        logger.log(
            level, "drop %s container=%s %s indev=%d outdev=%d",
            verdict.name, ctid or "-", describe_addresses(header), indev, outdev,
        )
