"""Log lines that journald files under their syslog priority: sd-daemon(3)'s ``<N>`` prefixes.

journald reads a ``<N>`` at the start of each line a service writes to its stream (SyslogLevelPrefix=,
on by default), so ``journalctl -p warning`` finds the warnings. The prefix is used only when stderr
is that stream (``$JOURNAL_STREAM`` names its device and inode) or when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

__all__ = ["JOURNAL_STREAM_ENV", "JournalFormatter", "stream_is_journal", "syslog_priority"]

JOURNAL_STREAM_ENV = "JOURNAL_STREAM"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Prefixes every line of a record (a traceback's too) with its ``<priority>``."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stream_is_journal(fd: int = 2, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `fd` is the journal stream systemd connected (``$JOURNAL_STREAM`` = DEVICE:INODE)."""
    value = (os.environ if environ is None else environ).get(JOURNAL_STREAM_ENV, "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)
