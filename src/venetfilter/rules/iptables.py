"""Install, show and remove venetfilter's chain in the filter table, for IPv4 and IPv6.

One chain, VENETFILTER, jumped to first from INPUT, FORWARD and OUTPUT; it queues every packet that
comes in on or goes out of a container link (`ve-+`) to NFQUEUE. Each change is one
`iptables-restore --noflush` transaction per family, so it applies whole or not at all, and it never
touches a rule that is not ours. Without a worker bound to the queue the kernel drops the queued
packets (fail closed) unless `fail_open` adds --queue-bypass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from ..config.ctid import HOST_IFNAME_PREFIX
from ..errors import VenetfilterError
from ..netns import netns_command

__all__ = ["CHAIN", "Backend", "QueueSpec", "RulesError", "install", "installed", "remove", "render_install", "show"]

CHAIN = "VENETFILTER"
HOOKS = ("INPUT", "FORWARD", "OUTPUT")
LINK_PATTERN = HOST_IFNAME_PREFIX + "+"  # every host-side container link (venetfilter.config.host_ifname)
FAMILIES = (4, 6)

Backend = Literal["auto", "legacy", "nft"]


class RulesError(VenetfilterError):
    """iptables could not do what was asked; the message says why."""


@dataclass(frozen=True)
class QueueSpec:
    """Where the packets go: one queue, or a range balanced by flow (or by CPU with cpu_fanout)."""

    queue: int = 0
    balance: tuple[int, int] | None = None
    cpu_fanout: bool = False
    fail_open: bool = False

    def __post_init__(self) -> None:
        numbers = self.balance or (self.queue, self.queue)
        if not all(0 <= n <= 65535 for n in numbers) or numbers[0] > numbers[1]:
            raise RulesError(f"invalid queue {numbers[0]}:{numbers[1]}: queues are 0..65535, first <= last")

    @property
    def queues(self) -> range:
        first, last = self.balance or (self.queue, self.queue)
        return range(first, last + 1)

    def target(self) -> str:
        if self.balance:
            text = f"NFQUEUE --queue-balance {self.balance[0]}:{self.balance[1]}"
            if self.cpu_fanout:
                text += " --queue-cpu-fanout"
        else:
            text = f"NFQUEUE --queue-num {self.queue}"
        return text + (" --queue-bypass" if self.fail_open else "")


def _tool(family: int, action: Literal["save", "restore"], backend: Backend) -> str:
    base = "iptables" if family == 4 else "ip6tables"
    name = f"{base}-{action}" if backend == "auto" else f"{base}-{backend}-{action}"
    if shutil.which(name) is None:
        raise RulesError(f"{name} not found: install Debian's iptables package")
    return name


def _run(argv: list[str], netns: str | None, stdin: str | None = None) -> str:
    if os.geteuid() != 0:
        raise RulesError("changing or reading firewall rules needs root (CAP_NET_ADMIN)")
    result = subprocess.run(netns_command(argv, netns), input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise RulesError(f"{argv[0]} failed: {message}")
    return result.stdout


def _save(family: int, netns: str | None, backend: Backend) -> str:
    return _run([_tool(family, "save", backend), "-t", "filter"], netns)


def _jumps(saved: str) -> list[str]:
    """The hooks that jump to our chain, once per jump."""
    return re.findall(rf"^-A ({'|'.join(HOOKS)}) -j {CHAIN}$", saved, flags=re.M)


def _has_chain(saved: str) -> bool:
    return re.search(rf"^:{CHAIN} ", saved, flags=re.M) is not None


def render_install(spec: QueueSpec, saved: str) -> str:
    """The restore transaction that makes our chain exactly `spec`, given the current rules."""
    present = set(_jumps(saved))
    lines = ["*filter", f":{CHAIN} - [0:0]"]  # declaring it with --noflush empties it
    lines += [f"-I {hook} 1 -j {CHAIN}" for hook in HOOKS if hook not in present]
    lines += [f"-A {CHAIN} -i {LINK_PATTERN} -j {spec.target()}", f"-A {CHAIN} -o {LINK_PATTERN} -j {spec.target()}"]
    return "\n".join(lines + ["COMMIT", ""])


def _render_remove(saved: str) -> str:
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [f"-D {hook} -j {CHAIN}" for hook in _jumps(saved)]
    return "\n".join(lines + [f"-X {CHAIN}", "COMMIT", ""])


def install(spec: QueueSpec, netns: str | None = None, backend: Backend = "auto") -> list[str]:
    """Install or update our rules for both families; returns what changed (empty: nothing)."""
    changes = []
    for family in FAMILIES:
        before = _save(family, netns, backend)
        _run([_tool(family, "restore", backend), "--noflush"], netns, render_install(spec, before))
        if _ours(_save(family, netns, backend)) != _ours(before):
            changes.append(f"IPv{family}: installed {spec.target()}")
    return changes


def remove(netns: str | None = None, backend: Backend = "auto") -> list[str]:
    """Remove our chain and the jumps to it; other rules stay. Returns what changed."""
    changes = []
    for family in FAMILIES:
        saved = _save(family, netns, backend)
        if _has_chain(saved):
            _run([_tool(family, "restore", backend), "--noflush"], netns, _render_remove(saved))
            changes.append(f"IPv{family}: removed")
    return changes


def _ours(saved: str) -> list[str]:
    return [line for line in saved.splitlines() if CHAIN in line]


def show(netns: str | None = None, backend: Backend = "auto") -> dict[int, list[str]]:
    """Our rules per family, as iptables-save prints them."""
    return {family: _ours(_save(family, netns, backend)) for family in FAMILIES}


def installed(netns: str | None = None, backend: Backend = "auto") -> bool:
    """Whether both families have our chain hooked from every hook."""
    return all(
        _has_chain(saved) and set(_jumps(saved)) == set(HOOKS)
        for saved in (_save(family, netns, backend) for family in FAMILIES)
    )
