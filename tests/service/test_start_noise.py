"""A real start under a worker logging for journald: the node's own MLD/ND on the new link is debug,
a spoofed packet is a warning (``journalctl -p warning`` shows it and only it)."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.e2e.conftest import OUTSIDE_V4, build, ip, teardown
from tests.e2e.traffic import udp_probe

pytestmark = pytest.mark.netns

SPOOFED = "192.0.2.77"


def wait_for(path, pattern: str, timeout: float = 8.0) -> str:
    """The log at `path` once a line matches `pattern`."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")
        if re.search(pattern, text, re.MULTILINE):
            return text
        assert time.monotonic() < deadline, f"no line matches {pattern!r} in:\n{text}"
        time.sleep(0.1)


def test_start_noise_is_debug_and_spoofing_a_warning(make_netns, tmp_path, monkeypatch) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces, nftables)")
    stack = build(make_netns, tmp_path, worker=False)
    try:
        log = stack.run_dir / "worker.log"
        log.touch()
        st = log.stat()  # stderr is "the journal stream": the worker's auto format prefixes priorities
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        stack.start_worker("-v", "-v")
        node = stack.node()
        node.set("103", ["192.0.2.3", "2001:db8:3::3"], save=True)
        stack.containers["103"] = make_netns("vfc")
        node.start("103", netns=stack.containers["103"])
        # the node's MLD report on the new link (from ::, it has no link-local address) is debug
        wait_for(log, r"^<7>drop DROP_MULTICAST container=103 :: -> ff02::16 indev=\d+ outdev=[1-9]")
        c101 = stack.containers["101"]
        ip("-n", c101, "addr", "add", f"{SPOOFED}/32", "dev", "venet0")
        assert not udp_probe(c101, SPOOFED, OUTSIDE_V4, 9, timeout=0.3)
        text = wait_for(log, rf"^<4>drop DROP_SOURCE container=101 {SPOOFED} -> {OUTSIDE_V4} ")
    finally:
        teardown(stack)
    lines = text.splitlines()
    assert all(line.startswith(("<2>", "<3>", "<4>", "<6>", "<7>")) for line in lines), text
    warnings = [line for line in lines if line[:3] in ("<2>", "<3>", "<4>")]
    assert warnings and all(f" {SPOOFED} -> " in line for line in warnings), text
    assert not [line for line in lines if line.startswith("<6>") and "ff02::" in line], text
