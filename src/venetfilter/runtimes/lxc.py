"""The LXC hook: ``lxc.hook.start-host`` starts a container's venet link, ``lxc.hook.post-stop`` stops it.

A container's config names the hook for both events and gives LXC no network of its own::

    lxc.net.0.type = empty
    lxc.hook.start-host = /usr/local/bin/venetctl hook lxc
    lxc.hook.post-stop = /usr/local/bin/venetctl hook lxc

LXC runs a hook line through ``sh -c`` in the host's namespaces (those ``lxc-start`` runs in) and
appends ``NAME lxc HOOKTYPE`` to it (lxc.container.conf(5); with ``lxc.hook.version = 1`` nothing is
appended and ``LXC_NAME``, ``LXC_HOOK_SECTION``, ``LXC_HOOK_TYPE`` say it instead). Both hooks get
``LXC_PID``, the container's init: start-host runs after the container's namespaces exist and before
its init is executed, so `Node.start` puts the link into ``/proc/LXC_PID/ns/net`` before anything in
the container can send; post-stop runs once the container is gone. The hooks inherit the environment
of ``lxc-start`` (``VENETFILTER_CONF_DIR`` / ``VENETFILTER_RUN_DIR`` included).

The CTID is the container's name, unless the hook line gives one (``venetctl hook lxc --ctid 101``),
for names that are not valid CTIDs (more than 12 characters, spaces, ...). A refusal (unknown or bad
CTID, address in use, CTID running already, no ``LXC_PID``, a namespace that is the node's or has a
link of its own, a node without the kernel table: nothing would filter) raises a `venetfilter.errors.VenetfilterError` whose `exit_code` LXC logs ("Script
exited with status N") before it aborts the start; nothing is left behind. A post-stop of a
container that is not running succeeds (LXC runs post-stop after a refused start too), and never
stops a CTID whose link lives in another live process's namespace (two LXC containers given the
same CTID: the second one's failed start must not stop the first). A record that a gone LXC
container left (killed with its monitor, no worker to notice) is stopped by the next start-host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config.ctid import CTID_MAX_LENGTH, is_valid_ctid, validate_ctid
from ..errors import InvalidContainerError, InvalidOptionError
from ..lifecycle import Node
from ..lifecycle.node import NOT_RUNNING_MESSAGE, StartResult, StopResult
from ._netns import check_startable
from .records import start_replacing_stale, stop_owned

__all__ = [
    "HOOK_TYPES",
    "NETWORK_HINT",
    "POST_STOP",
    "START_HOST",
    "LxcEvent",
    "LxcHookResult",
    "parse_event",
    "run_hook",
]

START_HOST = "start-host"
POST_STOP = "post-stop"
HOOK_TYPES = (START_HOST, POST_STOP)
NETWORK_HINT = "give it 'lxc.net.0.type = empty' and no other lxc.net.N ('none' shares the host's namespace)"
_SECTION = "lxc"
_USAGE = "use it as lxc.hook.start-host and lxc.hook.post-stop"


@dataclass(frozen=True)
class LxcEvent:
    """One run of the hook: which event, for which LXC container, as which CTID."""

    hook_type: str
    """`START_HOST` or `POST_STOP`."""
    name: str
    """The LXC container's name."""
    ctid: str
    """The venetfilter container id (the name, or the hook line's ``--ctid``)."""
    pid: int | None
    """``LXC_PID``: the container's init (always set by start-host; post-stop has it in LXC 5)."""

    @property
    def netns(self) -> str | None:
        """The container's network namespace, ``/proc/PID/ns/net`` (None without a pid)."""
        return None if self.pid is None else f"/proc/{self.pid}/ns/net"


@dataclass(frozen=True)
class LxcHookResult:
    """What the hook did: the start or stop result, or why it left the CTID alone."""

    event: LxcEvent
    started: StartResult | None = None
    stopped: StopResult | None = None
    message: str = ""
    """One line for the log: what happened."""
    warnings: tuple[str, ...] = ()


def _one(what: str, from_args: str | None, env_name: str, environ: Mapping[str, str]) -> str | None:
    """The value LXC passed as an argument and/or in the environment; they must agree when both are set."""
    from_env = environ.get(env_name) or None
    if from_args is not None and from_env is not None and from_args != from_env:
        raise InvalidOptionError(f"LXC passed two {what}s: {from_args!r} as argument, {from_env!r} in {env_name}")
    return from_args if from_args is not None else from_env


