"""start/stop/change_addresses on a namespace "node": what they set up, what they leave, bad input."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import IFF_NOARP, IFF_UP

import venetfilter.host.container as container_module
from venetfilter.errors import (
    AddressRoutedError,
    HostNetworkError,
    InterfaceExistsError,
    InterfaceNotFoundError,
    InvalidAddressError,
    InvalidContainerError,
    NetnsExistsError,
    NotStartedError,
)
from venetfilter.host import (
    CONTAINER_IFNAME,
    ContainerNetwork,
    change_addresses,
    default_netns_name,
    network_of,
    open_iproute,
    start,
    stop,
)
from venetfilter.host.batch import Batch, Failure, Op
from venetfilter.host.netns import create_netns, netns_exists, remove_netns
from venetfilter.netns import NetnsNotFoundError

from .conftest import CT4, CT6, NODE4, UPLINK, Lan, ip, snapshot, unique_name


def _link(ns: str, ifname: str) -> dict[str, object]:
    with open_iproute(ns) as ipr:
        msg = ipr.link("get", index=ipr.link_lookup(ifname=ifname)[0])[0]
        return {"flags": msg["flags"], "mac": msg.get("address")}


def test_start_sets_up_a_venet_like_network_and_stop_removes_exactly_it(lan: Lan, ctid: str) -> None:
    before = snapshot(lan.node)
    network = start(ctid, [CT4, f"{CT6}/64"], host_netns=lan.node)
    ns = default_netns_name(ctid)
    assert network == ContainerNetwork(ctid, ns, lan.node, True, True, True, "all", network.addresses, network.host_index)
    assert network.host_index == int(ip(lan.node, "-o", "link", "show", f"vnf{ctid}").split(":")[0])
    assert [str(a) for a in network.addresses] == [CT4, CT6]

    host_end, inner_end = _link(lan.node, f"vnf{ctid}"), _link(ns, CONTAINER_IFNAME)
    for end in (host_end, inner_end):
        assert end["flags"] & IFF_NOARP and end["flags"] & IFF_UP  # type: ignore[operator]
    assert host_end["mac"] == inner_end["mac"]  # see venetfilter.host.link
    inside = ip(ns, "-o", "addr", "show", "dev", CONTAINER_IFNAME)
    assert f"inet {CT4}/32 " in inside and f"inet6 {CT6}/128 " in inside
    assert "state UP" in ip(ns, "link", "show", "lo") or "LOOPBACK,UP" in ip(ns, "link", "show", "lo")
    assert ip(ns, "-4", "route", "show", "default").split()[:3] == ["default", "dev", CONTAINER_IFNAME]
    assert ip(ns, "-6", "route", "show", "default").split()[:3] == ["default", "dev", CONTAINER_IFNAME]
    assert ip(lan.node, "-4", "route", "show", CT4).split()[:3] == [CT4, "dev", f"vnf{ctid}"]
    assert ip(lan.node, "-6", "route", "show", CT6).split()[:3] == [CT6, "dev", f"vnf{ctid}"]
    proxies = ip(lan.node, "neigh", "show", "proxy")
    assert f"{CT4} dev {UPLINK} proxy" in proxies and f"{CT6} dev {UPLINK} proxy" in proxies
    assert network_of(ctid, host_netns=lan.node).addresses == network.addresses

    assert stop(network) is True
    assert snapshot(lan.node) == before
    assert not netns_exists(ns)
    assert stop(network) is False  # nothing left: not an error


def test_the_link_is_down_and_empty_when_it_is_registered(lan: Lan, ctid: str) -> None:
    """`register` runs once the link exists: down, no address, no route, no proxy entry; the steps
    come in order."""
    seen: list[tuple[int, str, str, str]] = []
    steps: list[str] = []

    def register(network: ContainerNetwork) -> None:
        host_end = _link(lan.node, f"vnf{ctid}")
        seen.append((int(host_end["flags"]) & IFF_UP, ip(network.netns, "-o", "addr", "show", "dev", CONTAINER_IFNAME),
                     ip(lan.node, "route", "show", "dev", f"vnf{ctid}"), ip(lan.node, "neigh", "show", "proxy")))

    network = start(ctid, [CT4, CT6], host_netns=lan.node, register=register, step=steps.append)
    try:
        assert seen == [(0, "", "", "")]
        assert steps == ["checked", "netns", "link", "registered", "up", "addresses"]
        assert _link(lan.node, f"vnf{ctid}")["flags"] & IFF_UP  # type: ignore[operator]
    finally:
        stop(network)


def test_a_failing_register_undoes_the_start(lan: Lan, ctid: str) -> None:
    before = snapshot(lan.node)

    def register(network: ContainerNetwork) -> None:
        raise HostNetworkError("the filter refused it")

    with pytest.raises(HostNetworkError, match="refused"):
        start(ctid, [CT4], host_netns=lan.node, register=register)
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))


@pytest.fixture
def bare_netns() -> Iterator[str]:
    """An existing namespace as a container runtime leaves it: nothing up, not even lo."""
    name = unique_name()
    create_netns(name)
    try:
        yield name
    finally:
        remove_netns(name)


@pytest.mark.parametrize("form", ["name", "path", "pid"])
def test_an_existing_namespace_is_used_and_left_as_found(lan: Lan, ctid: str, bare_netns: str, form: str) -> None:
    node_before, ct_before = snapshot(lan.node), snapshot(bare_netns)
    holder = None
    spec: str | int = bare_netns if form == "name" else f"/run/netns/{bare_netns}"
    if form == "pid":
        holder = subprocess.Popen(["ip", "netns", "exec", bare_netns, "sleep", "60"])
        spec = holder.pid
        for _ in range(200):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == os.stat(f"/run/netns/{bare_netns}").st_ino:
                break
            subprocess.run(["sleep", "0.01"], check=True)
    try:
        network = start(ctid, [CT4], netns=spec, host_netns=lan.node)
        assert not network.netns_created and network.loopback_raised
        assert f"inet {CT4}/32" in ip(bare_netns, "addr", "show", "dev", CONTAINER_IFNAME)
        stop(network)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert netns_exists(bare_netns) and not netns_exists(default_netns_name(ctid))
    assert snapshot(lan.node) == node_before
    assert snapshot(bare_netns) == ct_before


def test_stop_leaves_another_namespace_s_loopback_alone(lan: Lan, ctid: str, bare_netns: str, make_netns) -> None:
    """A record naming /proc/PID/ns/net may, once the container is gone and its pid reused, name
    another process's namespace: stop must not take that namespace's lo down."""
    network = start(ctid, [CT4], netns=bare_netns, host_netns=lan.node)
    assert network.loopback_raised
    other = make_netns()  # lo up, like any live namespace a reused pid could name
    stop(replace(network, netns=other))
    assert ",UP" in ip(other, "link", "show", "dev", "lo")


@pytest.mark.parametrize("form", ["name", "path", "pid"])
def test_the_host_namespace_cannot_be_the_container_namespace(lan: Lan, ctid: str, form: str) -> None:
    """Refused by identity (device and inode of the namespace files), whatever names it."""
    before = snapshot(lan.node)
    holder = subprocess.Popen(["nsenter", f"--net=/run/netns/{lan.node}", "sleep", "60"]) if form == "pid" else None
    try:
        spec: str | int = lan.node if form == "name" else f"/run/netns/{lan.node}"
        if holder is not None:
            spec = holder.pid
            for _ in range(200):  # until nsenter has entered the namespace
                if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == os.stat(f"/run/netns/{lan.node}").st_ino:
                    break
                subprocess.run(["sleep", "0.01"], check=True)
        with pytest.raises(HostNetworkError, match="is the host's"):
            start(ctid, [CT4], netns=spec, host_netns=lan.node)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert snapshot(lan.node) == before


@pytest.mark.parametrize("spec", ["/proc/self/ns/net", "$PID"])
def test_the_namespace_the_command_runs_in_cannot_be_the_container_namespace(lan: Lan, ctid: str, spec: str) -> None:
    """A command run in the node (no host_netns: its own namespace) given its own namespace by path
    or by its pid is refused, and changes nothing."""
    before = snapshot(lan.node)
    code = (
        "import os, sys\n"
        "from venetfilter.errors import HostNetworkError\n"
        "from venetfilter.host import start\n"
        f"spec = {spec!r}.replace('$PID', str(os.getpid()))\n"
        "try:\n"
        f"    start({ctid!r}, [{CT4!r}], netns=spec)\n"
        "except HostNetworkError as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    result = subprocess.run(["nsenter", f"--net=/run/netns/{lan.node}", sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "is the host's" in result.stderr, result.stderr
    assert snapshot(lan.node) == before


# -- bad input: a clear error and the node exactly as before ----------------------------------------


@pytest.mark.parametrize("bad", ["", "a/b", "-x", "much-too-long-id"])
def test_bad_container_ids(lan: Lan, bad: str) -> None:
    before = snapshot(lan.node)
    with pytest.raises(InvalidContainerError):
        start(bad, [CT4], host_netns=lan.node)
    assert snapshot(lan.node) == before


@pytest.mark.parametrize("bad", ["192.0.2", "224.0.0.1", "::", "nonsense"])
def test_bad_addresses(lan: Lan, ctid: str, bad: str) -> None:
    before = snapshot(lan.node)
    with pytest.raises(InvalidAddressError):
        start(ctid, [CT4, bad], host_netns=lan.node)
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))


def test_unknown_container_has_no_network(lan: Lan, ctid: str) -> None:
    with pytest.raises(NotStartedError, match=ctid):
        network_of(ctid, host_netns=lan.node)
    assert stop(ContainerNetwork(ctid, default_netns_name(ctid), lan.node, addresses=())) is False
    with pytest.raises(NotStartedError):
        change_addresses(ContainerNetwork(ctid, default_netns_name(ctid), lan.node), [CT4])


def test_missing_namespaces(lan: Lan, ctid: str) -> None:
    before = snapshot(lan.node)
    with pytest.raises(NetnsNotFoundError):
        start(ctid, [CT4], netns="vftest-no-such-ns", host_netns=lan.node)
    with pytest.raises(NetnsNotFoundError):
        start(ctid, [CT4], host_netns="vftest-no-such-ns")
    assert snapshot(lan.node) == before
    assert not netns_exists(default_netns_name(ctid)) and not netns_exists("vftest-no-such-ns")


def test_default_namespace_already_there(lan: Lan, ctid: str) -> None:
    create_netns(default_netns_name(ctid))  # the ctid fixture removes it
    with pytest.raises(NetnsExistsError, match="--netns"):
        start(ctid, [CT4], host_netns=lan.node)


def test_host_interface_name_clash(lan: Lan, ctid: str) -> None:
    with open_iproute(lan.node) as ipr:
        ipr.link("add", ifname=f"vnf{ctid}", kind="veth", peer=f"x-{ctid}")
    before = snapshot(lan.node)
    with pytest.raises(InterfaceExistsError, match=f"vnf{ctid}"):
        start(ctid, [CT4], host_netns=lan.node)
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))


def test_container_interface_name_clash(lan: Lan, ctid: str, bare_netns: str) -> None:
    with open_iproute(bare_netns) as ipr:
        ipr.link("add", ifname=CONTAINER_IFNAME, kind="veth", peer="other0")
    node_before, ct_before = snapshot(lan.node), snapshot(bare_netns)
    with pytest.raises(InterfaceExistsError, match=CONTAINER_IFNAME):
        start(ctid, [CT4], netns=bare_netns, host_netns=lan.node)
    assert snapshot(lan.node) == node_before and snapshot(bare_netns) == ct_before


def test_address_routed_elsewhere(lan: Lan, ctid: str) -> None:
    ip(lan.node, "route", "add", f"{CT4}/32", "dev", UPLINK)
    before = snapshot(lan.node)
    with pytest.raises(AddressRoutedError, match=f"{CT4}.*{UPLINK}"):
        start(ctid, [CT6, CT4], host_netns=lan.node)
    with pytest.raises(AddressRoutedError, match="local address"):
        start(ctid, [NODE4], host_netns=lan.node)
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))


def test_address_of_another_started_container(lan: Lan, ctid: str) -> None:
    other = ctid + "b"
    first = start(other, [CT4], host_netns=lan.node)
    try:
        before = snapshot(lan.node)
        with pytest.raises(AddressRoutedError, match=f"vnf{other}"):
            start(ctid, [CT4], host_netns=lan.node)
        assert snapshot(lan.node) == before
    finally:
        stop(first)


def test_listed_neighbour_device_missing(lan: Lan, ctid: str) -> None:
    before = snapshot(lan.node)
    with pytest.raises(InterfaceNotFoundError, match="eth9"):
        start(ctid, [CT4], host_netns=lan.node, neighbour_devs="list:eth9")
    assert snapshot(lan.node) == before


def failing_batch(monkeypatch: pytest.MonkeyPatch, kind: str, address: str) -> list[Op]:
    """Make the kernel refuse (EIO) the addition of `kind` for `address`; the rest of each batch
    goes through. Returns the refused operations as they come."""
    refused: list[Op] = []

    class FailingBatch(Batch):
        def run(self, netns, *, missing_ok=False):  # type: ignore[no-untyped-def]
            bad = [op for op in self.ops if op.kind == kind and op.add and str(op.address) == address]
            refused.extend(bad)
            good = Batch()
            good.extend(op for op in self.ops if op not in bad)
            return good.run(netns, missing_ok=missing_ok) + [Failure(op, errno.EIO) for op in bad]

    monkeypatch.setattr(container_module, "Batch", FailingBatch)
    return refused


def test_failure_part_way_rolls_everything_back(lan: Lan, ctid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(lan.node)
    refused = failing_batch(monkeypatch, "proxy", CT6)
    with pytest.raises(HostNetworkError, match=f"cannot add {CT6}.*proxy"):
        start(ctid, [CT4, CT6], host_netns=lan.node)
    assert len(refused) == 1
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))


# -- runtime address changes -----------------------------------------------------------------------


def test_change_adds_and_removes_at_once(lan: Lan, started: ContainerNetwork) -> None:
    ns = started.netns
    changed = change_addresses(started, ["192.0.2.11", "2001:db8:1::11"], [CT4])
    assert [str(a) for a in changed.addresses] == [CT6, "192.0.2.11", "2001:db8:1::11"]
    inside = ip(ns, "-o", "addr", "show", "dev", CONTAINER_IFNAME)
    assert CT4 not in inside and "192.0.2.11/32" in inside and "2001:db8:1::11/128" in inside
    routes = ip(lan.node, "route", "show", "dev", f"vnf{started.ctid}")
    assert CT4 not in routes and "192.0.2.11" in routes
    proxies = ip(lan.node, "neigh", "show", "proxy")
    assert CT4 not in proxies and "192.0.2.11 dev uplink0" in proxies and "2001:db8:1::11 dev uplink0" in proxies
    again = change_addresses(changed, ["192.0.2.11"], ["198.51.100.99"])  # nothing to do
    assert again.addresses == changed.addresses


def test_change_rolls_back_when_a_step_fails(
    lan: Lan, started: ContainerNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the host route of 192.0.2.12 fails after 192.0.2.11 was added (before CT4's removal): all undone
    failing_batch(monkeypatch, "route", "192.0.2.12")
    node_before, ct_before = snapshot(lan.node), snapshot(started.netns)
    committed: list[bool] = []
    with pytest.raises(HostNetworkError, match="192.0.2.12"):
        change_addresses(started, ["192.0.2.11", "192.0.2.12"], [CT4], commit=lambda: committed.append(True))
    assert committed == []
    assert snapshot(lan.node) == node_before
    assert snapshot(started.netns) == ct_before


def test_change_commits_between_the_additions_and_the_removals(lan: Lan, started: ContainerNetwork) -> None:
    seen: list[str] = []

    def commit() -> None:
        seen.append(ip(lan.node, "route", "show", "dev", f"vnf{started.ctid}"))

    change_addresses(started, ["192.0.2.11"], [CT4], commit=commit)
    assert "192.0.2.11" in seen[0] and CT4 in seen[0]  # added, not yet removed
    assert CT4 not in ip(lan.node, "route", "show", "dev", f"vnf{started.ctid}")


def test_a_failing_commit_undoes_the_additions(lan: Lan, started: ContainerNetwork) -> None:
    node_before, ct_before = snapshot(lan.node), snapshot(started.netns)

    def commit() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        change_addresses(started, ["192.0.2.11", "2001:db8:1::11"], [CT4], commit=commit)
    assert snapshot(lan.node) == node_before and snapshot(started.netns) == ct_before


def test_an_address_already_inside_is_adopted_and_kept_on_rollback(
    lan: Lan, started: ContainerNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's root put 192.0.2.12 on venet0 by hand; the admin then grants it: that works,
    and a rollback of the grant leaves the root's address where it was."""
    ip(started.netns, "addr", "add", "192.0.2.12/32", "dev", CONTAINER_IFNAME)
    changed = change_addresses(started, ["192.0.2.12"])
    assert "192.0.2.12" in [str(a) for a in changed.addresses]
    assert "192.0.2.12" in ip(lan.node, "route", "show", "dev", f"vnf{started.ctid}")
    changed = change_addresses(changed, [], ["192.0.2.12"])
    ip(started.netns, "addr", "add", "192.0.2.12/32", "dev", CONTAINER_IFNAME)
    failing_batch(monkeypatch, "route", "192.0.2.12")
    ct_before = snapshot(started.netns)
    with pytest.raises(HostNetworkError, match="Input/output error"):
        change_addresses(changed, ["192.0.2.12"])
    assert snapshot(started.netns) == ct_before


