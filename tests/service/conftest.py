"""Workers the unit can run, wherever this environment's own comes from (its venv's python may
resolve under /root, its checkout be under /tmp or /home, all hidden by the unit; or nothing be
hidden): made in a directory the unit does not hide. And directories under those the unit hides,
made by the test, for the refusals to be tested on every machine."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from venetfilter.worker import unit

CANDIDATES = ("/dev/shm", "/var/lib", "/srv", "/opt")  # outside /run (a run dir there is no RuntimeDirectory=)


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A fresh directory outside /run that the unit's sandbox does not hide, on an exec mount; removed afterwards."""
    for candidate in CANDIDATES:
        if (os.path.isdir(candidate) and os.access(candidate, os.W_OK) and unit.hidden_by(os.path.realpath(candidate)) is None
                and not os.statvfs(candidate).f_flag & os.ST_NOEXEC):
            made = Path(tempfile.mkdtemp(prefix="venetfilter-test-", dir=candidate))
            try:
                yield made
            finally:
                shutil.rmtree(made)
            return
    pytest.skip(f"none of {', '.join(CANDIDATES)} is a writable directory the unit does not hide")


@pytest.fixture
def hidden_dir() -> Iterator[Callable[[str], Path]]:
    """``hidden_dir(parent)``: a fresh directory under `parent` (one the unit hides: /tmp, /root, ...),
    skipping only when this machine has no such writable directory; all removed afterwards."""
    made: list[Path] = []

    def make(parent: str) -> Path:
        assert unit.hidden_by(parent) is not None, parent
        if not (os.path.isdir(parent) and not os.path.islink(parent) and os.access(parent, os.W_OK)):
            pytest.skip(f"{parent} is not a writable directory here: no file can be put under it")
        made.append(Path(tempfile.mkdtemp(prefix="venetfilter-test-", dir=parent)))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path)


@pytest.fixture
def make_worker(visible_dir: Path) -> Callable[[str, str], Path]:
    """``make_worker(name, first_line)``: an executable copy of this environment's venetfilter-worker
    in `visible_dir`, its #! line replaced by `first_line`."""

    def make(name: str, first_line: str) -> Path:
        body = unit.installed_worker().read_text().split("\n", 1)[1]
        path = visible_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{first_line}\n{body}")
        path.chmod(0o755)
        return path

    return make


@pytest.fixture
def runnable_worker(make_worker: Callable[[str, str], Path]) -> Path:
    """A venetfilter-worker whose interpreter is the system's python3 (not hidden by the unit)."""
    system_python = "/usr/bin/python3"
    if not os.path.exists(system_python) or unit.hidden_by(os.path.realpath(system_python)) is not None:
        pytest.skip(f"no {system_python} outside the directories the unit hides")
    return make_worker("bin/venetfilter-worker", f"#!{system_python}")
