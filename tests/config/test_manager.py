"""vzctl ``set`` semantics through the library API (`Node`, dry), plus start/stop and the order in
which a running container's change reaches the host, the runtime state and the config file."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from venetfilter.config import ConfigAddress, RunningContainer, load_state
from venetfilter.errors import (
    AddressInUseError,
    AddressRoutedError,
    AlreadyRunningError,
    ApplyError,
    ConfigFileError,
    CorruptStateError,
    HostNetworkError,
    InterruptedOperationError,
    InvalidAddressError,
    InvalidContainerError,
    NotRunningError,
    UnknownContainerError,
)
from venetfilter.host import PartialChangeError
from venetfilter.lifecycle import NOT_RUNNING_MESSAGE, NOT_SAVED_WARNING, DryNetwork, Node

from .conftest import FIXTURES, Dirs, dry_node, notifying_node, record_running, write_config
from .worker_stub import WorkerStub

UNUSABLE = ["224.0.0.1", "127.0.0.9", "ff02::1", "fe80::1", "::ffff:192.0.2.1", "255.255.255.255"]
"""One address of each class no container may have: multicast, loopback, multicast (IPv6),
link-local, IPv4-mapped, the limited broadcast."""


def saved(node: Node, ctid: str) -> list[str] | None:
    config = node.read_config(ctid)
    return None if config is None else [str(a) for a in config.addresses]


def live(node: Node, ctid: str) -> list[str] | None:
    running = node.runtime_state().containers.get(ctid)
    return None if running is None else [str(a) for a in running.addresses]


def started(node: Node, ctid: str, addresses: Sequence[str] = (), **options: str) -> int:
    """Save `addresses` for `ctid` and start it; returns the generation written."""
    node.set(ctid, list(addresses), delete_all=True, save=True)
    return node.start(ctid, **options).generation


def tmp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp")) if directory.exists() else []


class RecordingNetwork(DryNetwork):
    """A host that records each change of a running container's addresses, with what the runtime
    state and the config file said at that moment, and fails on demand."""

    def __init__(self, node: Node, fail: BaseException | None = None, fail_after_commit: bool = False) -> None:
        super().__init__(node.run_dir, node.node_config)
        self.node, self.fail, self.fail_after_commit = node, fail, fail_after_commit
        self.calls: list[tuple[str, list[str], list[str]]] = []
        self.seen: list[dict[str, object]] = []

    def change(
        self, record: RunningContainer, added: Sequence[ConfigAddress], removed: Sequence[ConfigAddress],
        commit: Callable[[], None], checkpoint: Callable[[str], None],
    ) -> None:
        ctid = record.ctid
        self.calls.append((ctid, [str(a) for a in added], [str(a) for a in removed]))
        seen: dict[str, object] = {
            "live": live(self.node, ctid), "saved": saved(self.node, ctid), "tmp": tmp_files(self.node.conf_dir)
        }
        self.seen.append(seen)
        if self.fail is not None and not self.fail_after_commit:
            raise self.fail
        commit()
        seen["live after commit"] = live(self.node, ctid)
        seen["saved after commit"] = saved(self.node, ctid)
        if self.fail is not None:
            raise self.fail


def test_stopped_without_save_is_refused(node: Node, dirs: Dirs) -> None:
    with pytest.raises(NotRunningError, match="container 101 is not running"):
        node.set("101", ["192.0.2.1"])
    assert not (dirs.conf / "101.conf").exists() and not (dirs.run / "state.json").exists()


def test_stopped_with_save_changes_only_the_file(node: Node, dirs: Dirs) -> None:
    result = node.set("101", ["192.0.2.1,2001:DB8::1/64"], save=True)
    assert saved(node, "101") == ["192.0.2.1", "2001:db8::1/64"]
    assert [str(a) for a in result.saved or ()] == ["192.0.2.1", "2001:db8::1/64"]
    assert result.runtime is None and result.generation is None and result.warnings == ()
    assert not result.running and not result.notified
    assert not (dirs.run / "state.json").exists()
    assert stat.S_IMODE(os.stat(dirs.conf / "101.conf").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dirs.conf).st_mode) == 0o700


def test_running_without_save_changes_only_the_runtime(node: Node) -> None:
    generation = started(node, "101", ["192.0.2.1"])
    result = node.set("101", ["192.0.2.2"])
    assert live(node, "101") == ["192.0.2.1", "192.0.2.2"]
    assert saved(node, "101") == ["192.0.2.1"]
    assert result.warnings == (NOT_SAVED_WARNING,) and result.generation == generation + 1
    assert [str(a) for a in result.added] == ["192.0.2.2"] and result.removed == () and result.saved is None
    node.stop("101")
    node.start("101")  # restart: the runtime-only change is gone
    assert live(node, "101") == ["192.0.2.1"]


def test_running_with_save_edits_each_list_from_its_own_base(node: Node) -> None:
    started(node, "101", ["192.0.2.1"])
    node.set("101", ["192.0.2.2"])  # runtime only
    result = node.set("101", ["192.0.2.3"], ["192.0.2.1"], save=True)
    assert live(node, "101") == ["192.0.2.2", "192.0.2.3"]
    assert saved(node, "101") == ["192.0.2.3"]
    assert result.warnings == ()
    assert [str(a) for a in result.runtime or ()] == ["192.0.2.2", "192.0.2.3"]
    assert [str(a) for a in result.saved or ()] == ["192.0.2.3"]


def test_deletes_come_before_adds(node: Node) -> None:
    node.set("101", ["192.0.2.1/24", "192.0.2.2"], save=True)
    node.set("101", add=["192.0.2.1/16"], delete=["192.0.2.1"], save=True)  # changes the prefix
    assert saved(node, "101") == ["192.0.2.2", "192.0.2.1/16"]
    node.set("101", add=["192.0.2.9"], delete_all=True, save=True)
    assert saved(node, "101") == ["192.0.2.9"]


def test_readding_and_deleting_absent_are_not_errors(node: Node) -> None:
    node.set("101", ["192.0.2.1/24"], save=True)
    node.set("101", ["192.0.2.1", "192.0.2.1/8", "0.0.0.0", "::"], ["198.51.100.1"], save=True)
    assert saved(node, "101") == ["192.0.2.1/24"]  # the address as stored, prefix kept


def test_delete_all_leaves_an_empty_line(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    node.set("101", delete_all=True, save=True)
    assert (dirs.conf / "101.conf").read_bytes() == b'IP_ADDRESS=""\n'


def test_bad_values_change_nothing(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    before = (dirs.conf / "101.conf").read_bytes()
    with pytest.raises(InvalidAddressError, match="192.0.2.300"):
        node.set("101", ["192.0.2.2", "192.0.2.300"], save=True)
    with pytest.raises(InvalidAddressError, match="zone"):
        node.set("101", delete=["fe80::1%eth0"], save=True)
    with pytest.raises(InvalidContainerError):
        node.set("../101", ["192.0.2.2"], save=True)
    assert (dirs.conf / "101.conf").read_bytes() == before
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]


@pytest.mark.parametrize("address", UNUSABLE)
@pytest.mark.parametrize("running", [False, True])
def test_unusable_addresses_are_refused_and_nothing_changes(node: Node, dirs: Dirs, address: str, running: bool) -> None:
    if running:
        started(node, "101", ["192.0.2.1"])
    else:
        node.set("101", ["192.0.2.1"], save=True)
    conf_before = (dirs.conf / "101.conf").read_bytes()
    state_before = (dirs.run / "state.json").read_bytes() if running else None
    for save in (True, False) if running else (True,):
        with pytest.raises(InvalidAddressError, match="not usable for a container") as info:
            node.set("101", ["192.0.2.2", address], save=save)
        assert info.value.exit_code == 21
    assert (dirs.conf / "101.conf").read_bytes() == conf_before
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]
    if running:
        assert (dirs.run / "state.json").read_bytes() == state_before
    else:
        assert not (dirs.run / "state.json").exists()
    with pytest.raises(InvalidAddressError):  # a new container: no file is made
        node.set("102", [address], save=True)
    assert not (dirs.conf / "102.conf").exists()


def test_unusable_address_in_a_file_can_still_be_deleted(node: Node, dirs: Dirs) -> None:
    write_config(dirs, "101", "192.0.2.1 127.0.0.9 fe80::1")  # edited by hand (or an old version)
    node.set("101", delete=["127.0.0.9", "fe80::1"], save=True)
    assert saved(node, "101") == ["192.0.2.1"]


def test_unspecified_addresses_are_ignored(node: Node, dirs: Dirs) -> None:
    result = node.set("101", ["0.0.0.0", "::", "192.0.2.1"], save=True)
    assert [str(a) for a in result.saved or ()] == ["192.0.2.1"]
    node.set("101", ["0.0.0.0"], save=True)
    assert saved(node, "101") == ["192.0.2.1"]


def test_a_plain_string_is_one_value(node: Node) -> None:
    node.set("101", "192.0.2.1,192.0.2.2", save=True)
    assert saved(node, "101") == ["192.0.2.1", "192.0.2.2"]


@pytest.mark.parametrize("ctid", ["0", "00", "000"])
def test_ct_0_is_the_node_itself(node: Node, dirs: Dirs, ctid: str) -> None:
    write_config(dirs, ctid, "192.0.2.1")  # vzctl's 0.conf: the node's own settings
    for call in (
        lambda: node.set(ctid, ["192.0.2.2"], save=True),
        lambda: node.set(ctid, ["192.0.2.2"]),
        lambda: node.info(ctid),
        lambda: node.start(ctid),
        lambda: node.stop(ctid),
    ):
        with pytest.raises(InvalidContainerError, match="CT 0") as info:
            call()
        assert info.value.exit_code == 21
    assert node.containers() == []
    assert (dirs.conf / f"{ctid}.conf").read_text() == 'IP_ADDRESS="192.0.2.1"\n'
    assert not (dirs.run / "state.json").exists()
    node.set("101", ["192.0.2.1"], save=True)  # 0.conf owns nothing: it is not a container
    assert [i.ctid for i in node.containers()] == ["101"]


@pytest.mark.parametrize("other_running", [False, True])
@pytest.mark.parametrize("save", [False, True])
def test_address_owned_by_another_container(node: Node, other_running: bool, save: bool) -> None:
    node.set("102", ["2001:db8::5/64"], save=True)
    if other_running:
        node.start("102")
        node.set("102", ["192.0.2.5"])  # runtime only: still owned
    started(node, "101", ["192.0.2.1"])
    for taken in (["2001:DB8::5"], ["192.0.2.5"] if other_running else ["2001:db8:0::5/128"]):
        with pytest.raises(AddressInUseError) as info:
            node.set("101", ["192.0.2.9", *taken], save=save)
        assert info.value.owner == "102" and info.value.exit_code == 78
    assert live(node, "101") == ["192.0.2.1"] and saved(node, "101") == ["192.0.2.1"]


def test_address_in_use_names_the_address(node: Node) -> None:
    node.set("102", ["2001:db8::5/64"], save=True)
    with pytest.raises(AddressInUseError) as info:
        node.set("101", ["2001:DB8:0::5"], save=True)
    assert (info.value.address, info.value.owner) == ("2001:db8::5", "102")


def test_address_freed_by_another_container_can_be_taken(node: Node) -> None:
    node.set("102", ["192.0.2.5"], save=True)
    node.set("102", delete=["192.0.2.5"], save=True)
    node.set("101", ["192.0.2.5"], save=True)
    assert saved(node, "101") == ["192.0.2.5"]


def test_host_change_comes_after_the_file_is_prepared_and_before_it_is_saved(node: Node, dirs: Dirs) -> None:
    recorder = RecordingNetwork(node)
    node.network = recorder
    started(node, "101", ["192.0.2.1", "192.0.2.2"])
    assert recorder.calls == []  # start is not a change of a running container's addresses
    node.set("101", ["192.0.2.3/24", "192.0.2.1"], ["192.0.2.2", "198.51.100.1"], save=True)
    assert recorder.calls == [("101", ["192.0.2.3/24"], ["192.0.2.2"])]
    [seen] = recorder.seen
    assert seen["live"] == ["192.0.2.1", "192.0.2.2"] and seen["saved"] == ["192.0.2.1", "192.0.2.2"]
    assert [str(name).startswith(".101.conf.") for name in seen["tmp"]] == [True]  # type: ignore[attr-defined]
    assert seen["live after commit"] == ["192.0.2.1", "192.0.2.3/24"]  # the filter knows first...
    assert seen["saved after commit"] == ["192.0.2.1", "192.0.2.2"]  # ...the file is committed last
    assert saved(node, "101") == ["192.0.2.1", "192.0.2.3/24"] and tmp_files(dirs.conf) == []
    node.set("101", ["192.0.2.1"])  # nothing changes live: no call
    assert len(recorder.calls) == 1


@pytest.mark.parametrize("save", [False, True])
def test_failing_host_change_saves_nothing(node: Node, dirs: Dirs, save: bool) -> None:
    started(node, "101", ["192.0.2.1"])
    state_before = (dirs.run / "state.json").read_bytes()
    conf_before = (dirs.conf / "101.conf").read_bytes()
    node.network = RecordingNetwork(node, fail=HostNetworkError("Cannot assign requested address"))
    with pytest.raises(ApplyError, match="Cannot assign requested address") as info:
        node.set("101", ["192.0.2.2"], save=save)
    assert isinstance(info.value.cause, HostNetworkError) and info.value.ctid == "101"
    assert info.value.exit_code == 34
    assert (dirs.run / "state.json").read_bytes() == state_before
    assert (dirs.conf / "101.conf").read_bytes() == conf_before
    assert tmp_files(dirs.conf) == []  # the prepared file is removed


def test_address_routed_elsewhere_is_78_not_34(node: Node, dirs: Dirs) -> None:
    started(node, "101", ["192.0.2.1"])
    state_before = (dirs.run / "state.json").read_bytes()
    node.network = RecordingNetwork(node, fail=AddressRoutedError("192.0.2.2", "a route via uplink0"))
    with pytest.raises(AddressRoutedError) as info:
        node.set("101", ["192.0.2.2"], save=True)
    assert info.value.exit_code == 78
    assert (dirs.run / "state.json").read_bytes() == state_before and saved(node, "101") == ["192.0.2.1"]


def test_leftovers_of_a_change_in_force_are_a_warning(node: Node) -> None:
    started(node, "101", ["192.0.2.1", "192.0.2.2"])
    node.network = RecordingNetwork(node, fail=PartialChangeError("cannot delete 192.0.2.2"), fail_after_commit=True)
    result = node.set("101", ["192.0.2.3"], ["192.0.2.2"], save=True)
    assert live(node, "101") == ["192.0.2.1", "192.0.2.3"] and saved(node, "101") == ["192.0.2.1", "192.0.2.3"]
    assert any("cannot delete 192.0.2.2" in w and "venetctl stop" in w for w in result.warnings)


def test_worker_is_notified_of_runtime_changes(dirs: Dirs) -> None:
    node = notifying_node(dirs.conf, dirs.run, notify_timeout=0.5)
    node.set("101", ["192.0.2.1"], save=True)
    with WorkerStub(dirs.run) as stub:
        node.set("102", ["192.0.2.2"], save=True)  # no runtime change: no notification
        assert stub.requests == []
        start = node.start("101")
        after_start = len(stub.requests)
        changed = node.set("101", ["192.0.2.3"])
        after_set = len(stub.requests)
        stopped = node.stop("101")
        gone = node.stop("101")  # not running: nothing to tell
    assert after_start >= 1 and after_set == after_start + 1 and len(stub.requests) == after_set + 1
    assert set(stub.requests) == {b"reload\n"}
    assert start.notified and changed.notified and stopped.notified and not gone.notified
    assert changed.warnings == (NOT_SAVED_WARNING,)


def test_dry_node_never_notifies(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    with WorkerStub(dirs.run) as stub:
        node.start("101")
        node.set("101", ["192.0.2.3"])
        node.stop("101")
    assert stub.requests == []


def test_silent_worker_warns_and_the_change_stays(dirs: Dirs) -> None:
    node = notifying_node(dirs.conf, dirs.run, notify_timeout=0.2)
    started(node, "101")
    with WorkerStub(dirs.run, "silent"):
        result = node.set("101", ["192.0.2.1"])
    assert not result.notified
    assert any("did not confirm" in w for w in result.warnings)
    assert live(node, "101") == ["192.0.2.1"]


def test_start_stop(node: Node) -> None:
    node.set("101", ["192.0.2.1/24"], save=True)
    result = node.start("101", netns="ct101")
    assert [str(a) for a in result.record.addresses] == ["192.0.2.1/24"] and not result.notified
    running = node.runtime_state().containers["101"]
    assert running == result.record
    assert (running.ifindex, running.netns, running.link, running.phase) == (1001, "ct101", "vnf101", "running")
    with pytest.raises(AlreadyRunningError) as already:
        node.start("101")
    assert already.value.exit_code == 32
    with pytest.raises(UnknownContainerError) as unknown:  # start needs the config file
        node.start("102")
    assert unknown.value.exit_code == 14 and "102" not in node.runtime_state().containers
    node.set("102", delete_all=True, save=True)  # an empty config: runs without addresses
    node.start("102")
    assert live(node, "102") == [] and node.runtime_state().containers["102"].ifindex == 1002
    generation = load_state(node.run_dir).generation
    stopped = node.stop("101")
    assert stopped.was_running and stopped.message == "" and stopped.generation == load_state(node.run_dir).generation
    assert stopped.generation is not None and stopped.generation > generation
    again = node.stop("101")  # vzctl: "Container is not running", not an error
    assert (again.was_running, again.message, again.generation) == (False, NOT_RUNNING_MESSAGE, None)
    assert again.message == "Container is not running"
    assert load_state(node.run_dir).generation == stopped.generation
    with pytest.raises(UnknownContainerError):
        node.stop("999")
    assert sorted(node.runtime_state().containers) == ["102"]


def test_start_refuses_an_address_running_elsewhere(node: Node, dirs: Dirs) -> None:
    started(node, "102")
    node.set("102", ["192.0.2.1"])
    write_config(dirs, "101", "192.0.2.1")  # edited by hand
    before = (dirs.run / "state.json").read_bytes()
    with pytest.raises(AddressInUseError) as info:
        node.start("101")
    assert info.value.owner == "102"
    assert "101" not in node.runtime_state().containers and (dirs.run / "state.json").read_bytes() == before


@pytest.mark.parametrize("address", UNUSABLE)
def test_start_refuses_an_unusable_address_in_the_file(node: Node, dirs: Dirs, address: str) -> None:
    write_config(dirs, "101", f"192.0.2.1 {address}")
    with pytest.raises(InvalidAddressError, match="not usable for a container") as info:
        node.start("101")
    assert info.value.exit_code == 21
    assert not (dirs.run / "state.json").exists()


def test_start_ignores_unspecified_addresses_in_the_file(node: Node, dirs: Dirs) -> None:
    write_config(dirs, "101", "0.0.0.0 192.0.2.1 ::")
    node.start("101")
    assert live(node, "101") == ["192.0.2.1"]


def test_an_interrupted_start_is_repaired_by_the_next_one(node: Node, dirs: Dirs) -> None:
    write_config(dirs, "101", "192.0.2.1")

    def crash(step: str) -> None:
        if step == "recorded":
            raise KeyboardInterrupt  # as if killed between two steps

    node.checkpoint = crash
    with pytest.raises(KeyboardInterrupt):
        node.start("101")
    assert node.runtime_state().containers["101"].phase == "starting"
    node.checkpoint = lambda step: None
    with pytest.raises(InterruptedOperationError, match="venetctl stop 101"):
        node.set("101", ["192.0.2.2"])
    result = node.start("101")
    assert any("interrupted" in w for w in result.warnings)
    assert node.runtime_state().containers["101"].phase == "running" and live(node, "101") == ["192.0.2.1"]


def test_info_and_containers(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    node.set("20", ["192.0.2.20"], save=True)
    node.set("web", ["2001:db8::80"], save=True)
    node.start("20")
    record_running(dirs.run, "ct-x", 6)  # running, its config file gone meanwhile
    (dirs.conf / "ve-vswap-256m.conf-sample").write_text("junk")
    (dirs.conf / "..conf").write_text("junk")
    write_config(dirs, "0", "192.0.2.99")  # the node itself: never a container
    write_config(dirs, "00")
    infos = node.containers()
    assert [i.ctid for i in infos] == ["20", "101", "ct-x", "web"]
    assert [(i.running, i.saved is None) for i in infos] == [(True, False), (False, False), (True, True), (False, False)]
    info = node.info("20")
    assert info.running and [str(a) for a in info.saved or ()] == ["192.0.2.20"]
    assert info.runtime is not None and info.runtime.phase == "running"
    assert node.info("ct-x").saved is None
    with pytest.raises(UnknownContainerError):
        node.info("999")


def test_config_warnings_are_reported(node: Node, dirs: Dirs) -> None:
    dirs.conf.mkdir()
    (dirs.conf / "101.conf").write_text('oops\nIP_ADDRESS="192.0.2.1 bogus"\n')
    result = node.set("101", ["192.0.2.2"], save=True)
    path = dirs.conf / "101.conf"
    assert result.warnings == (
        f"Warning at {path}:1: cannot parse line, ignored: oops",
        f'Warning at {path}:2: invalid value for IP_ADDRESS ("bogus"), skipped',
    )
    assert path.read_text() == 'oops\nIP_ADDRESS="192.0.2.1 192.0.2.2"\n'
    assert node.info("101").warnings == (f"Warning at {path}:1: cannot parse line, ignored: oops",)
    (dirs.conf / "101.conf").write_text('oops\nIP_ADDRESS="192.0.2.1"\n')
    assert node.start("101").warnings[:1] == (f"Warning at {path}:1: cannot parse line, ignored: oops",)


def test_openvz_file_is_used_as_is(node: Node, dirs: Dirs) -> None:
    dirs.conf.mkdir()
    path = dirs.conf / "101.conf"
    shutil.copyfile(FIXTURES / "101.conf", path)
    os.chmod(path, 0o644)
    original = path.read_bytes()
    node.set("101", ["198.51.100.1"], ["192.0.2.101"], save=True)
    new = path.read_bytes()
    diff = [(a, b) for a, b in zip(original.split(b"\n"), new.split(b"\n")) if a != b]
    assert diff == [(b'IP_ADDRESS="192.0.2.101 2001:db8:0:0::101/64"', b'IP_ADDRESS="2001:db8::101/64 198.51.100.1"')]
    assert len(original.split(b"\n")) == len(new.split(b"\n"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_unchanged_file_is_not_rewritten(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    path = dirs.conf / "101.conf"
    os.utime(path, (0, 0))
    node.set("101", ["192.0.2.1"], save=True)
    assert os.stat(path).st_mtime == 0


def test_corrupt_state_stops_every_change(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1"], save=True)
    dirs.run.mkdir(exist_ok=True)
    (dirs.run / "state.json").write_text('{"generation": 1, "containers": {')
    with pytest.raises(CorruptStateError):
        node.set("101", ["192.0.2.2"], save=True)
    assert saved(node, "101") == ["192.0.2.1"]
    for call in (node.containers, lambda: node.start("101"), lambda: node.stop("101")):
        with pytest.raises(CorruptStateError):
            call()
    assert (dirs.run / "state.json").read_text() == '{"generation": 1, "containers": {'


def test_unreadable_config_is_an_error(node: Node, dirs: Dirs) -> None:
    (dirs.conf / "101.conf").mkdir(parents=True)
    with pytest.raises(ConfigFileError, match="101.conf"):
        node.set("101", ["192.0.2.1"], save=True)
    with pytest.raises(ConfigFileError, match="101.conf"):
        node.start("101")


def test_unwritable_config_changes_nothing(node: Node, dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config file is written to a temporary file before anything else changes."""
    started(node, "101")
    state_before = (dirs.run / "state.json").read_bytes()

    def full_disk(path: object, data: bytes, *args: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("venetfilter.lifecycle.node.prepare_write", full_disk)
    with pytest.raises(ConfigFileError, match="No space left on device") as info:
        node.set("101", ["192.0.2.1"], save=True)
    assert info.value.path == dirs.conf / "101.conf" and info.value.exit_code == 3
    assert (dirs.run / "state.json").read_bytes() == state_before and live(node, "101") == []
    with pytest.raises(ConfigFileError):  # stopped: the same
        node.set("102", ["192.0.2.2"], save=True)
    assert not (dirs.conf / "102.conf").exists()


def test_state_file_matches_the_contract(node: Node, dirs: Dirs) -> None:
    node.set("101", ["192.0.2.1/24", "2001:db8::1"], save=True)
    result = node.start("101", netns="/run/netns/ct101")
    document = json.loads((dirs.run / "state.json").read_text())
    assert document == {
        "generation": result.generation,
        "containers": {
            "101": {
                "phase": "running", "link": "vnf101", "ifindex": 1001, "addresses": ["192.0.2.1/24", "2001:db8::1"],
                "netns": "/run/netns/ct101", "netns_created": False, "host_netns": None, "loopback_raised": False,
                "loopback_address_added": False, "neighbour_devs": "all",
            }
        },
    }
    assert stat.S_IMODE(os.stat(dirs.run / "state.json").st_mode) == 0o600


def test_defaults_come_from_the_environment(tmp_path: Path) -> None:
    node = dry_node()
    assert node.conf_dir == tmp_path / "default-conf" and node.run_dir == tmp_path / "default-run"
    node.set("101", ["192.0.2.1"], save=True)
    assert (tmp_path / "default-conf" / "101.conf").exists()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), 3600.5])