def test_change_refuses_an_address_routed_elsewhere(lan: Lan, started: ContainerNetwork) -> None:
    ip(lan.node, "route", "add", "192.0.2.13/32", "dev", UPLINK)
    node_before, ct_before = snapshot(lan.node), snapshot(started.netns)
    with pytest.raises(AddressRoutedError):
        change_addresses(started, ["192.0.2.13"], [CT4])
    assert snapshot(lan.node) == node_before and snapshot(started.netns) == ct_before


def test_rollback_after_the_last_ipv4_address_went_restores_the_default_route(
    lan: Lan, started: ContainerNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Removing CT4 (the only IPv4 address) makes the kernel drop the IPv4 default route inside.
    node_before, ct_before = snapshot(lan.node), snapshot(started.netns)
    failing_batch(monkeypatch, "route", "192.0.2.11")
    with pytest.raises(HostNetworkError, match="192.0.2.11"):
        change_addresses(started, ["192.0.2.11"], [CT4])
    assert snapshot(lan.node) == node_before
    assert snapshot(started.netns) == ct_before


def test_deleting_every_ipv4_address_then_adding_one_keeps_a_default_route(lan: Lan, started: ContainerNetwork) -> None:
    gone = change_addresses(started, [], [CT4])
    back = change_addresses(gone, ["192.0.2.11"], [])
    assert [str(a) for a in back.addresses] == [CT6, "192.0.2.11"]
    assert ip(started.netns, "-4", "route", "show", "default").split()[:3] == ["default", "dev", CONTAINER_IFNAME]


def test_delete_and_add_of_one_address_keeps_it(lan: Lan, started: ContainerNetwork) -> None:
    before = snapshot(lan.node)
    same = change_addresses(started, [CT4], [CT4])
    assert set(same.addresses) == set(started.addresses)
    assert snapshot(lan.node) == before
