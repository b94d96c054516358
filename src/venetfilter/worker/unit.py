"""The worker's systemd unit: its template, rendered with this install's paths, and installed.

`TEMPLATE` is the one source of the unit (``contrib/venetfilter-worker.service`` is its rendering
for the default paths, checked by a test). What the worker needs, measured with strace through a
start, a reload, a container's death and a stop:

- capabilities: CAP_NET_ADMIN (NFQUEUE, NFLOG, nftables, links, proxy entries) and CAP_SYS_ADMIN (entering
  a container's namespace and unmounting one ``start`` created, when its link dies before it);
- sockets: netlink, unix (control socket, sd_notify, pyroute2's helpers), IPv4/IPv6 (metrics);
- system calls: ``@system-service`` and ``umount2``; no writable executable memory;
- files: it writes only its run dir (and ``/run/netns``, to remove a dead container's namespace);
  it reads its conf dir and never writes /etc, nor takes iptables' ``/run/xtables.lock``.

systemd reads the settings differently (systemd.service(5), systemd.exec(5), systemd.unit(5)): all of
them unquote their words and expand ``%`` specifiers, only the ``Exec*=`` command lines expand
``$VAR`` (`quote`); ``ReadWritePaths=`` takes the rest literally (`quote_path`); ``RuntimeDirectory=``
also reads C escapes and ``:`` as the start of a symlink (`quote_directory_name`).

tests/service checks the unit with ``systemd-analyze verify`` and ``security`` (exposure 2.2), and
runs the worker with that bounding set, no new privileges and PR_SET_MDWE.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from ..config.paths import DEFAULT_CONF_DIR, DEFAULT_RUN_DIR
from ..system_files import SystemFileError, absolute, installed_script

__all__ = [
    "HIDDEN",
    "SYSTEM_UNIT_DIR",
    "TEMPLATE",
    "UNIT_NAME",
    "UnitError",
    "check_runnable",
    "daemon_reload",
    "hidden_by",
    "installed_worker",
    "interpreter",
    "quote",
    "quote_directory_name",
    "quote_path",
    "render",
    "systemd_running",
    "writable_run_dir",
]

UNIT_NAME = "venetfilter-worker.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
# what the unit's processes cannot see, and the setting that hides it (systemd.exec(5))
HIDDEN = {
    "/home": "ProtectHome=yes", "/root": "ProtectHome=yes", "/run/user": "ProtectHome=yes",
    "/tmp": "PrivateTmp=yes", "/var/tmp": "PrivateTmp=yes",
    "/usr/lib/modules": "ProtectKernelModules=yes", "/lib/modules": "ProtectKernelModules=yes",
}
# the PATH systemd gives a system service (systemd.exec(5), "Environment variables in spawned processes")
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

TEMPLATE = """\
# {name}: rendered by 'venetctl install-service' (venetfilter.worker.unit); edit with 'systemctl edit'.
[Unit]
Description=venetfilter worker (OpenVZ venet-style isolation for containers)
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

# NFQUEUE, NFLOG, nftables, links and proxy entries; entering and removing a dead container's namespace
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


def _writable(arg: str) -> None:
    if not arg or any(ord(c) < 32 or ord(c) == 127 for c in arg):
        raise UnitError(f"{arg!r} cannot be written in a unit file")


def _double_quoted(escaped: str) -> str:
    if any(c in escaped for c in " \t\"'\\;"):
        escaped = '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


def quote(arg: str) -> str:
    """`arg` as one word of an ``Exec*=`` command line: specifiers (``%``) and variables (``$``) off."""
    _writable(arg)
    return _double_quoted(arg.replace("%", "%%").replace("$", "$$"))


def quote_path(arg: str) -> str:
    """`arg` as one word of a path list (``ReadWritePaths=``): unquoted and specifiers expanded, no
    variables (``$`` stays as it is); a leading ``-`` or ``+`` would be a prefix, an absolute path has none."""
    _writable(arg)
    return _double_quoted(arg.replace("%", "%%"))


