"""vzctl ``set`` semantics through the library API, plus start/stop and the live-apply hook."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from venetfilter.config import (
    NOT_SAVED_WARNING,
    ConfigAddress,
    ContainerManager,
    load_state,
)
from venetfilter.errors import (
    AddressInUseError,
    ApplyError,
    ConfigFileError,
    CorruptStateError,
    InvalidAddressError,
    InvalidContainerError,
    NotRunningError,
    UnknownContainerError,
)

from .conftest import FIXTURES, Dirs
from .worker_stub import WorkerStub


def saved(manager: ContainerManager, ctid: str) -> list[str] | None:
    config = manager.read_config(ctid)
    return None if config is None else [str(a) for a in config.addresses]


def live(manager: ContainerManager, ctid: str) -> list[str] | None:
    running = manager.runtime_state().containers.get(ctid)
    return None if running is None else [str(a) for a in running.addresses]


class Recorder:
    """An applier that records its calls and what the runtime state was at that moment."""

    def __init__(self, manager: ContainerManager, fail: bool = False) -> None:
        self.manager, self.fail = manager, fail
        self.calls: list[tuple[str, list[str], list[str], list[str] | None]] = []

    def apply(self, ctid: str, added: list[ConfigAddress], removed: list[ConfigAddress]) -> None:
        self.calls.append((ctid, [str(a) for a in added], [str(a) for a in removed], live(self.manager, ctid)))
        if self.fail:
            raise OSError(99, "Cannot assign requested address")


def test_stopped_without_save_is_refused(manager: ContainerManager, dirs: Dirs) -> None:
    with pytest.raises(NotRunningError, match="container 101 is not running"):
        manager.set("101", ["192.0.2.1"])
    assert not (dirs.conf / "101.conf").exists() and not (dirs.run / "state.json").exists()


def test_stopped_with_save_changes_only_the_file(manager: ContainerManager, dirs: Dirs) -> None:
    result = manager.set("101", ["192.0.2.1,2001:DB8::1/64"], save=True)
    assert saved(manager, "101") == ["192.0.2.1", "2001:db8::1/64"]
    assert [str(a) for a in result.saved or ()] == ["192.0.2.1", "2001:db8::1/64"]
    assert result.runtime is None and result.generation is None and result.warnings == ()
    assert not (dirs.run / "state.json").exists()
    assert stat.S_IMODE(os.stat(dirs.conf / "101.conf").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dirs.conf).st_mode) == 0o700


def test_running_without_save_changes_only_the_runtime(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    manager.start("101", 7)
    result = manager.set("101", ["192.0.2.2"])
    assert live(manager, "101") == ["192.0.2.1", "192.0.2.2"]
    assert saved(manager, "101") == ["192.0.2.1"]
    assert result.warnings == (NOT_SAVED_WARNING,) and result.generation == 2
    manager.stop("101")
    manager.start("101", 7)  # restart: the runtime-only change is gone
    assert live(manager, "101") == ["192.0.2.1"]


def test_running_with_save_edits_each_list_from_its_own_base(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    manager.start("101", 7)
    manager.set("101", ["192.0.2.2"])  # runtime only
    result = manager.set("101", ["192.0.2.3"], ["192.0.2.1"], save=True)
    assert live(manager, "101") == ["192.0.2.2", "192.0.2.3"]
    assert saved(manager, "101") == ["192.0.2.3"]
    assert result.warnings == ()


def test_deletes_come_before_adds(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1/24", "192.0.2.2"], save=True)
    manager.set("101", add=["192.0.2.1/16"], delete=["192.0.2.1"], save=True)  # changes the prefix
    assert saved(manager, "101") == ["192.0.2.2", "192.0.2.1/16"]
    manager.set("101", add=["192.0.2.9"], delete_all=True, save=True)
    assert saved(manager, "101") == ["192.0.2.9"]


def test_readding_and_deleting_absent_are_not_errors(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1/24"], save=True)
    manager.set("101", ["192.0.2.1", "192.0.2.1/8", "0.0.0.0", "::"], ["198.51.100.1"], save=True)
    assert saved(manager, "101") == ["192.0.2.1/24"]  # the address as stored, prefix kept


def test_delete_all_leaves_an_empty_line(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    manager.set("101", delete_all=True, save=True)
    assert (dirs.conf / "101.conf").read_bytes() == b'IP_ADDRESS=""\n'


def test_bad_values_change_nothing(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    before = (dirs.conf / "101.conf").read_bytes()
    with pytest.raises(InvalidAddressError, match="192.0.2.300"):
        manager.set("101", ["192.0.2.2", "192.0.2.300"], save=True)
    with pytest.raises(InvalidAddressError, match="zone"):
        manager.set("101", delete=["fe80::1%eth0"], save=True)
    with pytest.raises(InvalidContainerError):
        manager.set("../101", ["192.0.2.2"], save=True)
    assert (dirs.conf / "101.conf").read_bytes() == before
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]


def test_a_plain_string_is_one_value(manager: ContainerManager) -> None:
    manager.set("101", "192.0.2.1,192.0.2.2", save=True)
    assert saved(manager, "101") == ["192.0.2.1", "192.0.2.2"]


@pytest.mark.parametrize("other_running", [False, True])
@pytest.mark.parametrize("save", [False, True])
def test_address_owned_by_another_container(manager: ContainerManager, other_running: bool, save: bool) -> None:
    manager.set("102", ["2001:db8::5/64"], save=True)
    if other_running:
        manager.start("102", 8)
        manager.set("102", ["192.0.2.5"])  # runtime only: still owned
    manager.set("101", ["192.0.2.1"], save=True)
    manager.start("101", 7)
    for taken in (["2001:DB8::5"], ["192.0.2.5"] if other_running else ["2001:db8:0::5/128"]):
        with pytest.raises(AddressInUseError) as info:
            manager.set("101", ["192.0.2.9", *taken], save=save)
        assert info.value.owner == "102"
    assert live(manager, "101") == ["192.0.2.1"] and saved(manager, "101") == ["192.0.2.1"]


def test_address_in_use_names_the_address(manager: ContainerManager) -> None:
    manager.set("102", ["2001:db8::5/64"], save=True)
    with pytest.raises(AddressInUseError) as info:
        manager.set("101", ["2001:DB8:0::5"], save=True)
    assert (info.value.address, info.value.owner) == ("2001:db8::5", "102")


def test_address_freed_by_another_container_can_be_taken(manager: ContainerManager) -> None:
    manager.set("102", ["192.0.2.5"], save=True)
    manager.set("102", delete=["192.0.2.5"], save=True)
    manager.set("101", ["192.0.2.5"], save=True)
    assert saved(manager, "101") == ["192.0.2.5"]


def test_applier_runs_before_anything_is_saved(dirs: Dirs) -> None:
    manager = ContainerManager(dirs.conf, dirs.run, notify=False)
    recorder = Recorder(manager)
    manager.applier = recorder
    manager.set("101", ["192.0.2.1", "192.0.2.2"], save=True)
    manager.start("101", 7)
    assert recorder.calls == []  # stopped container / start: no live change through the applier
    manager.set("101", ["192.0.2.3/24", "192.0.2.1"], ["192.0.2.2", "198.51.100.1"], save=True)
    assert recorder.calls == [("101", ["192.0.2.3/24"], ["192.0.2.2"], ["192.0.2.1", "192.0.2.2"])]
    manager.set("101", ["192.0.2.1"])  # nothing changes live: no call
    assert len(recorder.calls) == 1


def test_failing_applier_saves_nothing(dirs: Dirs) -> None:
    manager = ContainerManager(dirs.conf, dirs.run, notify=False)
    manager.set("101", ["192.0.2.1"], save=True)
    manager.start("101", 7)
    state_before = (dirs.run / "state.json").read_bytes()
    conf_before = (dirs.conf / "101.conf").read_bytes()
    manager.applier = Recorder(manager, fail=True)
    with pytest.raises(ApplyError, match="Cannot assign requested address") as info:
        manager.set("101", ["192.0.2.2"], save=True)
    assert isinstance(info.value.cause, OSError) and info.value.ctid == "101"
    assert (dirs.run / "state.json").read_bytes() == state_before
    assert (dirs.conf / "101.conf").read_bytes() == conf_before


def test_worker_is_notified_of_runtime_changes(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    with WorkerStub(dirs.run) as stub:
        manager.set("102", ["192.0.2.2"], save=True)  # no runtime change: no notification
        assert stub.requests == []
        started = manager.start("101", 7)
        changed = manager.set("101", ["192.0.2.3"])
        stopped = manager.stop("101")
    assert stub.requests == [b"reload\n"] * 3
    assert started.notified and changed.notified and stopped.notified
    assert changed.warnings == (NOT_SAVED_WARNING,)


def test_silent_worker_warns_and_the_change_stays(dirs: Dirs) -> None:
    manager = ContainerManager(dirs.conf, dirs.run, notify_timeout=0.2)
    manager.start("101", 7)
    with WorkerStub(dirs.run, "silent"):
        result = manager.set("101", ["192.0.2.1"])
    assert not result.notified
    assert any("did not confirm" in w for w in result.warnings)
    assert live(manager, "101") == ["192.0.2.1"]


def test_start_stop(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1/24"], save=True)
    result = manager.start("101", 7, netns="ct101")
    assert [str(a) for a in result.runtime or ()] == ["192.0.2.1/24"]
    running = manager.runtime_state().containers["101"]
    assert (running.ifindex, running.netns, running.link) == (7, "ct101", "vnf101")
    manager.start("102", 8)  # no config: runs without addresses
    assert live(manager, "102") == []
    manager.stop("101")
    with pytest.raises(NotRunningError):
        manager.stop("101")
    assert load_state(manager.run_dir).generation == 3


def test_start_refuses_an_address_running_elsewhere(manager: ContainerManager) -> None:
    manager.start("102", 8)
    manager.set("102", ["192.0.2.1"])
    manager.conf_dir.mkdir()
    (manager.conf_dir / "101.conf").write_text('IP_ADDRESS="192.0.2.1"\n')  # edited by hand
    with pytest.raises(AddressInUseError):
        manager.start("101", 7)
    assert "101" not in manager.runtime_state().containers


def test_info_and_containers(manager: ContainerManager) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    manager.set("20", ["192.0.2.20"], save=True)
    manager.set("web", ["2001:db8::80"], save=True)
    manager.start("20", 5)
    manager.start("ct-x", 6)
    (manager.conf_dir / "ve-vswap-256m.conf-sample").write_text("junk")
    (manager.conf_dir / "..conf").write_text("junk")
    infos = manager.containers()
    assert [i.ctid for i in infos] == ["20", "101", "ct-x", "web"]
    assert [(i.running, i.saved is None) for i in infos] == [(True, False), (False, False), (True, True), (False, False)]
    info = manager.info("20")
    assert info.running and [str(a) for a in info.saved or ()] == ["192.0.2.20"]
    with pytest.raises(UnknownContainerError):
        manager.info("999")


def test_config_warnings_are_reported(manager: ContainerManager, dirs: Dirs) -> None:
    dirs.conf.mkdir()
    (dirs.conf / "101.conf").write_text('oops\nIP_ADDRESS="192.0.2.1 bogus"\n')
    result = manager.set("101", ["192.0.2.2"], save=True)
    path = dirs.conf / "101.conf"
    assert result.warnings == (
        f"Warning at {path}:1: cannot parse line, ignored: oops",
        f'Warning at {path}:2: invalid value for IP_ADDRESS ("bogus"), skipped',
    )
    assert path.read_text() == 'oops\nIP_ADDRESS="192.0.2.1 192.0.2.2"\n'
    assert manager.info("101").warnings == (f"Warning at {path}:1: cannot parse line, ignored: oops",)


def test_openvz_file_is_used_as_is(manager: ContainerManager, dirs: Dirs) -> None:
    dirs.conf.mkdir()
    path = dirs.conf / "101.conf"
    shutil.copyfile(FIXTURES / "101.conf", path)
    os.chmod(path, 0o644)
    original = path.read_bytes()
    manager.set("101", ["198.51.100.1"], ["192.0.2.101"], save=True)
    new = path.read_bytes()
    diff = [(a, b) for a, b in zip(original.split(b"\n"), new.split(b"\n")) if a != b]
    assert diff == [(b'IP_ADDRESS="192.0.2.101 2001:db8:0:0::101/64"', b'IP_ADDRESS="2001:db8::101/64 198.51.100.1"')]
    assert len(original.split(b"\n")) == len(new.split(b"\n"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_unchanged_file_is_not_rewritten(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    path = dirs.conf / "101.conf"
    os.utime(path, (0, 0))
    manager.set("101", ["192.0.2.1"], save=True)
    assert os.stat(path).st_mtime == 0


def test_corrupt_state_stops_every_change(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1"], save=True)
    dirs.run.mkdir(exist_ok=True)
    (dirs.run / "state.json").write_text('{"generation": 1, "containers": {')
    with pytest.raises(CorruptStateError):
        manager.set("101", ["192.0.2.2"], save=True)
    assert saved(manager, "101") == ["192.0.2.1"]
    with pytest.raises(CorruptStateError):
        manager.containers()


def test_unreadable_config_is_an_error(manager: ContainerManager, dirs: Dirs) -> None:
    (dirs.conf / "101.conf").mkdir(parents=True)
    with pytest.raises(ConfigFileError, match="101.conf"):
        manager.set("101", ["192.0.2.1"], save=True)


def test_state_file_matches_the_contract(manager: ContainerManager, dirs: Dirs) -> None:
    manager.set("101", ["192.0.2.1/24", "2001:db8::1"], save=True)
    manager.start("101", 7, netns="/run/netns/ct101")
    document = json.loads((dirs.run / "state.json").read_text())
    assert document == {
        "generation": 1,
        "containers": {
            "101": {"ifindex": 7, "addresses": ["192.0.2.1/24", "2001:db8::1"], "netns": "/run/netns/ct101",
                    "link": "vnf101"}
        },
    }


def test_defaults_come_from_the_environment(tmp_path: Path) -> None:
    manager = ContainerManager()
    assert manager.conf_dir == tmp_path / "default-conf" and manager.run_dir == tmp_path / "default-run"
    manager.set("101", ["192.0.2.1"], save=True)
    assert (tmp_path / "default-conf" / "101.conf").exists()


def test_runtime_change_is_announced_even_if_the_file_cannot_be_written(
    manager: ContainerManager, dirs: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.start("101", 7)
    real_write = manager._write_config

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager, "_write_config", full_disk)
    with WorkerStub(dirs.run) as stub, pytest.raises(OSError, match="No space"):
        manager.set("101", ["192.0.2.1"], save=True)
    assert stub.requests == [b"reload\n"]
    assert live(manager, "101") == ["192.0.2.1"] and saved(manager, "101") is None
    monkeypatch.setattr(manager, "_write_config", real_write)
    manager.set("101", ["192.0.2.1"], save=True)  # saving again completes the job
    assert saved(manager, "101") == ["192.0.2.1"]
