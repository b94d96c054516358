"""Runtime state: state.json, its generation, and what the verdict core is fed from it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from venetfilter.config import (
    RuntimeState,
    load_state,
    mark_running,
    mark_stopped,
    parse_address_tokens,
    table_entries,
)
from venetfilter.config.runtime import save_state, set_runtime_addresses, state_path
from venetfilter.core import AddressTable
from venetfilter.errors import (
    CorruptStateError,
    InvalidContainerError,
    LinkInUseError,
    NotRunningError,
)


def test_missing_file_means_nothing_runs(tmp_path: Path) -> None:
    assert load_state(tmp_path / "run") == RuntimeState(0, {})
    assert table_entries(tmp_path / "run") == {}


def test_mark_running_and_stopped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    g1 = mark_running(run, "101", 7, parse_address_tokens("192.0.2.1 2001:db8::1/64"), netns="ct101")
    g2 = mark_running(run, "web", 8, parse_address_tokens("192.0.2.2"), link="veth-web")
    assert (g1, g2) == (1, 2)
    document = json.loads(state_path(run).read_text())
    assert document == {
        "generation": 2,
        "containers": {
            "101": {"ifindex": 7, "addresses": ["192.0.2.1", "2001:db8::1/64"], "netns": "ct101", "link": "vnf101"},
            "web": {"ifindex": 8, "addresses": ["192.0.2.2"], "netns": None, "link": "veth-web"},
        },
    }
    assert stat.S_IMODE(os.stat(state_path(run)).st_mode) == 0o600
    assert table_entries(run) == {"101": (7, ["192.0.2.1", "2001:db8::1"]), "web": (8, ["192.0.2.2"])}
    assert set_runtime_addresses(run, "web", parse_address_tokens("192.0.2.3/24")) == 3
    assert mark_stopped(run, "101") == 4
    assert mark_stopped(run, "101") == 4  # not running: no change
    assert table_entries(load_state(run)) == {"web": (8, ["192.0.2.3"])}
    with pytest.raises(NotRunningError):
        set_runtime_addresses(run, "101", [])


def test_entries_feed_the_address_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    mark_running(run, "101", 7, parse_address_tokens("192.0.2.1/24 2001:DB8::1/64"))
    mark_running(run, "102", 9, parse_address_tokens("192.0.2.2"))
    table = AddressTable()
    table.load(table_entries(run))
    assert table.owner("192.0.2.1") == "101" and table.owner("2001:db8::1") == "101"
    assert table.owner("192.0.2.2") == "102" and len(table) == 3


def test_bad_arguments(tmp_path: Path) -> None:
    run = tmp_path / "run"
    mark_running(run, "101", 7)
    with pytest.raises(LinkInUseError):
        mark_running(run, "102", 7)
    for ifindex in (0, -1, 2**32, "7", 7.0, True):
        with pytest.raises(InvalidContainerError):
            mark_running(run, "102", ifindex)  # type: ignore[arg-type]
    with pytest.raises(InvalidContainerError):
        mark_running(run, "../x", 8)
    assert load_state(run).generation == 1


def entry(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"ifindex": 7, "addresses": ["192.0.2.1"], "netns": None, "link": "vnf101"}
    base.update(changes)
    return base


CORRUPT = {
    "empty": b"",
    "truncated": b'{"generation": 3, "containers": {"101": {"ifindex": 7,',
    "not json": b"hello",
    "not utf-8": b'{"generation": 1, "containers": {"\xff": {}}}',
    "a list": b"[]",
    "no generation": json.dumps({"containers": {}}).encode(),
    "extra key": json.dumps({"generation": 1, "containers": {}, "x": 1}).encode(),
    "negative generation": json.dumps({"generation": -1, "containers": {}}).encode(),
    "bool generation": json.dumps({"generation": True, "containers": {}}).encode(),
    "containers list": json.dumps({"generation": 1, "containers": []}).encode(),
    "bad ctid": json.dumps({"generation": 1, "containers": {"../x": entry()}}).encode(),
    "missing key": json.dumps({"generation": 1, "containers": {"101": {"ifindex": 7}}}).encode(),
    "bad ifindex": json.dumps({"generation": 1, "containers": {"101": entry(ifindex=0)}}).encode(),
    "string ifindex": json.dumps({"generation": 1, "containers": {"101": entry(ifindex="7")}}).encode(),
    "bad address": json.dumps({"generation": 1, "containers": {"101": entry(addresses=["300.1.1.1"])}}).encode(),
    "not canonical": json.dumps({"generation": 1, "containers": {"101": entry(addresses=["2001:DB8::1"])}}).encode(),
    "address string": json.dumps({"generation": 1, "containers": {"101": entry(addresses="192.0.2.1")}}).encode(),
    "bad netns": json.dumps({"generation": 1, "containers": {"101": entry(netns=5)}}).encode(),
    "shared address": json.dumps(
        {"generation": 1, "containers": {"101": entry(), "102": entry(ifindex=8, link="vnf102")}}
    ).encode(),
    "shared link": json.dumps(
        {"generation": 1, "containers": {"101": entry(), "102": entry(addresses=[], link="vnf102")}}
    ).encode(),
    "duplicate address": json.dumps(
        {"generation": 1, "containers": {"101": entry(addresses=["192.0.2.1", "192.0.2.1/24"])}}
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_state_is_an_error_never_empty(tmp_path: Path, name: str) -> None:
    tmp_path.joinpath("state.json").write_bytes(CORRUPT[name])
    with pytest.raises(CorruptStateError, match="corrupt runtime state .*state.json"):
        load_state(tmp_path)
    with pytest.raises(CorruptStateError):
        mark_running(tmp_path, "103", 11)  # and it is never overwritten by a change
    assert tmp_path.joinpath("state.json").read_bytes() == CORRUPT[name]


def test_unreadable_state_is_an_error(tmp_path: Path) -> None:
    tmp_path.joinpath("state.json").mkdir()
    with pytest.raises(CorruptStateError, match="cannot read"):
        load_state(tmp_path)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    mark_running(tmp_path, "101", 7, parse_address_tokens("192.0.2.1/24 2001:db8::1"), netns="/run/netns/x")
    state = load_state(tmp_path)
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
