"""The kernel's own per-queue counters, from /proc/net/netfilter/nfnetlink_queue."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QueueStats", "read_queue_stats"]

PROC_FILE = "/proc/net/netfilter/nfnetlink_queue"


@dataclass(frozen=True)
class QueueStats:
    """One line of the proc file: a bound queue."""

    queue: int
    portid: int
    waiting: int
    copy_mode: int
    copy_range: int
    queue_dropped: int  # the queue was full
    user_dropped: int  # the netlink socket buffer was full (the reader saw ENOBUFS)
    id_sequence: int


def read_queue_stats(text: str | None = None) -> dict[int, QueueStats]:
    """Every bound queue of the current network namespace, by number; {} when none is bound."""
    if text is None:
        try:
            with open(PROC_FILE) as f:
                text = f.read()
        except FileNotFoundError:  # nfnetlink_queue not loaded yet: no queue bound
            return {}
    stats = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and all(f.isdigit() for f in fields[:8]):
            entry = QueueStats(*(int(f) for f in fields[:8]))
            stats[entry.queue] = entry
    return stats
