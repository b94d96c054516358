"""``venetctl start/stop/sysctl`` and a runtime ``set`` on a started container, in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_runner import Result, in_process
from venetfilter.config import ContainerManager
from venetfilter.host import default_netns_name, open_iproute
from venetfilter.host.netns import netns_exists

from .conftest import CT4, CT6, UPLINK, Lan, ip, ping, snapshot


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("start", CTID, ...)`` on private conf/run dirs, without waiting for a worker."""
    options = ["--conf-dir", str(tmp_path / "conf"), "--run-dir", str(tmp_path / "run"), "--notify-timeout", "0.2"]
    return in_process(capsys, options)


def _state(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "run" / "state.json"
    return json.loads(path.read_text())["containers"] if path.exists() else {}


def _saved(tmp_path: Path, ctid: str, *addresses: str) -> None:
    ContainerManager(tmp_path / "conf", tmp_path / "run", notify=False).set(ctid, list(addresses), save=True)


def test_start_set_stop(cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path) -> None:
    _saved(tmp_path, ctid, CT4, CT6)
    before = snapshot(lan.node)

    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 0, r.err
    state = _state(tmp_path)[ctid]
    with open_iproute(lan.node) as ipr:
        assert state["ifindex"] == ipr.link_lookup(ifname=f"vnf{ctid}")[0]  # type: ignore[index]
    assert state["addresses"] == [CT4, CT6] and state["netns"] == default_netns_name(ctid)  # type: ignore[index]
    assert (tmp_path / "run" / "host" / f"{ctid}.json").exists()
    assert cli("start", ctid, "--host-netns", lan.node).code == 32

    # a runtime change reaches the container, the host routes and the proxy entries at once
    r = cli("set", ctid, "--ipdel", CT4, "--ipadd", "192.0.2.11")
    assert r.code == 0, r.err
    assert _state(tmp_path)[ctid]["addresses"] == [CT6, "192.0.2.11"]  # type: ignore[index]
    assert "192.0.2.11/32" in ip(default_netns_name(ctid), "addr", "show", "venet0")
    assert ip(lan.node, "route", "show", "192.0.2.11").startswith(f"192.0.2.11 dev vnf{ctid}")
    assert f"{CT4} " not in ip(lan.node, "neigh", "show", "proxy")
    assert ping(lan.outside, "192.0.2.11").returncode == 0

    # a change that cannot be applied is refused whole: nothing on the host, nothing saved
    ip(lan.node, "route", "add", "192.0.2.12/32", "dev", UPLINK)
    node_before, state_before = snapshot(lan.node), _state(tmp_path)
    r = cli("set", ctid, "--ipdel", "192.0.2.11", "--ipadd", "192.0.2.12", "--save")
    assert r.code == 34 and "192.0.2.12" in r.err
    assert snapshot(lan.node) == node_before and _state(tmp_path) == state_before
    ip(lan.node, "route", "del", "192.0.2.12/32", "dev", UPLINK)

    r = cli("stop", ctid)
    assert r.code == 0, r.err
    assert ctid not in _state(tmp_path)
    assert not (tmp_path / "run" / "host" / f"{ctid}.json").exists()
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))
    assert cli("stop", ctid, "--host-netns", lan.node).code == 31


def test_start_into_an_existing_namespace(
    cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path, make_netns: Callable[[], str]
) -> None:
    _saved(tmp_path, ctid, CT4)
    ns = make_netns()
    assert cli("start", ctid, "--netns", ns, "--host-netns", lan.node, "--neighbour-devs", "detect").code == 0
    assert _state(tmp_path)[ctid]["netns"] == ns  # type: ignore[index]
    assert ping(ns, "192.0.2.1", CT4).returncode == 0
    assert cli("stop", ctid).code == 0
    assert netns_exists(ns)
    assert "venet0" not in ip(ns, "link")


def test_unknown_container_and_missing_netns(cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path) -> None:
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 14 and ctid in r.err
    assert cli("stop", ctid, "--host-netns", lan.node).code == 14
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


def test_refused_by_the_runtime_state_after_the_network_was_up(
    cli: Callable[..., Result], lan: Lan, ctid: str, tmp_path: Path
) -> None:
    # another container's saved config holds CT4: the manager refuses to record the start, and the
    # network that was already up is taken down again
    _saved(tmp_path, ctid + "x", CT4)
    (tmp_path / "conf" / f"{ctid}.conf").write_text(f'IP_ADDRESS="{CT4}"\n')
    before = snapshot(lan.node)
    r = cli("start", ctid, "--host-netns", lan.node)
    assert r.code == 78 and ctid + "x" in r.err
    assert snapshot(lan.node) == before and not netns_exists(default_netns_name(ctid))
    assert _state(tmp_path) == {} and not (tmp_path / "run" / "host" / f"{ctid}.json").exists()
