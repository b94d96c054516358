"""The per-packet callback of the netfilterqueue backend: classify, give the verdict, count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..core import Ours, Verdict

__all__ = ["Classifier", "DropHandler", "VerdictCallback"]

logger = logging.getLogger("venetfilter.worker")


class NfqPacket(Protocol):
    """What we use of netfilterqueue.Packet."""

    indev: int
    outdev: int
    hook: int

    def get_payload(self) -> bytes: ...
    def accept(self) -> None: ...
    def drop(self) -> None: ...


class Classifier(Protocol):
    def classify(self, packet: bytes, indev: int, outdev: int, ours: int = 0) -> Verdict: ...


NF_INET_PRE_ROUTING = 0
NF_INET_POST_ROUTING = 4


def ours_at_hook(hook: int) -> Ours:
    """Which device the kernel rules matched by name: the incoming one before routing (the packet
    leaves a container), the outgoing one after it (the packet enters one)."""
    if hook == NF_INET_PRE_ROUTING:
        return Ours.IN
    if hook == NF_INET_POST_ROUTING:
        return Ours.OUT
    return Ours.NONE


DropHandler = Callable[[Verdict, bytes, int, int], None]
"""Called for each drop with (verdict, the packet's first bytes, indev, outdev)."""


class VerdictCallback:
    """Gives every packet a verdict, whatever happens: an error in classifying is a counted drop."""

    def __init__(self, table: Classifier, on_drop: DropHandler) -> None:
        self.table = table
        self.on_drop = on_drop
        self.packets = 0
        self.errors = 0

    def __call__(self, packet: NfqPacket) -> None:
        self.packets += 1
        header = b""
        try:
            header = packet.get_payload()
            verdict = self.table.classify(header, packet.indev, packet.outdev, ours_at_hook(packet.hook))
        except Exception:  # fail closed, and go on with the next packet
            self.errors += 1
            logger.exception("classifying a packet failed; dropped")
            verdict = Verdict.DROP_MALFORMED
        if verdict is Verdict.ACCEPT:
            packet.accept()
            return
        packet.drop()
        try:
            self.on_drop(verdict, header, packet.indev, packet.outdev)
        except Exception:
            self.errors += 1
            logger.exception("logging a drop failed")
