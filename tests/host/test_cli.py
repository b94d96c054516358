"""``venetctl start/stop/sysctl`` and a runtime ``set`` on a started container, in-process, over the
real `Node` in test network namespaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_runner import Result, in_process
from venetfilter.host import default_netns_name, open_iproute
from venetfilter.host.netns import netns_exists
from venetfilter.lifecycle import Node

from .conftest import CT4, CT6, UPLINK, Lan, ip, ping, snapshot

UNUSABLE = ["224.0.0.1", "127.0.0.9", "ff02::1", "fe80::1", "::ffff:192.0.2.1", "255.255.255.255"]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("start", CTID, ...)`` on private conf/run dirs, without waiting for a worker."""
    options = ["--conf-dir", str(tmp_path / "conf"), "--run-dir", str(tmp_path / "run"), "--notify-timeout", "0.2"]
    return in_process(capsys, options)


def _state(tmp_path: Path) -> dict[str, dict[str, object]]:
    path = tmp_path / "run" / "state.json"
    return json.loads(path.read_text())["containers"] if path.exists() else {}


def _saved(tmp_path: Path, ctid: str, *addresses: str) -> None:
    """Save `addresses` in CTID.conf (a dry node: the config file only)."""
    Node(tmp_path / "conf", tmp_path / "run", dry=True).set(ctid, list(addresses), save=True)


def test_start_set_stop(cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path) -> None:
    _saved(tmp_path, ctid, CT4, CT6)
    before = snapshot(lan.node)

    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 0, r.err
    # no kernel table in this namespace, no worker: start says so (it would not isolate anything),
    # and so does status, with a non-zero exit
    assert "Warning: no kernel table venetfilter is installed: nothing isolates" in r.err
    status = cli("status", "--host-netns", lan.node)
    assert status.code == 1 and "kernel table MISSING" in status.out
    assert f"CT {ctid}: running, NOT ISOLATED" in status.out
    status = cli("status", ctid, "--host-netns", lan.node, "--json")
    report = json.loads(status.out)
    assert status.code == 1 and report["isolated"] is False and report["table"] is False and not report["worker"]
    (entry,) = report["containers"]
    assert (entry["phase"], entry["link_present"], entry["netns_present"], entry["runtime"]) == (
        "running", True, True, [CT4, CT6])
    state = _state(tmp_path)[ctid]
    with open_iproute(lan.node) as ipr:
        assert state["ifindex"] == ipr.link_lookup(ifname=f"vnf{ctid}")[0]
    assert state["addresses"] == [CT4, CT6] and state["netns"] == default_netns_name(ctid)
    assert (state["phase"], state["link"], state["host_netns"], state["netns_created"], state["neighbour_devs"]) == (
        "running", f"vnf{ctid}", lan.node, True, "all"
    )
    assert r.out.startswith(f"Container {ctid}: link vnf{ctid} (ifindex {state['ifindex']}), netns venet-{ctid}\n")
    assert not (tmp_path / "run" / "host").exists()  # the record is state.json's, nothing else
    running = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert (r.code, r.out, r.err) == (32, "", f"venetctl: container {ctid} is already running\n")
    assert snapshot(lan.node) == running and _state(tmp_path)[ctid] == state

    # a runtime change reaches the container, the host routes and the proxy entries at once
    r = cli("set", ctid, "--ipdel", CT4, "--ipadd", "192.0.2.11")
    assert r.code == 0, r.err
    assert _state(tmp_path)[ctid]["addresses"] == [CT6, "192.0.2.11"]
    assert "192.0.2.11/32" in ip(default_netns_name(ctid), "addr", "show", "venet0")
    assert ip(lan.node, "route", "show", "192.0.2.11").startswith(f"192.0.2.11 dev vnf{ctid}")
    assert f"{CT4} " not in ip(lan.node, "neigh", "show", "proxy")
    assert ping(lan.outside, "192.0.2.11").returncode == 0

    # an address routed elsewhere on the host is refused whole (78, as at start): nothing on the
    # host, nothing saved
    ip(lan.node, "route", "add", "192.0.2.12/32", "dev", UPLINK)
    node_before, state_before = snapshot(lan.node), _state(tmp_path)
    conf_before = (tmp_path / "conf" / f"{ctid}.conf").read_bytes()
    r = cli("set", ctid, "--ipdel", "192.0.2.11", "--ipadd", "192.0.2.12", "--save")
    assert r.code == 78 and r.err.startswith("venetctl: Unable to add IP 192.0.2.12: ")
    assert snapshot(lan.node) == node_before and _state(tmp_path) == state_before
    assert (tmp_path / "conf" / f"{ctid}.conf").read_bytes() == conf_before
    ip(lan.node, "route", "del", "192.0.2.12/32", "dev", UPLINK)

    # an address no container may have: refused before anything changes
    node_before = snapshot(lan.node)
    for address in UNUSABLE:
        r = cli("set", ctid, "--ipadd", address, "--save")
        assert r.code == 21 and "not usable for a container" in r.err
    assert snapshot(lan.node) == node_before and _state(tmp_path) == state_before
    assert (tmp_path / "conf" / f"{ctid}.conf").read_bytes() == conf_before

    r = cli("stop", ctid)
    assert (r.code, r.out, r.err) == (0, f"Container {ctid}: network stopped\n", "")
    assert ctid not in _state(tmp_path)
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))
    r = cli("stop", ctid)  # vzctl: a stopped container is not an error
    assert (r.code, r.out, r.err) == (0, "Container is not running\n", "")
    assert snapshot(lan.node) == before


