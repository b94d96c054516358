"""Concurrent ``venetctl`` processes never lose an update (the global lock + atomic writes)."""

from __future__ import annotations

import subprocess
import sys
import time

from venetfilter.config import load_state, read_config

from .conftest import DRY_MAIN, Dirs, dry_node, subprocess_env

N = 50
N_EXTRA = 20  # the two extra scenarios are smaller, to keep the suite fast


def run_all(commands: list[list[str]]) -> None:
    """Start every command at once, then wait for all; each must succeed."""
    env = subprocess_env()
    started = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for c in commands]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert time.monotonic() - started < 30


def venetctl(dirs: Dirs, *args: str) -> list[str]:
    return [sys.executable, "-m", "venetfilter.cli", *dirs.options(), *args]


def dry_venetctl(dirs: Dirs, *args: str) -> list[str]:
    """venetctl over a dry Node: a change of a running container never touches the host."""
    return [sys.executable, "-c", DRY_MAIN, *dirs.options(), *args]


def test_50_processes_one_container(dirs: Dirs) -> None:
    dry_node(dirs.conf, dirs.run).set("101", ["192.0.2.254"], save=True)
    run_all([venetctl(dirs, "set", "101", "--ipadd", f"10.0.0.{i}", "--save") for i in range(1, N + 1)])
    config = read_config(dirs.conf / "101.conf")
    assert config is not None and config.warnings == ()
    got = [str(a) for a in config.addresses]
    assert got[0] == "192.0.2.254"
    assert sorted(got[1:]) == sorted(f"10.0.0.{i}" for i in range(1, N + 1))
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]  # no temporary file left


def test_50_processes_50_containers(dirs: Dirs) -> None:
    run_all([venetctl(dirs, "set", str(100 + i), "--ipadd", f"2001:db8::{i + 1:x}/64", "--save") for i in range(N)])
    infos = dry_node(dirs.conf, dirs.run).containers()
    assert [(i.ctid, [str(a) for a in i.saved or ()]) for i in infos] == [
        (str(100 + i), [f"2001:db8::{i + 1:x}/64"]) for i in range(N)
    ]


def test_processes_on_a_running_container(dirs: Dirs) -> None:
    node = dry_node(dirs.conf, dirs.run)
    node.set("101", delete_all=True, save=True)
    generation = node.start("101").generation
    run_all([dry_venetctl(dirs, "set", "101", "--ipadd", f"10.1.0.{i}") for i in range(1, N_EXTRA + 1)])
    state = load_state(dirs.run)
    assert state.generation == generation + N_EXTRA  # every change counted once
    got = sorted(str(a) for a in state.containers["101"].addresses)
    assert got == sorted(f"10.1.0.{i}" for i in range(1, N_EXTRA + 1))


def test_processes_racing_for_one_address(dirs: Dirs) -> None:
    env = subprocess_env()
    procs = [
        subprocess.Popen(venetctl(dirs, "set", str(200 + i), "--ipadd", "198.51.100.1", "--save"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        for i in range(N_EXTRA)
    ]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        assert p.stderr is not None
        p.stderr.close()
    assert sorted(codes) == [0] + [78] * (N_EXTRA - 1)  # exactly one winner
    owners = [i.ctid for i in dry_node(dirs.conf, dirs.run).containers() if i.saved]
    assert owners == [str(200 + codes.index(0))]
