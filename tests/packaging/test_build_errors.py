"""A machine without the C toolchain or the libnetfilter_queue headers gets one clear message naming
the Debian packages, before Cython runs (setup.py's probe), not a compiler error deep in its output.
The probe passing on a machine that has them is shown by test_sdist.py (pip builds the sdist)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALL_PACKAGES = "apt-get install build-essential python3-dev libnetfilter-queue-dev libmnl-dev libnfnetlink-dev"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What setup.py needs of the checkout, copied (the build must not touch the real tree)."""
    tree = tmp_path / "tree"
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        tree.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__", "*.egg-info"))
    return tree


def build_ext(tree: Path, cc: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CFLAGS", "CPPFLAGS")}
    env["CC"] = cc
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--build-temp", "tmp", "--build-lib", "lib"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def generated_c(tree: Path) -> list[Path]:
    return sorted((tree / "src").rglob("*.c"))


def test_without_a_compiler(checkout: Path, tmp_path: Path) -> None:
    p = build_ext(checkout, str(tmp_path / "no-such-cc"))
    assert p.returncode != 0
    assert "venetfilter: cannot build its C extensions: a working C compiler not found" in p.stderr
    assert "On Debian or Ubuntu, as root: apt-get install build-essential " in p.stderr
    assert ALL_PACKAGES in p.stderr
    assert generated_c(checkout) == []  # refused before Cython ran


def test_without_the_libnetfilter_queue_headers(checkout: Path, tmp_path: Path) -> None:
    """The compiler looks into a system root where everything of /usr/include is but libnetfilter_queue."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    include = tmp_path / "sysroot" / "usr" / "include"
    include.mkdir(parents=True)
    assert (Path("/usr/include") / "libnetfilter_queue").is_dir()  # the real build has them
    for entry in Path("/usr/include").iterdir():
        if entry.name != "libnetfilter_queue":
            (include / entry.name).symlink_to(entry)
    p = build_ext(checkout, f"gcc --sysroot={tmp_path / 'sysroot'}")
    assert p.returncode != 0
    assert "venetfilter: cannot build its C extensions: the libnetfilter_queue headers not found" in p.stderr
    assert "On Debian or Ubuntu, as root: apt-get install libnetfilter-queue-dev libmnl-dev libnfnetlink-dev " in p.stderr
    assert ALL_PACKAGES in p.stderr
    assert "libnetfilter_queue/libnetfilter_queue.h: No such file or directory" in p.stdout + p.stderr
    assert generated_c(checkout) == []
