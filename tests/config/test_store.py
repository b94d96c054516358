"""Atomic writes, private modes and the global lock."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from venetfilter.config import atomic_write, global_lock
from venetfilter.config.store import ensure_dir, prepare_write


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_is_private(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a.conf", b"x\n")
    assert (tmp_path / "a.conf").read_bytes() == b"x\n"
    assert mode(tmp_path / "a.conf") == 0o600


def test_existing_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o644


def test_existing_owner_is_kept(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give a file away")
    path = tmp_path / "a.conf"
    path.write_bytes(b"old")
    os.chown(path, 1234, 5678)
    atomic_write(path, b"new")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_symlink_target_is_replaced_and_link_kept(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "ve.conf"
    target.write_bytes(b"old")
    link = tmp_path / "101.conf"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_no_temporary_file_is_left(tmp_path: Path) -> None:
    for i in range(3):
        atomic_write(tmp_path / "a.conf", b"%d" % i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf"]


def test_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.conf"
    path.write_bytes(b'IP_ADDRESS="192.0.2.1"\n')

    def crash(src: object, dst: object) -> None:
        assert Path(str(src)).read_bytes() == b"half-written"  # the temporary file is complete...
        raise OSError(5, "simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write(path, b"half-written")
    assert path.read_bytes() == b'IP_ADDRESS="192.0.2.1"\n'  # ...but the target is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf"]


def test_prepared_write_takes_effect_at_commit(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    prepared = prepare_write(path, b"new")
    [tmp] = [p for p in tmp_path.iterdir() if p.name != "a.conf"]
    assert tmp.name.startswith(".a.conf.") and tmp.name.endswith(".tmp") and tmp.read_bytes() == b"new"
    assert path.read_bytes() == b"old"  # nothing in place yet
    prepared.commit()
    assert path.read_bytes() == b"new" and mode(path) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf"]
    with pytest.raises(ValueError):
        prepared.commit()


def test_aborted_write_leaves_nothing(tmp_path: Path) -> None:
    prepared = prepare_write(tmp_path / "a.conf", b"new")
    prepared.abort()
    prepared.abort()  # twice is harmless
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        prepared.commit()


def test_failed_prepare_names_the_target(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        prepare_write(tmp_path / "missing" / "a.conf", b"x")
    assert info.value.filename == str(tmp_path / "missing" / "a.conf")


def test_ensure_dir_makes_private_dirs(tmp_path: Path) -> None:
    old = os.umask(0o077 ^ 0o777)  # a silly umask must not matter either way
    try:
        ensure_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    os.chmod(tmp_path / "a", 0o755)
    ensure_dir(tmp_path / "a")  # an existing directory keeps its mode
    assert mode(tmp_path / "a") == 0o755


def test_lock_file_is_private_and_lock_is_reentrant(tmp_path: Path) -> None:
    with global_lock(tmp_path / "run"):
        with global_lock(tmp_path / "run"):
            assert mode(tmp_path / "run" / "lock") == 0o600
        with global_lock(str(tmp_path / "run") + "/"):  # another spelling of the same directory
            pass
    assert mode(tmp_path / "run") == 0o700


def test_lock_excludes_other_threads(tmp_path: Path) -> None:
    events: list[str] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait(5)
        with global_lock(tmp_path):
            events.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with global_lock(tmp_path):
        inside.set()
        time.sleep(0.2)
        events.append("first")
    thread.join(5)
    assert events == ["first", "other"]
