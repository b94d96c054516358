"""Fixtures for the configuration tests: private directories, a dry `Node`, the CLI in-process.

Nothing here touches the host's network: the library tests use ``Node(dry=True)``, and every
in-process ``venetctl`` call of this directory runs over a dry `Node` too (`_host_free_cli`). A
running container is either started by a dry `Node` or recorded directly with `save_state`
(`record_running`). Subprocesses that need a running container run `DRY_MAIN`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import venetfilter.cli._common as cli_common
from tests.cli_runner import Result, in_process
from venetfilter.config import ConfigAddress, RunningContainer, global_lock, host_ifname, load_state, save_state
from venetfilter.config.addresses import parse_address_tokens
from venetfilter.lifecycle import DryNetwork, Node

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
VENETCTL = Path(sys.executable).parent / "venetctl"

DRY_MAIN = """
import functools, sys
import venetfilter.cli._common as common
common.Node = functools.partial(common.Node, dry=True)  # never the host's network
from venetfilter.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``python -c DRY_MAIN ARGS``: ``venetctl ARGS`` over a dry `Node` (for a running container)."""


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


def dry_node(conf: Path | str | None = None, run: Path | str | None = None, **options: Any) -> Node:
    """A `Node` that changes the files and the runtime state only, never the host."""
    return Node(conf, run, dry=True, **options)


def notifying_node(conf: Path | str | None = None, run: Path | str | None = None, **options: Any) -> Node:
    """A `Node` that leaves the host alone (its network is a `DryNetwork`) but tells the worker as a
    real one does (``dry=True`` skips the notification too)."""
    node = Node(conf, run, **options)
    node.network = DryNetwork(node.run_dir, node.node_config)
    return node


@pytest.fixture
def node(dirs: Dirs) -> Node:
    """A dry node over `dirs`."""
    return dry_node(dirs.conf, dirs.run, notify_timeout=0.5)


def record_running(
    run_dir: Path, ctid: str, ifindex: int = 7, addresses: str | list[ConfigAddress] = "", netns: str | None = None
) -> int:
    """Record `ctid` as running (link `ifindex`) in ``RUN_DIR/state.json``, as a start would have;
    returns the new generation."""
    if isinstance(addresses, str):
        addresses = parse_address_tokens(addresses)
    with global_lock(run_dir):
        state = load_state(run_dir).with_container(
            RunningContainer(ctid, ifindex, tuple(addresses), netns, host_ifname(ctid))
        )
        save_state(run_dir, state)
    return state.generation


def write_config(dirs: Dirs, ctid: str, addresses: str = "") -> Path:
    """``CONF_DIR/CTID.conf`` with ``IP_ADDRESS="addresses"``, written by hand."""
    dirs.conf.mkdir(exist_ok=True)
    path = dirs.conf / f"{ctid}.conf"
    path.write_text(f'IP_ADDRESS="{addresses}"\n')
    return path


@pytest.fixture(autouse=True)
def _host_free_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``venetctl`` run in this process builds a dry `Node` (no root networking here)."""
    monkeypatch.setattr(cli_common, "Node", lambda *args, **options: Node(*args, dry=True, **options))
    yield


@pytest.fixture
def notifying_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process ``venetctl`` over `notifying_node`: the worker is told, the host is left alone."""
    monkeypatch.setattr(cli_common, "Node", notifying_node)


@pytest.fixture
def cli(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("set", "101", ...)`` runs ``venetctl`` in-process on `dirs` and returns code, stdout, stderr."""
    return in_process(capsys, dirs.options())


def subprocess_env() -> dict[str, str]:
    """The environment for venetctl subprocesses (the source tree importable, no defaults)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env
