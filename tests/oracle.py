"""venet's rules written again from the spec with `ipaddress` objects and Python sets.

The tests' oracle, and the benchmarks' baseline: what a user would write first."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from venetfilter import Ours, Verdict


class NaiveClassifier:
    """venet's rules with ipaddress objects: correct, readable and slow."""

    def __init__(self) -> None:
        self.links: dict[int, str] = {}
        self.addresses: dict[str, set[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {}

    def set_container(self, ctid: str, ifindex: int, addresses: Iterable[str]) -> None:
        self.links[ifindex] = ctid
        self.addresses[ctid] = {ipaddress.ip_address(a) for a in addresses}

    def classify(self, packet: bytes, indev: int, outdev: int, ours: int = 0) -> Verdict:
        leaving, entering = self.links.get(indev), self.links.get(outdev)
        if (ours & Ours.IN and leaving is None) or (ours & Ours.OUT and entering is None):
            return Verdict.DROP_UNKNOWN_LINK
        if leaving is None and entering is None:
            return Verdict.ACCEPT
        if not packet:
            return Verdict.DROP_MALFORMED
        version = packet[0] >> 4
        if version == 4:
            ihl = (packet[0] & 15) * 4
            if len(packet) < 20 or ihl < 20 or ihl > len(packet) or int.from_bytes(packet[2:4], "big") < ihl:
                return Verdict.DROP_MALFORMED
            source, destination = ipaddress.IPv4Address(packet[12:16]), ipaddress.IPv4Address(packet[16:20])
        elif version == 6:
            if len(packet) < 40:
                return Verdict.DROP_MALFORMED
            source, destination = ipaddress.IPv6Address(packet[8:24]), ipaddress.IPv6Address(packet[24:40])
        else:
            return Verdict.DROP_NOT_IP
        if destination.is_multicast:
            return Verdict.DROP_MULTICAST
        if leaving is not None and source not in self.addresses[leaving]:
            return Verdict.DROP_SOURCE
        if entering is not None and destination not in self.addresses[entering]:
            return Verdict.DROP_DESTINATION
        return Verdict.ACCEPT
