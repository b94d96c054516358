"""The table in a real kernel (a namespace of the test's own): installed, read back, synced, guarded."""

from __future__ import annotations

import subprocess

import pytest

from venetfilter.netns import run_in_netns
from venetfilter.rules import (
    Guard,
    Layout,
    QueueSpec,
    RulesError,
    fingerprint,
    install,
    installed_queue,
    read_elements,
    remove,
    sync,
    table_exists,
)

pytestmark = pytest.mark.netns


@pytest.fixture
def ns(make_netns):
    name = make_netns("vfr")
    subprocess.run(["ip", "-n", name, "link", "add", "vnf1", "type", "veth", "peer", "name", "x1"], check=True)
    return name


def nft(ns: str, *command: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *command], check=True, capture_output=True, text=True).stdout


def index(ns: str, name: str = "vnf1") -> int:
    return int(subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{name}/ifindex"],
                              check=True, capture_output=True, text=True).stdout)


def test_install_read_back_remove(ns) -> None:
    i = index(ns)
    spec = QueueSpec(3, (3, 4), cpu_fanout=True, fail_open=True)
    found = install(Layout("vnf", queue=spec), {(4, i, "192.0.2.1"), (6, i, "2001:db8::1")}, ns)
    assert fingerprint(ns) == found
    assert installed_queue(ns) == spec
    assert set(read_elements(ns)) == {(4, i, "192.0.2.1"), (6, i, "2001:db8::1")}
    assert "queue num 3-4 bypass,fanout" in nft(ns, "list", "chain", "inet", "venetfilter", "judge")
    assert remove(ns) is True and remove(ns) is False
    assert not table_exists(ns) and fingerprint(ns) is None
    with pytest.raises(RulesError):
        read_elements(ns)


def test_other_tables_are_not_touched(ns) -> None:
    nft(ns, "add", "table", "inet", "theirs")
    install(Layout("vnf"), (), ns)
    install(Layout("vnf", "queue"), (), ns)
    remove(ns)
    assert "table inet theirs" in nft(ns, "list", "tables")


def test_sync_removes_then_swaps_then_adds(ns) -> None:
    i = index(ns)
    install(Layout("vnf"), {(4, i, "192.0.2.1"), (4, i, "192.0.2.2")}, ns)
    seen = []
    changes = sync({(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}, ns,
                   between=lambda: seen.append(set(read_elements(ns))))
    assert seen == [{(4, i, "192.0.2.2")}]  # the stale one gone, the new one not yet there
    assert changes.removed == {(4, i, "192.0.2.1")} and changes.added == {(4, i, "192.0.2.3")}
    assert set(read_elements(ns)) == {(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}
    assert not sync({(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}, ns)


def test_elements_of_a_vanished_link_are_read_by_index(ns) -> None:
    i = index(ns)
    install(Layout("vnf"), {(4, i, "192.0.2.1")}, ns)
    subprocess.run(["ip", "-n", ns, "link", "del", "vnf1"], check=True)
    assert set(read_elements(ns)) == {(4, i, "192.0.2.1")}


@pytest.mark.parametrize(
    "tamper",
    [
        "flush ruleset",
        "delete table inet venetfilter",
        "add table inet venetfilter { flags dormant; }",
        "insert rule inet venetfilter leaving accept",
        "flush chain inet venetfilter judge",
        "delete chain inet venetfilter judge",  # refused while jumped to: nothing changes
        "add rule inet venetfilter judge accept",
        "delete set inet venetfilter own6",  # refused while used: nothing changes
    ],
)
def test_guard_puts_back_what_another_tool_changed(ns, tamper) -> None:
    i = index(ns)
    wanted = {(4, i, "192.0.2.1")}
    guard = Guard(Layout("vnf"), lambda: wanted, ns)
    guard.install()
    expected = fingerprint(ns)
    assert guard.check() == []
    changed = subprocess.run(["ip", "netns", "exec", ns, "nft", tamper], capture_output=True).returncode == 0
    problems = guard.check()
    assert bool(problems) == changed
    assert fingerprint(ns) == expected and set(read_elements(ns)) == wanted
    assert guard.counters.tables_restored == (1 if changed else 0)


def test_guard_repairs_elements(ns) -> None:
    i = index(ns)
    wanted = {(4, i, "192.0.2.1"), (6, i, "2001:db8::1")}
    guard = Guard(Layout("vnf"), lambda: wanted, ns)
    guard.install()
    nft(ns, "delete", "element", "inet", "venetfilter", "own4", "{ vnf1 . 192.0.2.1 }")
    nft(ns, "add", "element", "inet", "venetfilter", "own4", "{ vnf1 . 192.0.2.99 }")
    assert guard.check() and guard.counters.elements_restored == 1
    assert set(read_elements(ns)) == wanted


def test_functions_act_in_the_given_namespace_only(ns) -> None:
    install(Layout("vnf"), (), ns)
    assert run_in_netns(ns, table_exists)
    here = subprocess.run(["nft", "list", "table", "inet", "venetfilter"], capture_output=True)
    assert here.returncode != 0  # not in the test runner's namespace
