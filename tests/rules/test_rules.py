"""venetfilter's iptables/ip6tables rules, installed for real inside throwaway namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from venetfilter.rules import CHAIN, QueueSpec, RulesError, install, installed, remove, show

pytestmark = pytest.mark.netns
BACKENDS = ["legacy", "nft"]


def save(netns: str, family: int, backend: str) -> str:
    tool = f"{'iptables' if family == 4 else 'ip6tables'}-{backend}-save"
    out = subprocess.run(["ip", "netns", "exec", netns, tool, "-t", "filter"], capture_output=True, text=True, check=True)
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith("#"))


def restore(netns: str, family: int, backend: str, text: str) -> None:
    tool = f"{'iptables' if family == 4 else 'ip6tables'}-{backend}-restore"
    subprocess.run(["ip", "netns", "exec", netns, tool, "--noflush"], input=text, text=True, check=True)


OTHER_RULES = {
    4: "*filter\n:OTHER - [0:0]\n-A INPUT -s 203.0.113.0/24 -j ACCEPT\n-A FORWARD -j OTHER\n-A OTHER -p tcp --dport 22 -j DROP\nCOMMIT\n",
    6: "*filter\n:OTHER - [0:0]\n-A INPUT -s 2001:db8:ffff::/48 -j ACCEPT\n-A FORWARD -j OTHER\nCOMMIT\n",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_is_idempotent_and_remove_leaves_other_rules(make_netns, backend):
    ns = make_netns()
    for family in (4, 6):
        restore(ns, family, backend, OTHER_RULES[family])
    before = {family: save(ns, family, backend) for family in (4, 6)}
    assert not installed(ns, backend)

    assert install(QueueSpec(queue=5), ns, backend) == ["IPv4: installed NFQUEUE --queue-num 5", "IPv6: installed NFQUEUE --queue-num 5"]
    first = {family: save(ns, family, backend) for family in (4, 6)}
    assert installed(ns, backend)
    assert install(QueueSpec(queue=5), ns, backend) == []  # twice: nothing changes
    assert {family: save(ns, family, backend) for family in (4, 6)} == first

    for family in (4, 6):
        rules = first[family].splitlines()
        # our jumps come first in each hook, the other rules are still there
        for hook in ("INPUT", "FORWARD", "OUTPUT"):
            assert [r for r in rules if r.startswith(f"-A {hook} ")][0] == f"-A {hook} -j {CHAIN}"
        assert f"-A {CHAIN} -i ve-+ -j NFQUEUE --queue-num 5" in rules
        assert f"-A {CHAIN} -o ve-+ -j NFQUEUE --queue-num 5" in rules
        assert set(before[family].splitlines()) <= set(rules)

    assert remove(ns, backend) == ["IPv4: removed", "IPv6: removed"]
    assert {family: save(ns, family, backend) for family in (4, 6)} == before
    assert remove(ns, backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_reinstall_changes_the_target_in_one_step(make_netns, backend):
    ns = make_netns()
    install(QueueSpec(queue=1), ns, backend)
    spec = QueueSpec(balance=(2, 3), cpu_fanout=True, fail_open=True)
    assert install(spec, ns, backend) == [f"IPv4: installed {spec.target()}", f"IPv6: installed {spec.target()}"]
    rules = show(ns, backend)
    for family in (4, 6):
        queued = [r for r in rules[family] if "NFQUEUE" in r]
        assert queued == [
            f"-A {CHAIN} -i ve-+ -j NFQUEUE --queue-balance 2:3 --queue-bypass --queue-cpu-fanout",
            f"-A {CHAIN} -o ve-+ -j NFQUEUE --queue-balance 2:3 --queue-bypass --queue-cpu-fanout",
        ]


@pytest.mark.parametrize("spec", [dict(queue=-1), dict(queue=65536), dict(balance=(3, 2)), dict(balance=(0, 70000))])
def test_invalid_queue(spec):
    with pytest.raises(RulesError, match="invalid queue"):
        QueueSpec(**spec)


def test_missing_namespace():
    from venetfilter.netns import NetnsNotFoundError

    with pytest.raises(NetnsNotFoundError, match="vft-does-not-exist"):
        install(QueueSpec(), "vft-does-not-exist")


def test_missing_tool(make_netns, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RulesError, match="iptables-save not found: install Debian's iptables package"):
        install(QueueSpec(), make_netns())


def test_not_root(make_netns):
    ns = make_netns()
    code = f"from venetfilter.rules import *; install(QueueSpec(), {ns!r})"
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "RulesError: changing or reading firewall rules needs root (CAP_NET_ADMIN)" in result.stderr
