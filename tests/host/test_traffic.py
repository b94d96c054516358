"""Real packets: a container and a host on the node's LAN reach each other over IPv4 and IPv6.

The outside host has the container's addresses in its own /24 and /64 and no route via the node,
so it must resolve them with ARP/NDP on the uplink: only the node's proxy entries answer. Inside,
the container has nothing but /32 and /128 addresses and ``default dev venet0`` on a NOARP link.
"""

from __future__ import annotations


import pytest

from venetfilter.host import ContainerNetwork, change_addresses

from .conftest import CT4, CT6, NODE4, OUTSIDE4, OUTSIDE6, UPLINK, Lan, ip, ping


def _ok(result: object) -> None:
    assert getattr(result, "returncode") == 0, f"{getattr(result, 'stdout')}{getattr(result, 'stderr')}"


@pytest.mark.parametrize(("source", "target"), [(CT4, OUTSIDE4), (CT6, OUTSIDE6)], ids=["ipv4", "ipv6"])
def test_container_reaches_the_lan_by_its_own_address(started: ContainerNetwork, source: str, target: str) -> None:
    _ok(ping(started.netns, target, source))


@pytest.mark.parametrize("target", [CT4, CT6], ids=["ipv4", "ipv6"])
def test_lan_host_reaches_the_container_through_proxy_arp_and_ndp(
    lan: Lan, started: ContainerNetwork, target: str
) -> None:
    route = ip(lan.outside, "route", "get", target)
    assert " dev eth0 " in route and " via " not in route  # on-link: resolved by ARP/NDP, no gateway
    _ok(ping(lan.outside, target))
    node_mac = ip(lan.node, "-br", "link", "show", UPLINK).split()[2]
    neighbours = ip(lan.outside, "neigh", "show", target)
    assert f"lladdr {node_mac}" in neighbours, neighbours  # the node answered for the container


def test_a_removed_address_is_no_longer_answered_and_an_added_one_is(lan: Lan, started: ContainerNetwork) -> None:
    changed = change_addresses(started, ["192.0.2.11"], [CT4])
    assert f"{CT4} " not in ip(lan.node, "neigh", "show", "proxy")
    _ok(ping(lan.outside, "192.0.2.11"))
    assert ping(lan.outside, CT4).returncode != 0
    assert ping(changed.netns, NODE4, CT4).returncode != 0  # CT4 is no longer the container's
