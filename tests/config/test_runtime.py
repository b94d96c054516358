"""Runtime state: state.json, its generation, and what the verdict core is fed from it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from venetfilter.config import (
    RunningContainer,
    RuntimeState,
    load_state,
    parse_address_tokens,
    save_state,
    table_entries,
)
from venetfilter.config.runtime import PHASES, check_link, state_path
from venetfilter.core import AddressTable
from venetfilter.errors import CorruptStateError, InvalidContainerError, LinkInUseError
from venetfilter.lifecycle import Node


def running(ctid: str, ifindex: int, addresses: str = "", **fields: object) -> RunningContainer:
    return RunningContainer(ctid, ifindex, tuple(parse_address_tokens(addresses)), **fields)  # type: ignore[arg-type]


def test_missing_file_means_nothing_runs(tmp_path: Path) -> None:
    assert load_state(tmp_path / "run") == RuntimeState(0, {})
    assert table_entries(tmp_path / "run") == {}


def test_records_and_generations(tmp_path: Path) -> None:
    run = tmp_path / "run"
    s1 = RuntimeState().with_container(running("101", 7, "192.0.2.1 2001:db8::1/64", netns="ct101", link="vnf101"))
    s2 = s1.with_container(
        running("web", 8, "192.0.2.2", link="veth-web", phase="running", host_netns="node", netns_created=True,
                loopback_raised=True, loopback_address_added=True, neighbour_devs="list:eth0 eth1")
    )
    assert (s1.generation, s2.generation) == (1, 2) and s1.containers.keys() == {"101"}  # s1 unchanged
    save_state(run, s2)
    document = json.loads(state_path(run).read_text())
    assert document == {
        "generation": 2,
        "containers": {
            "101": {"phase": "running", "ifindex": 7, "addresses": ["192.0.2.1", "2001:db8::1/64"], "netns": "ct101",
                    "link": "vnf101", "netns_created": False, "host_netns": None, "loopback_raised": False,
                    "loopback_address_added": False, "neighbour_devs": "all"},
            "web": {"phase": "running", "ifindex": 8, "addresses": ["192.0.2.2"], "netns": None, "link": "veth-web",
                    "netns_created": True, "host_netns": "node", "loopback_raised": True,
                    "loopback_address_added": True, "neighbour_devs": "list:eth0 eth1"},
        },
    }
    assert stat.S_IMODE(os.stat(state_path(run)).st_mode) == 0o600
    assert load_state(run) == s2
    assert table_entries(run) == {"101": (7, ["192.0.2.1", "2001:db8::1"]), "web": (8, ["192.0.2.2"])}
    s3 = s2.with_container(running("web", 8, "192.0.2.3/24", link="veth-web"))
    s4 = s3.without_container("101")
    assert (s3.generation, s4.generation) == (3, 4)
    save_state(run, s4)
    assert table_entries(load_state(run)) == {"web": (8, ["192.0.2.3"])}


def test_a_record_without_a_link_is_not_in_the_table(tmp_path: Path) -> None:
    """ifindex 0 means "no link yet": allowed only while starting (or stopping), never passed on."""
    for phase in ("starting", "stopping"):
        state = RuntimeState().with_container(running("101", 0, "192.0.2.1", phase=phase)).with_container(
            running("102", 0, "192.0.2.2", phase=phase)
        ).with_container(running("103", 9, "192.0.2.3"))
        save_state(tmp_path, state)
        assert load_state(tmp_path) == state
        assert table_entries(tmp_path) == {"103": (9, ["192.0.2.3"])}
    assert PHASES == ("starting", "running", "stopping")


def test_old_records_load_with_defaults(tmp_path: Path) -> None:
    """A record of the four original keys is a running container that start did not create."""
    state_path(tmp_path).write_text(json.dumps(
        {"generation": 3, "containers": {"101": {"ifindex": 7, "addresses": ["192.0.2.1"], "netns": None, "link": "vnf101"}}}
    ))
    assert load_state(tmp_path) == RuntimeState(3, {"101": running("101", 7, "192.0.2.1", link="vnf101")})


def test_entries_feed_the_address_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    state = RuntimeState().with_container(running("101", 7, "192.0.2.1/24 2001:DB8::1/64"))
    save_state(run, state.with_container(running("102", 9, "192.0.2.2")))
    table = AddressTable()
    table.load(table_entries(run))
    assert table.owner("192.0.2.1") == "101" and table.owner("2001:db8::1") == "101"
    assert table.owner("192.0.2.2") == "102" and len(table) == 3


def test_check_link(tmp_path: Path) -> None:
    state = RuntimeState().with_container(running("101", 7))
    assert check_link(state, "101", 7) == 7  # its own link
    assert check_link(state, "102", 8) == 8
    with pytest.raises(LinkInUseError) as info:
        check_link(state, "102", 7)
    assert info.value.owner == "101" and info.value.exit_code == 21
    for ifindex in (0, -1, 2**32, "7", 7.0, True):
        with pytest.raises(InvalidContainerError):
            check_link(state, "102", ifindex)


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
    "no link while running": json.dumps({"generation": 1, "containers": {"101": entry(ifindex=0, phase="running")}}).encode(),
    "huge ifindex": json.dumps({"generation": 1, "containers": {"101": entry(ifindex=2**32)}}).encode(),
    "bad phase": json.dumps({"generation": 1, "containers": {"101": entry(phase="stopped")}}).encode(),
    "unknown key": json.dumps({"generation": 1, "containers": {"101": entry(pid=5)}}).encode(),
    "bad host netns": json.dumps({"generation": 1, "containers": {"101": entry(host_netns=1)}}).encode(),
    "string boolean": json.dumps({"generation": 1, "containers": {"101": entry(netns_created="yes")}}).encode(),
    "empty neighbour devs": json.dumps({"generation": 1, "containers": {"101": entry(neighbour_devs="")}}).encode(),
    "unspecified address": json.dumps({"generation": 1, "containers": {"101": entry(addresses=["0.0.0.0"])}}).encode(),
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
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "103.conf").write_text('IP_ADDRESS="192.0.2.103"\n')
    node = Node(tmp_path / "conf", tmp_path, dry=True)
    for change in (
        lambda: node.start("103"), lambda: node.stop("103"), lambda: node.set("103", ["192.0.2.3"]),
        lambda: node.set("103", ["192.0.2.3"], save=True),
    ):
        with pytest.raises(CorruptStateError):
            change()  # and it is never overwritten (nor taken as empty) by a change
    assert tmp_path.joinpath("state.json").read_bytes() == CORRUPT[name]
    assert (tmp_path / "conf" / "103.conf").read_text() == 'IP_ADDRESS="192.0.2.103"\n'


def test_unreadable_state_is_an_error(tmp_path: Path) -> None:
    tmp_path.joinpath("state.json").mkdir()
    with pytest.raises(CorruptStateError, match="cannot read"):
        load_state(tmp_path)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    state = RuntimeState(41).with_container(running("101", 7, "192.0.2.1/24 2001:db8::1", netns="/run/netns/x"))
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state and state.generation == 42
    save_state(tmp_path, load_state(tmp_path))
    assert load_state(tmp_path) == state
