"""The worker's systemd unit: its template, rendered with this install's paths, and installed.

`TEMPLATE` is the one source of the unit (``contrib/venetfilter-worker.service`` is its rendering
for the default paths, checked by a test). What the worker needs, measured with strace through a
start, a reload, a container's death and a stop:

- capabilities: CAP_NET_ADMIN (NFQUEUE, nftables, links, proxy entries) and CAP_SYS_ADMIN (entering
  a container's namespace and unmounting one ``start`` created, when its link dies before it);
- sockets: netlink, unix (control socket, sd_notify, pyroute2's helpers), IPv4/IPv6 (metrics);
- system calls: ``@system-service`` and ``umount2``; no writable executable memory;
- files: it writes only its run dir (and ``/run/netns``, to remove a dead container's namespace);
  it reads its conf dir and never writes /etc, nor takes iptables' ``/run/xtables.lock``.

tests/service checks the unit with ``systemd-analyze verify`` and ``security`` (exposure 2.2), and
runs the worker with that bounding set, no new privileges and PR_SET_MDWE.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

from ..config.paths import DEFAULT_CONF_DIR, DEFAULT_RUN_DIR
from ..system_files import SystemFileError, absolute, installed_script

__all__ = [
    "SYSTEM_UNIT_DIR",
    "TEMPLATE",
    "UNIT_NAME",
    "UnitError",
    "daemon_reload",
    "installed_worker",
    "render",
    "systemd_running",
]

UNIT_NAME = "venetfilter-worker.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
HIDDEN = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")  # ProtectHome= and PrivateTmp= hide these

TEMPLATE = """\
# {name}: rendered by 'venetctl install-service' (venetfilter.worker.unit); edit with 'systemctl edit'.
[Unit]
Description=venetfilter NFQUEUE worker (OpenVZ venet-style isolation for containers)
# a firewall: up before any network is configured
Before=network-pre.target
Wants=network-pre.target
# a crash loop never gives up: while the worker is down its table stays and drops what it would judge
StartLimitIntervalSec=0

[Service]
# READY=1 once the queues are bound and the kernel table installed (it stays when the worker stops)
Type=notify
NotifyAccess=main
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=3s
TimeoutStopSec=15s
{run_dir_lines}
UMask=0077

# NFQUEUE, nftables, links and proxy entries; entering and removing a dead container's namespace
CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN
NoNewPrivileges=yes
RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6
# metrics (--metrics-port) answer on localhost only: widen IPAddressAllow= to scrape from elsewhere
IPAddressDeny=any
IPAddressAllow=localhost
RestrictNamespaces=net
SystemCallArchitectures=native
SystemCallFilter=@system-service umount2
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
MemoryDenyWriteExecute=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
PrivateMounts=yes
ProtectSystem=strict
ReadWritePaths=-/run/netns
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible

[Install]
WantedBy=multi-user.target
"""


class UnitError(SystemFileError):
    """Paths the unit cannot use (relative, hidden by its sandbox, or not expressible): exit code 21."""


def quote(arg: str) -> str:
    """`arg` as one word of a unit file's command line or path list (specifiers and variables off)."""
    if not arg or any(ord(c) < 32 or ord(c) == 127 for c in arg):
        raise UnitError(f"{arg!r} cannot be written in a unit file")
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if any(c in escaped for c in " \t\"'\\;"):
        escaped = '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


def _absolute(path: Path, what: str) -> PurePosixPath:
    pure = absolute(path, what, UnitError)
    for hidden in HIDDEN:
        if pure == PurePosixPath(hidden) or PurePosixPath(hidden) in pure.parents:
            raise UnitError(f"the {what} {pure} is under {hidden}, which the unit's sandbox hides")
    return pure


def _run_dir_lines(run_dir: PurePosixPath) -> str:
    """A run dir under /run is the unit's RuntimeDirectory (made at start, kept at stop: it holds
    the containers' records); another must exist and is made writable."""
    if PurePosixPath("/run") in run_dir.parents:
        name = str(run_dir.relative_to("/run"))
        return f"RuntimeDirectory={quote(name)}\nRuntimeDirectoryMode=0700\nRuntimeDirectoryPreserve=yes"
    return f"ReadWritePaths={quote(str(run_dir))}"


def render(worker: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR) -> str:
    """The unit text for the ``venetfilter-worker`` at `worker` serving `conf_dir` and `run_dir`."""
    worker_path = _absolute(worker, "worker")
    conf, run = _absolute(conf_dir, "conf dir"), _absolute(run_dir, "run dir")
    exec_start = " ".join(quote(arg) for arg in (str(worker_path), "--conf-dir", str(conf), "--run-dir", str(run)))
    return TEMPLATE.format(name=UNIT_NAME, exec_start=exec_start, run_dir_lines=_run_dir_lines(run))


def installed_worker() -> Path:
    """The absolute path of the ``venetfilter-worker`` script of the running Python environment
    (its scripts directory, then $PATH); `UnitError` when there is none."""
    return installed_script("venetfilter-worker", UnitError)


def systemd_running() -> bool:
    """Whether systemd is the running service manager (sd_booted(3): /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


def daemon_reload() -> subprocess.CompletedProcess[str]:
    """``systemctl daemon-reload``: systemd reads the unit again."""
    return subprocess.run(["systemctl", "daemon-reload"], capture_output=True, text=True, check=False)
