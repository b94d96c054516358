"""Log lines for journald: syslog priority prefixes, and the level of each kind of drop."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import pytest

from tests.packets import ipv4
from venetfilter.cli.worker import log_handler
from venetfilter.core import Verdict
from venetfilter.worker.droplog import DropLog, drop_level, is_link_control
from venetfilter.worker.journal import JournalFormatter, stream_is_journal, syslog_priority

def ipv6_header(src: bytes, dst: bytes, next_header: int, hop_limit: int) -> bytes:
    return bytes([0x60, 0, 0, 0, 0, 24, next_header, hop_limit]) + src + dst


LINK_LOCAL = bytes.fromhex("fe80000000000000000000fffe000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
GLOBAL = bytes.fromhex("20010db8000100000000000000000001")
MLD_FROM_NOTHING = ipv6_header(bytes(16), bytes.fromhex("ff020000000000000000000000000016"), 0, 1)
"""The IPv6 header of the MLDv2 report a node sends when a container link comes up (a real start's):
:: -> ff02::16, a hop-by-hop header next, hop limit 1."""


def record(level: int, message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("venetfilter.worker", level, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize("level, priority", [(logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                                             (logging.INFO, 6), (logging.DEBUG, 7), (logging.DEBUG - 5, 7)])
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority
    assert JournalFormatter("%(message)s").format(record(level, "drop x")) == f"<{priority}>drop x"


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        lines = JournalFormatter("%(message)s").format(record(logging.ERROR, "queue 0 failed", sys.exc_info()))
    assert len(lines.split("\n")) > 3 and all(line.startswith("<3>") for line in lines.split("\n"))


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream, open(tmp_path / "other", "w") as other:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stream_is_journal(stream.fileno(), env)
        assert not stream_is_journal(other.fileno(), env)
        for junk in ({}, {"JOURNAL_STREAM": ""}, {"JOURNAL_STREAM": "1:2:3"}, {"JOURNAL_STREAM": "a:b"}):
            assert not stream_is_journal(stream.fileno(), junk)


def test_log_format_option_picks_the_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # no file descriptor: auto is plain
    assert isinstance(log_handler("journal").formatter, JournalFormatter)
    for plain in ("plain", "auto"):
        text = log_handler(plain).format(record(logging.WARNING, "drop x"))
        assert text == "venetfilter-worker: WARNING drop x"


def test_node_link_control_is_recognised() -> None:
    assert is_link_control(MLD_FROM_NOTHING)
    assert is_link_control(ipv6_header(LINK_LOCAL, ALL_ROUTERS, 58, 255))  # router solicitation
    assert is_link_control(ipv4("0.0.0.0", "224.0.0.22", protocol=2, ttl=1))  # IGMPv3 report
    assert not is_link_control(ipv6_header(GLOBAL, ALL_ROUTERS, 58, 255))  # a global source
    assert not is_link_control(ipv6_header(LINK_LOCAL, ALL_ROUTERS, 17, 255))  # UDP
    assert not is_link_control(ipv6_header(LINK_LOCAL, ALL_ROUTERS, 58, 64))  # a hop limit ND never has
    assert not is_link_control(ipv6_header(LINK_LOCAL, bytes.fromhex("ff0e" + "00" * 13 + "01"), 58, 255))  # global scope
    assert not is_link_control(ipv4("0.0.0.0", "224.0.1.22", protocol=2, ttl=1))
    assert not is_link_control(MLD_FROM_NOTHING[:39]) and not is_link_control(b"")


def test_drop_levels() -> None:
    assert drop_level(Verdict.DROP_MULTICAST, MLD_FROM_NOTHING, outdev=5) == logging.DEBUG  # the node, entering
    assert drop_level(Verdict.DROP_MULTICAST, MLD_FROM_NOTHING, outdev=0) == logging.INFO  # the container's own
    assert drop_level(Verdict.DROP_MULTICAST, ipv4("192.0.2.1", "239.1.1.1", protocol=17), outdev=0) == logging.INFO
    assert drop_level(Verdict.DROP_SOURCE, MLD_FROM_NOTHING, outdev=5) == logging.WARNING
    assert drop_level(Verdict.DROP_DESTINATION, ipv4("198.51.100.2", "192.0.2.9"), outdev=5) == logging.WARNING


def test_drops_below_the_level_cost_no_token(caplog: pytest.LogCaptureFixture) -> None:
    """A burst of the node's MLD at the default level must not silence the next spoofed drop."""
    log = DropLog(rate=1, burst=2, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, "venetfilter.worker"):
        for _ in range(50):
            log.drop("101", Verdict.DROP_MULTICAST, MLD_FROM_NOTHING, 5, 5)
        log.drop("101", Verdict.DROP_SOURCE, ipv4("192.0.2.7", "198.51.100.1"), 5, 0)
    assert [r.getMessage() for r in caplog.records] == ["drop DROP_SOURCE container=101 192.0.2.7 -> 198.51.100.1 indev=5 outdev=0"]
    assert log.suppressed == 0