# C escapes for what RuntimeDirectory= would otherwise take apart: its words are unquoted keeping
# their escapes, then split at ':' (a symlink to make) and C-unescaped, then specifiers expanded
_DIRECTORY_ESCAPES = {"\\": "\\x5c", '"': "\\x22", "'": "\\x27", ":": "\\x3a", "%": "%%"}


def quote_directory_name(name: str) -> str:
    """`name` as one word of ``RuntimeDirectory=``: specifiers off, ``:`` not a symlink, no variables."""
    _writable(name)
    escaped = "".join(_DIRECTORY_ESCAPES.get(c, c) for c in name)
    return f'"{escaped}"' if " " in escaped else escaped


def hidden_by(path: str | os.PathLike[str]) -> str | None:
    """The directory of `HIDDEN` that `path` (taken as written) is in, or None."""
    pure = PurePosixPath(path)
    for hidden in HIDDEN:
        if pure == PurePosixPath(hidden) or PurePosixPath(hidden) in pure.parents:
            return hidden
    return None


# what a refusal adds, by what is hidden: the consequence, and what to do instead
_WORKER_ADVICE = (
    "the unit would fail with 203/EXEC at every start. Install venetfilter into a virtual environment "
    "made from the system's Python (e.g. '/usr/bin/python3 -m venv /opt/venetfilter') and run its "
    "venetctl, or give --worker a venetfilter-worker that runs from outside {hidden}"
)
_DIRECTORY_ADVICE = "the worker could not use it. Give a {option} outside {hidden}"


def _refuse_hidden(what: str, path: str | os.PathLike[str], advice: str, resolve: bool) -> None:
    """The one check (and message) for a path the unit's sandbox hides: `UnitError` when `path` is,
    as written, under a directory of `HIDDEN`, or (with `resolve`) is looked up through one on the
    way to it (any of its symlinks followed)."""
    written = os.fspath(path)
    lookups = _lookups(written) if resolve else [str(PurePosixPath(written))]
    hidden_lookups = [(p, h) for p in lookups if (h := hidden_by(os.path.dirname(p))) is not None]
    if not hidden_lookups and (h := hidden_by(written)) is not None:  # the hidden directory itself
        hidden_lookups = [(written, h)]
    if not hidden_lookups:
        return
    looked_up, hidden = hidden_lookups[-1]  # the deepest: the symlink that leads out of it, if one does
    real = os.path.realpath(written) if resolve else written
    shown = written if real == written else f"{written} (resolved: {real})"
    where = "is" if looked_up in (written, real) or not resolve else f"goes through {looked_up},"
    raise UnitError(f"the {what} {shown} {where} under {hidden}, which the unit's sandbox hides ({HIDDEN[hidden]}): "
                    + advice.format(hidden=", ".join(HIDDEN)))


def _absolute(path: Path, what: str, advice: str) -> PurePosixPath:
    pure = absolute(path, what, UnitError)
    _refuse_hidden(what, pure, advice, resolve=False)
    return pure


def _run_dir_lines(run_dir: PurePosixPath) -> str:
    """A run dir under /run is the unit's RuntimeDirectory (made at start, kept at stop: it holds
    the containers' records); another must exist at start (install-service makes it: `writable_run_dir`)
    and is made writable, without '-': a missing one fails the start naming it (226/NAMESPACE), where the
    worker would otherwise start on a read-only path it cannot make its run dir in (ProtectSystem=strict)."""
    if PurePosixPath("/run") in run_dir.parents:
        name = quote_directory_name(str(run_dir.relative_to("/run")))
        return f"RuntimeDirectory={name}\nRuntimeDirectoryMode=0700\nRuntimeDirectoryPreserve=yes"
    return f"ReadWritePaths={quote_path(str(run_dir))}"


def writable_run_dir(run_dir: Path) -> PurePosixPath | None:
    """The run dir when the unit names it in ``ReadWritePaths=`` (outside /run: it must exist when the
    unit starts, or the start fails with 226/NAMESPACE), None when it is the unit's RuntimeDirectory=."""
    run = absolute(run_dir, "run dir", UnitError)
    return None if PurePosixPath("/run") in run.parents else run


