"""The sdist ships whole: built from this checkout, it holds every tracked file the project needs; pip
installs it into a fresh virtual environment (the build dependencies of pyproject's build-system
from PyPI, the Cython extensions compiled), the compiled modules import from there, and a part of
the tests shipped in the sdist passes from the unpacked sdist against the installed package.

Slow (about a minute on two cores, most of it pip and the C compiler): ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from venetfilter import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NAME = f"venetfilter-{__version__}"

# Every tracked file under these goes into the sdist, and these files at the top.
SHIPPED_DIRS = ("src", "tests", "bench", "contrib", "docs", "scripts")
SHIPPED_FILES = ("LICENSE", "README.md", "run.sh", "pyproject.toml", "setup.py", "MANIFEST.in")

COMPILED = ("venetfilter.core._core", "venetfilter.worker._native", "venetfilter.worker._queue_flags")

# The shipped tests run against the installed package: the verdict core (both implementations, the
# compiled one must be there) and the configuration and CLI tests. Left out: those that start
# subprocesses with PYTHONPATH=src, which would import the unpacked sources instead of the install.
SHIPPED_TESTS = ["tests/test_core_properties.py", "tests/test_core_classify.py", "tests/config"]
SHIPPED_TESTS_LEFT_OUT = [
    "--ignore=tests/config/test_concurrency.py",
    "--ignore=tests/config/test_crash.py",
    "-k", "not as_a_process and not read_only_conf_dir",
]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `command` with an environment that knows nothing of this checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    p = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{command} exited {p.returncode}:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    return p


def tracked_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (run from the repository, not from an unpacked sdist)")
    p = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    return [f for f in p.stdout.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from a copy of the checkout (its files, not what .gitignore leaves out), the way
    ``python -m build --sdist --no-isolation`` builds it."""
    tree = tmp_path_factory.mktemp("checkout")
    for name in tracked_files():
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
        target.chmod((ROOT / name).stat().st_mode & 0o777)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"], tree)
    (archive,) = dist.glob("*.tar.gz")
    assert archive.name == f"{NAME}.tar.gz"
    return archive


@pytest.fixture(scope="module")
def installed(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the sdist installed by pip (build isolation: the build-system requirements
    come from the index), and pytest and hypothesis at this environment's versions for its tests."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([sys.executable, "-m", "venv", str(venv)], venv.parent)
    python = venv / "bin" / "python"
    test_deps = [f"{name}=={importlib.metadata.version(name)}" for name in ("pytest", "hypothesis")]
    run([str(python), "-m", "pip", "install", "-q", str(sdist), *test_deps], venv.parent, timeout=900)
    return venv


def test_the_sdist_holds_the_whole_project(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = {m.name.removeprefix(f"{NAME}/") for m in tar.getmembers() if m.isfile()}
        pkg_info = tar.extractfile(f"{NAME}/PKG-INFO").read().decode()  # type: ignore[union-attr]
    expected = {f for f in tracked_files() if f.split("/")[0] in SHIPPED_DIRS} | set(SHIPPED_FILES)
    assert expected - members == set()
    for wanted in ("LICENSE", "docs/json.md", "contrib/venetctl.8", "contrib/venetctl.bash-completion",
                   "src/venetfilter/core/_core.pyx", "src/venetfilter/core/_core.pxd", "src/venetfilter/core/_core.pyi",
                   "src/venetfilter/worker/_native.pyx", "src/venetfilter/worker/libnfq.pxd", "scripts/bootstrap"):
        assert wanted in members
    built = [m for m in members if m.endswith((".so", ".pyc")) or "__pycache__" in m
             or (m.startswith("src/") and m.endswith(".c"))]
    assert built == []  # Cython's C and compiled modules are made by the build, never shipped
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()
    for line in ("License-Expression: GPL-2.0-or-later", "License-File: LICENSE", "Requires-Python: >=3.11",
                 "Classifier: Operating System :: POSIX :: Linux", "Classifier: Programming Language :: Cython"):
        assert f"\n{line}\n" in pkg_info
    assert "\nProject-URL: " in pkg_info and "\nKeywords: " in pkg_info


def test_pip_builds_and_installs_it_with_its_extensions(installed: Path) -> None:
    python = str(installed / "bin" / "python")
    code = (
        "import importlib, sys, venetfilter\n"
        f"for name in {COMPILED!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__file__.endswith('.so') and module.__file__.startswith(sys.prefix), module.__file__\n"
        "from venetfilter.core import CAddressTable\n"
        "assert CAddressTable is not None\n"
        "print(venetfilter.__file__)\n"
    )
    p = run([python, "-c", code], installed)
    assert p.stdout.startswith(str(installed / "lib"))
    p = run([str(installed / "bin" / "venetctl"), "--version"], installed)
    assert p.stdout == f"venetctl (venetfilter) {__version__}\n"
    (site,) = (installed / "lib").glob("python3*/site-packages")
    package = {str(f.relative_to(site)) for f in (site / "venetfilter").rglob("*") if f.is_file()}
    assert {"venetfilter/py.typed", "venetfilter/core/_core.pyx", "venetfilter/core/_core.pxd",
            "venetfilter/core/_core.pyi", "venetfilter/worker/_native.pyi"} <= package
    assert [f for f in package if f.endswith(".c")] == []  # the generated C stays out of the wheel


def test_the_shipped_tests_pass_against_the_install(sdist: Path, installed: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    unpacked = tmp_path / NAME
    python = str(installed / "bin" / "python")
    # from the unpacked tree, venetfilter is the installed one (src/ is not on the path)
    p = run([python, "-c", "import venetfilter; print(venetfilter.__file__)"], unpacked)
    assert p.stdout.startswith(str(installed))
    p = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SHIPPED_TESTS, *SHIPPED_TESTS_LEFT_OUT],
            unpacked)
    summary = p.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split()[0]) > 200, summary  # the core and config tests ran, not a handful
