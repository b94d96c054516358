"""Which uplinks get proxy entries: all, detect, or a list (vzctl's NEIGHBOUR_DEVS)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import IFF_NOARP

from venetfilter.errors import InvalidOptionError
from venetfilter.host import open_iproute, parse_neighbour_devs, start, stop
from venetfilter.host.neighbours import format_neighbour_devs, proxy_entries
from venetfilter.host.view import read_view

from .conftest import CT4, UPLINK, Lan, _veth_between, ip, link_up, snapshot

OTHER4 = "198.51.100.10"


@pytest.fixture
def node(lan: Lan, make_netns: Callable[[], str]) -> Lan:
    """The LAN node plus a second uplink (198.51.100.0/24) and links `all` must skip."""
    second = make_netns()
    _veth_between(lan.node, "uplink1", second, "eth0")
    link_up(lan.node, "uplink1", ("198.51.100.254", 24))
    link_up(second, "eth0", ("198.51.100.1", 24))
    with open_iproute(lan.node) as ipr:
        ipr.link("add", ifname="down0", kind="veth", peer="down0p")  # stays down
        ipr.link("add", ifname="noarp0", kind="veth", peer="noarp0p")
        ipr.link("add", ifname="ll0", kind="veth", peer="ll0p")  # up, link-local addresses only
        noarp = ipr.link_lookup(ifname="noarp0")[0]
        ipr.link("set", index=noarp, flags=IFF_NOARP, change=IFF_NOARP)
        ipr.addr("add", index=ipr.link_lookup(ifname="down0")[0], address="203.0.113.2", prefixlen=32)
    link_up(lan.node, "noarp0", ("203.0.113.1", 24))
    link_up(lan.node, "noarp0p")
    link_up(lan.node, "ll0", ("fe80::2", 64), ("169.254.0.2", 16))
    link_up(lan.node, "ll0p", ("fe80::3", 64))
    return lan


def _proxied(ns: str) -> set[tuple[str, str]]:
    with open_iproute(ns) as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        return {(str(a), names[i]) for a, i in proxy_entries(ipr)}


def test_all_selects_up_arp_interfaces_with_a_routable_address(node: Lan) -> None:
    with open_iproute(node.node) as ipr:
        ipr.link("add", ifname="ve-nspawn", kind="veth", peer="host0")  # another tool's container link
        ipr.addr("add", index=ipr.link_lookup(ifname="ve-nspawn")[0], address="192.168.9.1", prefixlen=24)
        ipr.link("set", index=ipr.link_lookup(ifname="ve-nspawn")[0], state="up")
    view = read_view(node.node)
    assert sorted(view.name(i) for i in view.uplinks()) == [UPLINK, "uplink1"]


@pytest.mark.parametrize(
    ("devs", "expected"),
    [
        ("all", {(CT4, UPLINK), (CT4, "uplink1"), (OTHER4, UPLINK), (OTHER4, "uplink1")}),
        ("detect", {(CT4, UPLINK), (OTHER4, "uplink1")}),
        ("list:uplink1", {(CT4, "uplink1"), (OTHER4, "uplink1")}),
    ],
)
def test_modes(node: Lan, ctid: str, devs: str, expected: set[tuple[str, str]]) -> None:
    before = snapshot(node.node)
    network = start(ctid, [CT4, OTHER4], host_netns=node.node, neighbour_devs=devs)
    try:
        assert _proxied(node.node) == expected
        assert f"{OTHER4} dev uplink1 proxy" in ip(node.node, "neigh", "show", "proxy")
    finally:
        stop(network)
    assert snapshot(node.node) == before


def test_detect_skips_noarp_and_unroutable(node: Lan, ctid: str) -> None:
    # 203.0.113.0/24 is routed via noarp0 (NOARP: no proxy there); 2001:db8:9:: is not routed at all
    network = start(ctid, ["203.0.113.77", "2001:db8:9::1"], host_netns=node.node, neighbour_devs="detect")
    try:
        assert _proxied(node.node) == set()
    finally:
        stop(network)


def test_parse_and_format() -> None:
    assert parse_neighbour_devs("all") == "all"
    assert parse_neighbour_devs(" detect ") == "detect"
    assert parse_neighbour_devs("list:eth0 eth1") == ("eth0", "eth1")
    assert parse_neighbour_devs("eth0,eth1") == ("eth0", "eth1")
    assert parse_neighbour_devs(["eth0"]) == ("eth0",)
    for value in ("all", "detect", ("eth0", "eth1")):
        assert parse_neighbour_devs(format_neighbour_devs(value)) == value
    for bad in ("", "list:", "a/b", "list:all", "x" * 16):
        with pytest.raises(InvalidOptionError):  # exit 21
            parse_neighbour_devs(bad)
