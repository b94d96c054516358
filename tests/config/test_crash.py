"""A crash between writing the temporary file and renaming it leaves the old file valid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from venetfilter.cli import main
from venetfilter.config import load_state, read_config

from .conftest import Dirs, dry_node, subprocess_env

KILL_AT_RENAME = textwrap.dedent(
    """
    import functools, os, signal, sys
    import venetfilter.cli._common as common
    from venetfilter.cli import main

    common.Node = functools.partial(common.Node, dry=True)  # never the host's network

    def die(src, dst):
        assert open(src, "rb").read()  # the new content is written and flushed...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before the rename

    os.replace = die
    sys.exit(main(sys.argv[1:]))
    """
)


def killed_at_rename(dirs: Dirs, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", KILL_AT_RENAME, *dirs.options(), *args],
        capture_output=True, env=subprocess_env(), timeout=30,
    )


def test_killed_process_leaves_the_old_config(dirs: Dirs) -> None:
    dry_node(dirs.conf, dirs.run).set("101", ["192.0.2.1"], save=True)
    before = (dirs.conf / "101.conf").read_bytes()
    proc = killed_at_rename(dirs, "set", "101", "--ipadd", "192.0.2.2", "--save")
    assert proc.returncode == -signal.SIGKILL
    assert (dirs.conf / "101.conf").read_bytes() == before
    config = read_config(dirs.conf / "101.conf")
    assert config is not None and config.warnings == () and [str(a) for a in config.addresses] == ["192.0.2.1"]
    leftovers = [p.name for p in dirs.conf.iterdir() if p.name != "101.conf"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".101.conf.") and leftovers[0].endswith(".tmp")
    # the leftover is not mistaken for a container, and the lock died with the process
    node = dry_node(dirs.conf, dirs.run)
    assert [i.ctid for i in node.containers()] == ["101"]
    node.set("101", ["192.0.2.3"], save=True)
    assert [str(a) for a in node.info("101").saved or ()] == ["192.0.2.1", "192.0.2.3"]


def test_killed_process_leaves_the_old_state(dirs: Dirs) -> None:
    node = dry_node(dirs.conf, dirs.run)
    node.set("101", delete_all=True, save=True)
    generation = node.start("101").generation
    before = (dirs.run / "state.json").read_bytes()
    proc = killed_at_rename(dirs, "set", "101", "--ipadd", "192.0.2.2")
    assert proc.returncode == -signal.SIGKILL
    assert (dirs.run / "state.json").read_bytes() == before
    assert load_state(dirs.run).generation == generation
    node.set("101", ["192.0.2.3"])
    assert load_state(dirs.run).generation == generation + 1


def test_killed_while_saving_a_running_container_leaves_both_files(dirs: Dirs) -> None:
    """The config file is prepared first, the runtime state replaced next: a death at that rename
    leaves both old files (and the prepared temporary file, which is never taken for a container)."""
    node = dry_node(dirs.conf, dirs.run)
    node.set("101", ["192.0.2.1"], save=True)
    node.start("101")
    state_before, conf_before = (dirs.run / "state.json").read_bytes(), (dirs.conf / "101.conf").read_bytes()
    proc = killed_at_rename(dirs, "set", "101", "--ipadd", "192.0.2.2", "--save")
    assert proc.returncode == -signal.SIGKILL
    assert (dirs.run / "state.json").read_bytes() == state_before
    assert (dirs.conf / "101.conf").read_bytes() == conf_before
    assert [p.name.startswith(".101.conf.") for p in dirs.conf.iterdir() if p.name != "101.conf"] == [True]
    node.set("101", ["192.0.2.2"], save=True)
    assert [str(a) for a in node.info("101").saved or ()] == ["192.0.2.1", "192.0.2.2"]
    assert [i.ctid for i in node.containers()] == ["101"]


def test_failed_rename_in_process(dirs: Dirs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dry_node(dirs.conf, dirs.run).set("101", ["192.0.2.1"], save=True)
    before = (dirs.conf / "101.conf").read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", crash)
    code = main([*dirs.options(), "set", "101", "--ipadd", "192.0.2.2", "--save"])
    assert code == 3
    assert capsys.readouterr().err == f"venetctl: {dirs.conf / '101.conf'}: No space left on device\n"
    assert (dirs.conf / "101.conf").read_bytes() == before
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]  # the temporary file is removed