def test_start_into_an_existing_namespace(
    cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path, make_netns: Callable[[], str]
) -> None:
    _saved(tmp_path, ctid, CT4)
    ns = make_netns()
    assert cli("start", ctid, "--netns", ns, "--host-netns", lan.node, "--neighbour-devs", "detect").code == 0
    assert _state(tmp_path)[ctid]["netns"] == ns and not _state(tmp_path)[ctid]["netns_created"]
    assert _state(tmp_path)[ctid]["neighbour_devs"] == "detect"
    assert ping(ns, "192.0.2.1", CT4).returncode == 0
    assert cli("stop", ctid).code == 0
    assert netns_exists(ns)
    assert "venet0" not in ip(ns, "link")


def test_unknown_container_and_missing_netns(cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path) -> None:
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 14 and ctid in r.err
    assert cli("stop", ctid).code == 14
    _saved(tmp_path, ctid, CT4)
    r = cli("start", ctid, "--netns", "vftest-no-such-ns", "--host-netns", lan.node)
    assert r.code == 21 and "vftest-no-such-ns" in r.err
    r = cli("start", ctid, "--host-netns", lan.node, "--neighbour-devs", "list:eth9")
    assert r.code == 3 and "eth9" in r.err
    assert snapshot(lan.node) == before
    assert not netns_exists(default_netns_name(ctid)) and _state(tmp_path) == {}


def test_address_routed_elsewhere_is_78(cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path) -> None:
    _saved(tmp_path, ctid, CT4)
    ip(lan.node, "route", "add", f"{CT4}/32", "dev", UPLINK)
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 78 and f"Unable to add IP {CT4}" in r.err
    assert snapshot(lan.node) == before and _state(tmp_path) == {}
    assert not netns_exists(default_netns_name(ctid))


@pytest.mark.parametrize("address", UNUSABLE)
def test_start_refuses_an_unusable_address(
    cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path, address: str
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / f"{ctid}.conf").write_text(f'IP_ADDRESS="{CT4} {address}"\n')
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert (r.code, r.out) == (21, "")
    assert r.err.startswith(f"venetctl: invalid address {address!r}: not usable for a container: ")
    assert snapshot(lan.node) == before and _state(tmp_path) == {}
    assert not netns_exists(default_netns_name(ctid))


@pytest.mark.parametrize("command", ["start", "stop"])
def test_ct_0_is_refused(cli: Callable[..., Result], lan: Lan, tmp_path: Path, command: str) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "0.conf").write_text(f'IP_ADDRESS="{CT4}"\n')
    before = snapshot(lan.node)
    extra = ["--host-netns", lan.node] if command == "start" else []
    r = cli(command, "0", *extra)
    assert (r.code, r.out) == (21, "") and "CT 0 is the hardware node itself" in r.err
    assert snapshot(lan.node) == before and _state(tmp_path) == {}
    assert not netns_exists(default_netns_name("0"))


def test_sysctl(cli: Callable[..., Result], make_netns: Callable[[], str], tmp_path: Path) -> None:
    ns = make_netns()
    r = cli("sysctl", "--netns", ns)
    assert r.code == 0 and "net.ipv4.ip_forward = 0  [venet needs 1]" in r.out
    assert "router advertisements" in r.err
    r = cli("sysctl", "--netns", ns, "--apply")
    assert r.code == 0 and "net.ipv4.ip_forward: 0 -> 1" in r.out
    assert cli("sysctl", "--netns", ns, "--apply").out == "sysctls already set, nothing changed\n"
    assert "[venet needs" not in cli("sysctl", "--netns", ns).out
    target = tmp_path / "sysctl.d" / "90-venetfilter.conf"
    assert cli("sysctl", "--persist", str(target)).out == f"wrote {target}\n"
    assert "net.ipv6.conf.all.proxy_ndp = 1" in target.read_text()
    assert "already up to date" in cli("sysctl", "--persist", str(target)).out
    assert cli("sysctl", "--netns", "vftest-no-such-ns").code == 21


def test_address_saved_for_another_container_is_78_before_anything_changes(
    cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path
) -> None:
    # another container's saved config holds CT4: the start is refused before the network is
    # touched (owners are checked under the lock, first)
    _saved(tmp_path, ctid + "x", CT4)
    (tmp_path / "conf" / f"{ctid}.conf").write_text(f'IP_ADDRESS="{CT4}"\n')
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 78 and ctid + "x" in r.err
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))
    assert _state(tmp_path) == {}
