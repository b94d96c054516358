"""The type hints hold (mypy), and the stubs of the compiled modules match them (stubtest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ["venetfilter.core._core", "venetfilter.worker._native", "venetfilter.worker._queue_flags"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy():
    result = run("mypy", "--ignore-missing-imports", "src/venetfilter")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_match_the_compiled_modules():
    result = run("mypy.stubtest", "--allowlist", "tests/stubtest-allowlist.txt", *COMPILED)
    assert result.returncode == 0, result.stdout + result.stderr
