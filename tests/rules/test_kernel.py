"""The table in a real kernel (a namespace of the test's own): installed, read back, synced, guarded."""

from __future__ import annotations

import json
import subprocess

import pytest

from venetfilter.netns import run_in_netns
from venetfilter.rules.links import dump_links
from venetfilter.rules import (
    Guard,
    Layout,
    QueueSpec,
    RulesError,
    fingerprint,
    install,
    installed_queue,
    installed_layout,
    our_links,
    read_elements,
    remove,
    sync,
    table_exists,
    update,
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
    found = install(Layout("vnf", "queue", queue=spec), {(4, i, "192.0.2.1"), (6, i, "2001:db8::1")}, ns)
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
    install(Layout("vnf", "queue"), {(4, i, "192.0.2.1"), (4, i, "192.0.2.2")}, ns)
    seen = []
    changes = sync({(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}, ns,
                   between=lambda: seen.append(set(read_elements(ns))))
    assert seen == [{(4, i, "192.0.2.2")}]  # the stale one gone, the new one not yet there
    assert changes.removed == {(4, i, "192.0.2.1")} and changes.added == {(4, i, "192.0.2.3")}
    assert set(read_elements(ns)) == {(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}
    assert not sync({(4, i, "192.0.2.2"), (4, i, "192.0.2.3")}, ns)


@pytest.mark.parametrize("mode", ["default", "queue"])
def test_elements_of_a_vanished_link_are_read_by_index(ns, mode) -> None:
    i = index(ns)
    install(Layout("vnf", mode), {(0, i, ""), (4, i, "192.0.2.1")}, ns)
    subprocess.run(["ip", "-n", ns, "link", "del", "vnf1"], check=True)
    assert set(read_elements(ns)) == {(0, i, ""), (4, i, "192.0.2.1")}


def test_default_mode_reads_back_its_settings_and_counts_per_address(ns) -> None:
    i = index(ns)
    install(Layout("vnf", queue=QueueSpec(9), judge_rate=50), {(0, i, ""), (4, i, "192.0.2.1")}, ns,
            {(4, i, "192.0.2.1"): (3, 300)})
    assert installed_layout("vnf", ns) == Layout("vnf", queue=QueueSpec(9), judge_rate=50)
    assert read_elements(ns)[(4, i, "192.0.2.1")] == (3, 300)
    assert installed_queue(ns) is None


def test_default_mode_update_follows_links_and_keeps_counters(ns) -> None:
    i = index(ns)
    install(Layout("vnf"), {(0, i, ""), (4, i, "192.0.2.1")}, ns, {(4, i, "192.0.2.1"): (3, 300)})
    subprocess.run(["ip", "-n", ns, "link", "add", "vnf2", "type", "veth", "peer", "name", "x2"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "vnf1", "name", "renamed"], check=True)
    installed = update({(0, i, ""), (4, i, "192.0.2.1"), (4, i, "192.0.2.2")}, "vnf", ns)
    assert fingerprint(ns) == installed
    listing = nft(ns, "list", "table", "netdev", "venetfilter")
    assert 'device "renamed"' in listing  # a registered link is followed under any name
    two = index(ns, "vnf2")
    assert f"chain in_{two} {{" in listing  # a link of ours the table does not know: refused whole
    assert read_elements(ns)[(4, i, "192.0.2.1")] == (3, 300)
    assert set(read_elements(ns)) == {(0, i, ""), (0, two, ""), (4, i, "192.0.2.1"), (4, i, "192.0.2.2")}


def test_update_needs_a_table(ns) -> None:
    with pytest.raises(RulesError, match="no table"):
        update(set(), "vnf", ns)


@pytest.mark.parametrize(
    ("mode", "tamper"),
    [
        ("queue", "flush ruleset"),
        ("queue", "delete table inet venetfilter"),
        ("queue", "add table inet venetfilter { flags dormant; }"),
        ("queue", "insert rule inet venetfilter leaving accept"),
        ("queue", "flush chain inet venetfilter judge"),
        ("queue", "delete chain inet venetfilter judge"),  # refused while jumped to: nothing changes
        ("queue", "add rule inet venetfilter judge accept"),
        ("queue", "delete set inet venetfilter own6"),  # refused while used: nothing changes
        ("default", "flush ruleset"),
        ("default", "delete table netdev venetfilter"),
        ("default", "add table netdev venetfilter { flags dormant; }"),
        ("default", "insert rule netdev venetfilter in_{i} accept"),
        ("default", "flush chain netdev venetfilter in_{i}"),
        ("default", "delete chain netdev venetfilter out_{i}"),
        ("default", "insert rule netdev venetfilter refused_in accept"),
        ("default", "delete chain netdev venetfilter refused_in"),  # refused while jumped to: nothing changes
        ("default", "add chain netdev venetfilter in_{i} { policy drop; }"),
    ],
)
def test_guard_puts_back_what_another_tool_changed(ns, mode, tamper) -> None:
    i = index(ns)
    wanted = {(0, i, ""), (4, i, "192.0.2.1")}
    guard = Guard(Layout("vnf", mode), lambda: wanted, ns)
    guard.install()
    expected = fingerprint(ns)
    assert guard.check() == []
    changed = subprocess.run(["ip", "netns", "exec", ns, "nft", tamper.replace("{i}", str(i))], capture_output=True).returncode == 0
    problems = guard.check()
    assert bool(problems) == changed
    assert fingerprint(ns) == expected and set(read_elements(ns)) == wanted
    assert guard.counters.tables_restored == (1 if changed else 0)


def test_guard_repairs_elements(ns) -> None:
    i = index(ns)
    wanted = {(4, i, "192.0.2.1"), (6, i, "2001:db8::1")}
    guard = Guard(Layout("vnf", "queue"), lambda: wanted, ns)
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


@pytest.mark.parametrize("mode", ["default", "queue"])
def test_guard_sees_no_change_in_what_the_kernel_counts(ns, mode) -> None:
    """Counters and the elements the kernel adds to the dynamic sets (per-link rates) are not
    changes: refused packets on the link, then someone else's transaction elsewhere, and the guard
    finds nothing to restore."""
    i = index(ns)
    guard = Guard(Layout("vnf", mode), lambda: {(0, i, ""), (4, i, "192.0.2.1")}, ns)
    guard.install()  # before the link is up: nothing counted yet
    before = nft(ns, "list", "ruleset")
    for command in (["link", "set", "vnf1", "up"], ["link", "set", "x1", "up"],
                    ["addr", "add", "192.0.2.7/32", "dev", "x1"], ["route", "add", "192.0.2.200/32", "dev", "x1"]):
        subprocess.run(["ip", "-n", ns, *command], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.05", "-W", "0.2", "192.0.2.200"],
                   capture_output=True)
    nft(ns, "add", "table", "inet", "someone_else")  # someone else's transaction
    if mode == "default":
        counted = nft(ns, "list", "set", "netdev", "venetfilter", "judge_rate")
        assert '"vnf1"' in counted and before != nft(ns, "list", "ruleset")  # control: the kernel did count
    assert guard.check() == [] and guard.counters.full_checks == 1
    assert guard.counters.tables_restored == 0


def test_default_mode_update_touches_only_the_links_that_changed(ns) -> None:
    subprocess.run(["ip", "-n", ns, "link", "add", "vnf2", "type", "veth", "peer", "name", "x2"], check=True)
    one, two = index(ns), index(ns, "vnf2")
    wanted = {(0, one, ""), (4, one, "192.0.2.1"), (0, two, ""), (4, two, "192.0.2.2")}
    install(Layout("vnf"), wanted, ns, {(4, one, "192.0.2.1"): (3, 300), (4, two, "192.0.2.2"): (5, 500)})

    def handles() -> dict[str, str]:
        listing = nft(ns, "-a", "list", "table", "netdev", "venetfilter")
        return {line.split()[1]: line.split("# handle ")[1] for line in listing.splitlines()
                if line.strip().startswith("chain ")}

    before = handles()
    assert update(wanted, "vnf", ns) == fingerprint(ns) and handles() == before  # nothing to do: nothing done
    update(wanted - {(4, two, "192.0.2.2")} | {(6, two, "2001:db8::2")}, "vnf", ns)
    after = handles()
    assert after[f"in_{one}"] == before[f"in_{one}"] and after[f"out_{one}"] == before[f"out_{one}"]
    assert after[f"in_{two}"] != before[f"in_{two}"]  # replaced, with what it had counted
    assert read_elements(ns) == {(0, one, ""): (0, 0), (4, one, "192.0.2.1"): (3, 300), (0, two, ""): (0, 0),
                                 (6, two, "2001:db8::2"): (0, 0)}
    update({(0, one, ""), (4, one, "192.0.2.1")}, "vnf", ns)  # 2 gone from the table: its chains refuse all
    assert "192.0.2" not in nft(ns, "list", "chain", "netdev", "venetfilter", f"in_{two}")
    subprocess.run(["ip", "-n", ns, "link", "del", "vnf2"], check=True)
    update({(0, one, ""), (4, one, "192.0.2.1")}, "vnf", ns)  # and once the link is gone, no chains
    assert set(handles()) == {"refused_in", "refused_out", f"in_{one}", f"out_{one}"}


def test_links_are_read_with_their_groups(ns) -> None:
    subprocess.run(["ip", "-n", ns, "link", "add", "ct9", "group", "7761510", "type", "veth", "peer", "name", "y9"],
                   check=True)
    listed = json.loads(subprocess.run(["ip", "-n", ns, "-j", "-d", "link", "show"], check=True, capture_output=True,
                                       text=True).stdout)
    found = run_in_netns(ns, dump_links)
    assert {(link.ifindex, link.name) for link in found} == {(item["ifindex"], item["ifname"]) for item in listed}
    assert {link.name for link in found if link.group == 7761510} == {"ct9"}
    ours = run_in_netns(ns, lambda: our_links("vnf"))
    assert sorted(ours.values()) == ["ct9", "vnf1"]  # named with the prefix, or in the group


def test_default_mode_puts_many_addresses_in_a_set_of_the_link(ns) -> None:
    """More addresses than compares: one set lookup per packet, element counters, and the same
    guarantees (updates touch only what changed, the guard sees a foreign element)."""
    i = index(ns)
    many = {(4, i, f"192.0.2.{n}") for n in range(1, 9)}
    wanted = {(0, i, ""), (6, i, "2001:db8::1"), *many}
    guard = Guard(Layout("vnf"), lambda: wanted, ns)
    install(Layout("vnf"), wanted, ns, {(4, i, "192.0.2.8"): (7, 700)})
    guard.install()
    chain = nft(ns, "list", "chain", "netdev", "venetfilter", f"in_{i}")
    assert f"ip saddr @own4_{i} accept" in chain and "ip6 saddr 2001:db8::1 counter" in chain
    assert read_elements(ns)[(4, i, "192.0.2.8")] == (7, 700)  # carried over by Guard.install too
    assert set(read_elements(ns)) == wanted
    mac = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/vnf1/address"], check=True,
                         capture_output=True, text=True).stdout.strip()
    for command in (["link", "set", "vnf1", "up"], ["link", "set", "x1", "up"],
                    ["addr", "add", "192.0.2.7/32", "dev", "x1"],
                    ["route", "add", "192.0.2.200/32", "dev", "x1", "src", "192.0.2.7"],
                    ["neigh", "add", "192.0.2.200", "lladdr", mac, "dev", "x1"]):
        subprocess.run(["ip", "-n", ns, *command], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.05", "-W", "0.1", "192.0.2.200"],
                   capture_output=True)
    assert read_elements(ns)[(4, i, "192.0.2.7")][0] == 3  # the set matched the packets from its element
    before = fingerprint(ns)
    assert update(wanted, "vnf", ns) == before  # the listing and our rendering agree: nothing to do
    nft(ns, "add", "element", "netdev", "venetfilter", f"own4_{i}", "{ 192.0.2.99 }")
    assert guard.check() and guard.counters.tables_restored == 1
    assert set(read_elements(ns)) == wanted
    fewer = wanted - {(4, i, f"192.0.2.{n}") for n in range(3, 9)}
    update(fewer, "vnf", ns)  # back to compares: the set goes with the chains that used it
    listing = nft(ns, "list", "table", "netdev", "venetfilter")
    assert f"own4_{i}" not in listing and "ip saddr 192.0.2.2 counter" in listing
