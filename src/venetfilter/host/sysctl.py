"""The sysctls a venet host needs: read them, apply them, persist them in a sysctl.d file.

As VZ7's ``99-vzctl.conf``: IPv4 and IPv6 forwarding, proxy NDP (the kernel answers a proxy NDP
entry only with forwarding and proxy_ndp on) and no ICMP redirects. Global ``proxy_arp`` is
deliberately absent: per-address proxy entries are used instead. ``net.*`` sysctls belong to a
network namespace, so reads and writes run inside the one asked for (`run_in_netns`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config.store import atomic_write
from ..errors import SysctlError
from .netns import NetnsSpec, run_in_netns

__all__ = [
    "DEFAULT_SYSCTL_FILE",
    "IPV6_FORWARDING_WARNING",
    "VENET_SYSCTLS",
    "SysctlChange",
    "SysctlSetting",
    "SysctlStatus",
    "apply_sysctls",
    "persist_sysctls",
    "read_sysctls",
    "render_sysctl_conf",
    "sysctl_path",
]

DEFAULT_SYSCTL_FILE = Path("/etc/sysctl.d/90-venetfilter.conf")

IPV6_FORWARDING_WARNING = (
    "with IPv6 forwarding on, Linux acts as a router and ignores router advertisements: "
    "give the host a static IPv6 address and default route "
    "(e.g. 'ip -6 route add default via GATEWAY dev eth0')"
)


@dataclass(frozen=True)
class SysctlSetting:
    """One sysctl and the value venet needs."""

    name: str
    value: str


VENET_SYSCTLS: tuple[SysctlSetting, ...] = (
    SysctlSetting("net.ipv4.ip_forward", "1"),
    SysctlSetting("net.ipv6.conf.all.forwarding", "1"),
    SysctlSetting("net.ipv6.conf.default.forwarding", "1"),
    SysctlSetting("net.ipv6.conf.all.proxy_ndp", "1"),
    SysctlSetting("net.ipv6.conf.default.proxy_ndp", "1"),
    SysctlSetting("net.ipv4.conf.all.send_redirects", "0"),
    SysctlSetting("net.ipv4.conf.default.send_redirects", "0"),
)


@dataclass(frozen=True)
class SysctlStatus:
    """A setting and its current value (None: the sysctl does not exist, e.g. IPv6 disabled)."""

    name: str
    wanted: str
    current: str | None

    @property
    def ok(self) -> bool:
        """True when the current value is the wanted one."""
        return self.current == self.wanted


@dataclass(frozen=True)
class SysctlChange:
    """A sysctl `apply_sysctls` changed."""

    name: str
    old: str | None
    new: str


def sysctl_path(name: str) -> Path:
    """``/proc/sys/...`` of a dotted sysctl name."""
    if not name or ".." in name or "/" in name:
        raise SysctlError(f"invalid sysctl name {name!r}")
    return Path("/proc/sys", *name.split("."))


def _read(name: str) -> str | None:
    try:
        return sysctl_path(name).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SysctlError(f"cannot read {name}: {exc.strerror or exc}") from exc


def read_sysctls(netns: NetnsSpec = None, settings: Sequence[SysctlSetting] = VENET_SYSCTLS) -> list[SysctlStatus]:
    """The current value of every setting, read inside `netns`."""
    return run_in_netns(netns, lambda: [SysctlStatus(s.name, s.value, _read(s.name)) for s in settings])


def _apply(settings: Sequence[SysctlSetting]) -> list[SysctlChange]:
    changes = []
    for setting in settings:
        old = _read(setting.name)
        if old == setting.value:
            continue
        if old is None:
            raise SysctlError(f"cannot set {setting.name}: no such sysctl (is IPv6 disabled?)")
        try:
            sysctl_path(setting.name).write_text(setting.value + "\n")
        except OSError as exc:
            raise SysctlError(f"cannot set {setting.name}={setting.value}: {exc.strerror or exc}") from exc
        changes.append(SysctlChange(setting.name, old, setting.value))
    return changes


def apply_sysctls(netns: NetnsSpec = None, settings: Sequence[SysctlSetting] = VENET_SYSCTLS) -> list[SysctlChange]:
    """Set every setting that differs, inside `netns`; returns what changed ([] when all were right)."""
    return run_in_netns(netns, lambda: _apply(settings))


def render_sysctl_conf(settings: Sequence[SysctlSetting] = VENET_SYSCTLS) -> str:
    """The sysctl.d file that sets `settings` at boot."""
    lines = [
        "# Written by venetctl sysctl --persist: what venet-style container networking needs.",
        "# Note: " + IPV6_FORWARDING_WARNING + ".",
    ]
    lines += [f"{s.name} = {s.value}" for s in settings]
    return "\n".join(lines) + "\n"


def persist_sysctls(path: str | os.PathLike[str] = DEFAULT_SYSCTL_FILE,
                    settings: Sequence[SysctlSetting] = VENET_SYSCTLS) -> bool:
    """Write the sysctl.d file atomically (0644); False when it already had exactly that content."""
    target = Path(path)
    text = render_sysctl_conf(settings)
    try:
        if target.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        pass  # unreadable or not text: replace it
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text.encode(), mode=0o644)
    except OSError as exc:
        raise SysctlError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return True