def test_notify_timeout_must_be_positive(dirs: Dirs, timeout: float) -> None:
    with pytest.raises(ValueError, match="notify timeout"):
        Node(dirs.conf, dirs.run, dry=True, notify_timeout=timeout)
    assert not dirs.conf.exists() and not dirs.run.exists()


def test_runtime_change_stays_when_the_file_cannot_be_renamed(
    dirs: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the last step can fail after the change is in force: the worker has been told, the
    config file is the old one; saving again completes the job."""
    node = notifying_node(dirs.conf, dirs.run, notify_timeout=0.5)
    started(node, "101")
    conf_before = (dirs.conf / "101.conf").read_bytes()
    real_replace = os.replace

    def no_rename_of_the_config(src: str, dst: str) -> None:
        if str(dst).endswith("101.conf"):
            raise OSError(5, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", no_rename_of_the_config)
    with WorkerStub(dirs.run) as stub, pytest.raises(OSError, match="Input/output error"):
        node.set("101", ["192.0.2.1"], save=True)
    assert stub.requests == [b"reload\n"]
    assert live(node, "101") == ["192.0.2.1"] and (dirs.conf / "101.conf").read_bytes() == conf_before
    assert tmp_files(dirs.conf) == []
    monkeypatch.setattr(os, "replace", real_replace)
    node.set("101", ["192.0.2.1"], save=True)
    assert saved(node, "101") == ["192.0.2.1"]
