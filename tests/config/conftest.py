"""Fixtures for the configuration tests: private directories, a manager, the CLI in-process."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_runner import Result, in_process
from venetfilter.config import ContainerManager

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
VENETCTL = Path(sys.executable).parent / "venetctl"


@dataclass
class Dirs:
    conf: Path
    run: Path

    def options(self) -> list[str]:
        """The CLI options that point at these directories."""
        return ["--conf-dir", str(self.conf), "--run-dir", str(self.run)]


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    """A configuration and a runtime directory, not created yet."""
    return Dirs(tmp_path / "conf", tmp_path / "run")


@pytest.fixture
def manager(dirs: Dirs) -> ContainerManager:
    """A manager over `dirs` that does not wait for a worker."""
    return ContainerManager(dirs.conf, dirs.run, notify_timeout=0.5)


@pytest.fixture
def cli(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("set", "101", ...)`` runs ``venetctl`` in-process on `dirs` and returns code, stdout, stderr."""
    return in_process(capsys, dirs.options())


def subprocess_env() -> dict[str, str]:
    """The environment for venetctl subprocesses (the source tree importable, no defaults)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env
