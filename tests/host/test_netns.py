"""Namespace resolution (NAME, PATH, PID), creation and removal, and running code inside one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from venetfilter.errors import HostNetworkError, NetnsExistsError
from venetfilter.host.netns import (
    create_netns,
    netns_exists,
    netns_file,
    open_iproute,
    remove_netns,
    run_in_netns,
    same_netns,
)
from venetfilter.netns import NetnsNotFoundError

from .conftest import unique_name


def _inode(path: str) -> int:
    return os.stat(path).st_ino


@pytest.fixture
def pid_netns() -> Iterator[int]:
    """A process in a namespace of its own that has no name (as a container runtime makes)."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        for _ in range(100):  # wait until unshare has happened
            if _inode(f"/proc/{proc.pid}/ns/net") != _inode("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.01"], check=True)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_name_path_and_pid_resolve_to_the_same_namespace(make_netns: Callable[[], str]) -> None:
    name = make_netns()
    path = netns_file(name)
    assert path == f"/run/netns/{name}"
    assert same_netns(name, path) and same_netns(Path(path), name)
    proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"])
    try:
        for _ in range(100):
            if same_netns(proc.pid, name):
                break
            subprocess.run(["sleep", "0.01"], check=True)
        assert same_netns(proc.pid, name)
        assert same_netns(str(proc.pid), name)
    finally:
        proc.kill()
        proc.wait()
    assert not same_netns(name, None)


def test_pid_namespace_is_usable(pid_netns: int) -> None:
    with open_iproute(pid_netns) as ipr:
        assert [link.get("ifname") for link in ipr.link("dump")] == ["lo"]


@pytest.mark.parametrize("spec", ["vftest-missing-0", "/run/netns/vftest-missing-0", 2**22 + 7])
def test_missing_namespace_is_a_clear_error_and_is_not_created(spec: object) -> None:
    with pytest.raises(NetnsNotFoundError, match="not found"):
        netns_file(spec)  # type: ignore[arg-type]
    with pytest.raises(NetnsNotFoundError):
        open_iproute(spec)  # type: ignore[arg-type]
    assert not os.path.exists("/run/netns/vftest-missing-0")


def test_create_and_remove() -> None:
    name = unique_name()
    try:
        assert create_netns(name) == f"/run/netns/{name}"
        assert netns_exists(name)
        with pytest.raises(NetnsExistsError):
            create_netns(name)
    finally:
        remove_netns(name)
    assert not netns_exists(name)
    remove_netns(name)  # a missing one is fine


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(HostNetworkError):
        create_netns(bad)


def test_run_in_netns_sees_that_namespace_only(make_netns: Callable[[], str]) -> None:
    name = make_netns()
    mine = _inode("/proc/thread-self/ns/net")
    inside = run_in_netns(name, lambda: _inode("/proc/thread-self/ns/net"))
    assert inside == os.stat(netns_file(name) or "").st_ino != mine
    assert _inode("/proc/thread-self/ns/net") == mine
    assert run_in_netns(None, lambda: _inode("/proc/thread-self/ns/net")) == mine


def test_run_in_netns_propagates_exceptions(make_netns: Callable[[], str]) -> None:
    def boom() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        run_in_netns(make_netns(), boom)
