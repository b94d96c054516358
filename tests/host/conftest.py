"""Fixtures for the host layer: throwaway network namespaces that are always removed.

Nothing here touches the root namespace: the "hardware node" is a namespace (`node`) with an
uplink veth to another namespace (`outside`), the machine on the node's LAN.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from venetfilter.host import ContainerNetwork, apply_sysctls, default_netns_name, open_iproute, proxy_entries, start, stop
from venetfilter.host.netns import create_netns, netns_exists, remove_netns, run_in_netns

NETNS_PREFIX = "vftest-"

# Documentation addresses: the node's LAN, the outside host on it, the container's addresses in it.
LAN4, LAN6 = "192.0.2.0/24", "2001:db8:1::/64"
NODE4, NODE6 = "192.0.2.254", "2001:db8:1::fe"
OUTSIDE4, OUTSIDE6 = "192.0.2.1", "2001:db8:1::1"
CT4, CT6 = "192.0.2.10", "2001:db8:1::10"
UPLINK = "uplink0"


def unique_name(prefix: str = NETNS_PREFIX) -> str:
    """A namespace name no other test (or engineer) uses."""
    return prefix + secrets.token_hex(4)


def _no_dad() -> None:
    """No IPv6 duplicate address detection: an address and its local route appear at once."""
    for scope in ("all", "default"):
        with open(f"/proc/sys/net/ipv6/conf/{scope}/accept_dad", "w") as handle:
            handle.write("0\n")


@pytest.fixture
def make_netns() -> Iterator[Callable[[], str]]:
    """A factory of fresh named namespaces (``vftest-...``), every one removed at the end."""
    made: list[str] = []

    def make() -> str:
        name = unique_name()
        create_netns(name)
        made.append(name)
        run_in_netns(name, _no_dad)
        with open_iproute(name) as ipr:
            ipr.link("set", index=1, state="up")
        return name

    try:
        yield make
    finally:
        for name in made:
            remove_netns(name)


@pytest.fixture
def ctid() -> Iterator[str]:
    """A container id no one else uses; the ``venet-CTID`` namespace is removed afterwards if left."""
    value = "t" + secrets.token_hex(3)
    try:
        yield value
    finally:
        if netns_exists(default_netns_name(value)):
            remove_netns(default_netns_name(value))


@dataclass(frozen=True)
class Lan:
    """The node namespace, its uplink to the outside host, and the outside host's namespace."""

    node: str
    outside: str
    uplink: str = UPLINK


def _veth_between(a: str, a_name: str, b: str, b_name: str) -> None:
    fd = os.open(f"/run/netns/{b}", os.O_RDONLY)
    try:
        with open_iproute(a) as ipr:
            ipr.link("add", ifname=a_name, kind="veth", peer={"ifname": b_name, "net_ns_fd": fd})
    finally:
        os.close(fd)


NO_LINK_LOCAL = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", 1]]}]]}


def link_up(ns: str, ifname: str, *addresses: tuple[str, int]) -> None:
    """Bring `ifname` up with `addresses`, all at once and for good.

    The kernel would add a link's IPv6 link-local address only once its carrier event has been
    processed, up to a second later, in the middle of a snapshot; so generation is off and the
    caller gives the link-local address (if any) itself, without DAD.
    """
    with open_iproute(ns) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=index, IFLA_AF_SPEC=NO_LINK_LOCAL)
        ipr.link("set", index=index, state="up")
        for address, prefixlen in addresses:
            extra = {"flags": IFA_F_NODAD} if ":" in address else {}
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen, **extra)


@pytest.fixture
def lan(make_netns: Callable[[], str]) -> Lan:
    """A node with venet's sysctls and an uplink on 192.0.2.0/24 + 2001:db8:1::/64 to an outside host.

    The outside host has no route via the node for the container addresses: they are on its
    LAN, so it resolves them with ARP/NDP and only the node's proxy entries answer.
    """
    node, outside = make_netns(), make_netns()
    _veth_between(node, UPLINK, outside, "eth0")
    link_up(node, UPLINK, ("fe80::fe", 64), (NODE4, 24), (NODE6, 64))
    link_up(outside, "eth0", ("fe80::1", 64), (OUTSIDE4, 24), (OUTSIDE6, 64))
    apply_sysctls(node)
    return Lan(node, outside)


def snapshot(netns: str) -> dict[str, Any]:
    """Links, addresses, routes (every table) and proxy entries of `netns`, comparable with ``==``."""
    with open_iproute(netns) as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        links = sorted(
            (link.get("ifname"), link["flags"], link.get("address"), (link.get(("linkinfo", "kind")) or ""))
            for link in ipr.link("dump")
        )
        addresses = sorted(
            (names.get(a["index"]), a["family"], a.get("address"), a["prefixlen"]) for a in ipr.addr("dump")
        )
        routes = sorted(
            (
                r["family"], r.get("table"), r.get("dst") or "", r["dst_len"], names.get(r.get("oif")),
                r.get("gateway") or "", r["type"], r["proto"], r["scope"],
            )
            for r in ipr.route("dump")
        )
        proxies = sorted((str(a), names.get(i)) for a, i in proxy_entries(ipr))
    return {"links": links, "addresses": addresses, "routes": routes, "proxies": proxies}


def ip(netns: str, *argv: str) -> str:
    """``ip -n NETNS ARGV`` output (for assertions only)."""
    return subprocess.run(["ip", "-n", netns, *argv], check=True, capture_output=True, text=True).stdout


def ping(netns: str, address: str, source: str | None = None) -> subprocess.CompletedProcess[str]:
    """``ip netns exec NETNS ping -c 2 -W 1 [-I SOURCE] ADDRESS``."""
    argv = ["ip", "netns", "exec", netns, "ping", "-n", "-c", "2", "-W", "1"]
    if source:
        argv += ["-I", source]
    return subprocess.run([*argv, address], capture_output=True, text=True, timeout=20)


@pytest.fixture
def started(lan: Lan, ctid: str) -> Iterator[ContainerNetwork]:
    """Container `ctid` started on the LAN's node with CT4 and CT6; stopped afterwards."""
    network = start(ctid, [CT4, CT6], host_netns=lan.node)
    try:
        yield network
    finally:
        stop(network)