def render(worker: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR) -> str:
    """The unit text for the ``venetfilter-worker`` at `worker` serving `conf_dir` and `run_dir`."""
    worker_path = _absolute(worker, "worker", _WORKER_ADVICE)
    conf = _absolute(conf_dir, "conf dir", _DIRECTORY_ADVICE.replace("{option}", "--conf-dir"))
    run = _absolute(run_dir, "run dir", _DIRECTORY_ADVICE.replace("{option}", "--run-dir"))
    exec_start = " ".join(quote(arg) for arg in (str(worker_path), "--conf-dir", str(conf), "--run-dir", str(run)))
    return TEMPLATE.format(name=UNIT_NAME, exec_start=exec_start, run_dir_lines=_run_dir_lines(run))


# pip's launcher for an interpreter path a #! line cannot hold (too long, or with a space): a
# "#!/bin/sh" line, then "'''exec' "/path/to/python" "$0" "$@"" (distlib's ScriptMaker)
_SH_LAUNCHER = re.compile(rb"""^'''exec' "([^"]+)" "\$0" "\$@"$""", re.MULTILINE)


def interpreter(script: Path) -> Path | None:
    """The program the kernel runs `script` with: its ``#!`` line's (for ``/usr/bin/env NAME``, the
    NAME on the PATH of a system service; for pip's ``/bin/sh`` launcher, the python it execs); None
    for a file without one (a binary)."""
    with open(script, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        raise UnitError(f"the worker {script} has an empty #! line")
    program, args = os.fsdecode(words[0]), [os.fsdecode(w) for w in words[1:]]
    if os.path.basename(program) == "env" and args and not args[0].startswith("-"):
        found = shutil.which(args[0], path=SERVICE_PATH)
        if found is None:
            raise UnitError(f"the worker {script} runs '{program} {args[0]}', and there is no {args[0]} on the "
                            f"PATH of a system service ({SERVICE_PATH})")
        return Path(found)
    launcher = _SH_LAUNCHER.search(head)
    if os.path.basename(program) == "sh" and launcher:
        return Path(os.fsdecode(launcher[1]))
    return Path(program)


def _venv_home(python: Path) -> Path | None:
    """The ``home`` of the virtual environment of `python` (the Python whose standard library it runs)."""
    try:
        lines = (python.parent.parent / "pyvenv.cfg").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home" and value.strip():
            return Path(value.strip())
    return None


def _lookups(path: str | os.PathLike[str]) -> list[str]:
    """Every path the kernel looks up to reach `path`, each symlink followed (its target's components
    too), in order: a lookup in a directory the unit hides fails there, wherever the chain ends."""
    looked: list[str] = []
    pending = list(PurePosixPath(os.path.abspath(path)).parts[1:])
    current, links = "/", 0
    while pending:
        part = pending.pop(0)
        if part in (".", ""):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        looked.append(candidate)
        if os.path.islink(candidate):
            links += 1
            if links > 40:  # the kernel's limit (ELOOP)
                raise UnitError(f"too many symlinks resolving {os.fspath(path)}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending = list(PurePosixPath(target).parts[1 if target.startswith("/") else 0:]) + pending
        else:
            current = candidate
    return looked


def check_runnable(worker: Path) -> None:
    """`UnitError` when the unit could not run `worker` (203/EXEC at every start, and Restart=always
    with no start limit: forever): the worker, its ``#!`` interpreter, or the base Python of that
    interpreter's virtual environment is, or resolves (through any of its symlinks), into a directory
    the unit hides, or the interpreter is not there. A worker that does not exist (yet) is checked
    as written only. `render` refuses a hidden worker with the same check and message."""
    _refuse_hidden("worker", worker, _WORKER_ADVICE, resolve=True)
    if not os.path.isfile(worker):
        return
    python = interpreter(worker)
    if python is None:
        return
    if not os.path.exists(python):
        raise UnitError(f"the worker {worker} runs with {python}, which does not exist")
    _refuse_hidden("worker's #! interpreter", python, _WORKER_ADVICE, resolve=True)
    home = _venv_home(python)
    if home is not None:
        _refuse_hidden("worker's virtual environment's base Python", home, _WORKER_ADVICE, resolve=True)


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