def parse_event(args: Sequence[str], environ: Mapping[str, str], ctid: str | None = None) -> LxcEvent:
    """The event LXC describes with the hook's appended `args` (``NAME SECTION HOOKTYPE ...``, or
    none with ``lxc.hook.version = 1``) and its `environ`; `ctid` is the hook line's ``--ctid``.

    Raises `InvalidOptionError` (not run as an LXC start-host or post-stop hook, no or bad
    ``LXC_PID`` for start-host) or `InvalidContainerError` (no usable CTID); both exit 21.
    """
    if args and len(args) < 3:
        raise InvalidOptionError(
            f"unexpected arguments {' '.join(args)!r}: LXC appends NAME SECTION HOOKTYPE ({_USAGE})"
        )
    name = _one("container name", args[0] if args else None, "LXC_NAME", environ)
    section = _one("hook section", args[1] if args else None, "LXC_HOOK_SECTION", environ)
    hook_type = _one("hook type", args[2] if args else None, "LXC_HOOK_TYPE", environ)
    if name is None or hook_type is None:
        missing = "LXC_NAME" if name is None else "the hook type"
        raise InvalidOptionError(f"not run by LXC ({missing} not given): {_USAGE}")
    if section not in (None, _SECTION):
        raise InvalidOptionError(f"hook section {section!r}: this is a container hook, not a network script ({_USAGE})")
    if hook_type not in HOOK_TYPES:
        raise InvalidOptionError(f"LXC hook type {hook_type!r} is not handled: {_USAGE}")
    if ctid is None:
        if not is_valid_ctid(name):
            raise InvalidContainerError(
                f"LXC container name {name!r} is not a valid CTID (at most {CTID_MAX_LENGTH} letters, digits, "
                f"'_', '-', '.'): give one in the hook line, 'venetctl hook lxc --ctid CTID'"
            )
        ctid = name
    if validate_ctid(ctid).lstrip("0") == "":
        raise InvalidContainerError(f"invalid container id {ctid!r}: CT 0 is the hardware node itself")
    pid = _pid(environ.get("LXC_PID"), required=hook_type == START_HOST)
    return LxcEvent(hook_type, name, ctid, pid)


def _pid(text: str | None, *, required: bool) -> int | None:
    if not text:
        if required:
            raise InvalidOptionError(f"LXC_PID is not set: the container's network namespace is unknown ({_USAGE})")
        return None
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise InvalidOptionError(f"LXC_PID={text!r} is not a process id")
    return int(text)


def run_hook(node: Node, event: LxcEvent) -> LxcHookResult:
    """Start (start-host) or stop (post-stop) `event`'s container on `node`.

    start-host refuses a namespace that is the host's (``lxc.net.0.type = none``) or has a link of
    its own (a veth LXC made), stops first a record that a gone LXC container left (its process or
    its link gone, no worker to notice), and raises what `Node.start` raises; after a refusal
    nothing is left behind. post-stop never fails for a container that is not running, and stops
    only a record this container (or a gone one) made.
    """
    if event.hook_type == START_HOST:
        return _start(node, event)
    return _stop(node, event)


def _start(node: Node, event: LxcEvent) -> LxcHookResult:
    netns = event.netns
    if netns is None or not os.path.exists(netns):
        raise InvalidOptionError(f"LXC_PID={event.pid}: no such process, the container's init is gone")
    check_startable(netns, node.host_netns, NETWORK_HINT)
    result = start_replacing_stale(node, event.ctid, netns, "an LXC container")
    record = result.record
    addresses = " ".join(str(a) for a in record.addresses) or "no addresses"
    message = (f"LXC container {event.name}: CT {event.ctid} started, link {record.link} "
               f"(ifindex {record.ifindex}), {addresses}")
    return LxcHookResult(event, started=result, message=message, warnings=result.warnings)


def _stop(node: Node, event: LxcEvent) -> LxcHookResult:
    prefix = f"LXC container {event.name}: CT {event.ctid}"
    outcome = stop_owned(node, event.ctid, event.pid)
    if outcome.record is not None and outcome.result is None:
        return LxcHookResult(
            event, message=f"{prefix}: left alone",
            warnings=(f"CT {event.ctid} runs in network namespace {outcome.record.netns}, not in LXC container "
                      f"{event.name}'s ({event.netns or 'LXC_PID not set'}): its network was not stopped",),
        )
    if outcome.result is None:  # not running (a start-host refused for it: nothing was ever started)
        return LxcHookResult(event, message=f"{prefix}: {NOT_RUNNING_MESSAGE}")
    stopped = outcome.result
    return LxcHookResult(event, stopped=stopped, message=f"{prefix}: {stopped.message or 'network stopped'}")
