"""The forwarding/proxy sysctls: read, apply (idempotent, per namespace) and persist (atomic)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from venetfilter.errors import SysctlError
from venetfilter.host.sysctl import (
    IPV6_FORWARDING_WARNING,
    VENET_SYSCTLS,
    SysctlSetting,
    apply_sysctls,
    persist_sysctls,
    read_sysctls,
    render_sysctl_conf,
)

from .conftest import ip


def _root_values() -> dict[str, str]:
    return {s.name: (Path("/proc/sys") / s.name.replace(".", "/")).read_text() for s in VENET_SYSCTLS}


def test_read_apply_is_idempotent_and_stays_in_its_namespace(make_netns: Callable[[], str]) -> None:
    root_before = _root_values()
    ns = make_netns()
    before = read_sysctls(ns)
    assert [s.name for s in before] == [s.name for s in VENET_SYSCTLS]
    assert not all(s.ok for s in before)  # a new namespace forwards nothing
    changes = apply_sysctls(ns)
    wanted = {s.name: s.value for s in VENET_SYSCTLS}
    # only real writes are reported (all.forwarding also turns default.forwarding on by itself)
    assert changes and {c.name for c in changes} <= {s.name for s in before if not s.ok}
    assert all(c.new == wanted[c.name] and c.old != c.new for c in changes)
    assert all(s.ok for s in read_sysctls(ns))
    assert apply_sysctls(ns) == []
    assert ip(ns, "netconf", "show", "dev", "lo").count(" forwarding on") == 2  # inet and inet6
    assert _root_values() == root_before


def test_a_missing_sysctl_reads_as_none_and_cannot_be_applied(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    missing = [SysctlSetting("net.ipv4.conf.nosuchlink.forwarding", "1")]
    assert read_sysctls(ns, missing)[0].current is None
    with pytest.raises(SysctlError, match="no such sysctl"):
        apply_sysctls(ns, missing)


def test_persist_writes_atomically_once(tmp_path: Path) -> None:
    target = tmp_path / "sysctl.d" / "90-venetfilter.conf"
    assert persist_sysctls(target) is True
    text = target.read_text()
    assert text == render_sysctl_conf()
    for setting in VENET_SYSCTLS:
        assert f"{setting.name} = {setting.value}\n" in text
    assert "router advertisements" in text and "router advertisements" in IPV6_FORWARDING_WARNING
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    inode = target.stat().st_ino
    assert persist_sysctls(target) is False
    assert target.stat().st_ino == inode  # unchanged file not rewritten
    target.write_text("net.ipv4.ip_forward = 0\n")
    assert persist_sysctls(target) is True
    assert target.read_text() == text
    assert sorted(os.listdir(target.parent)) == ["90-venetfilter.conf"]  # no temporary left


def test_persist_reports_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SysctlError, match="cannot write"):
        persist_sysctls(blocker / "90-venetfilter.conf")
