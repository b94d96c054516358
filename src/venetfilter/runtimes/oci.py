"""The OCI runtime hook (podman, CRI-O; runc, crun): a container's venet link for its life.

The runtime runs ``venetctl hook oci`` with the container's state on stdin (runtime-spec
"state": ``ociVersion``, ``id``, ``status``, ``pid``, ``bundle``, ``annotations``). The CTID is
the annotation ``io.venetfilter.ctid``; the addresses are those of its config file, as for
``venetctl start``. The container must have a network namespace of its own with nothing in it
(podman ``--network none``), and the node its kernel table (the worker ran, or ``rules install``):
without it ``venetctl start`` only warns, but a runtime shows a hook's warnings to no one.

The stage comes from the state's ``status``, unless ``--stage`` names it. One hooks.d file
describes one hook, with one ``args`` list, for all the stages it names: a single shipped file
cannot pass a different ``--stage`` to each. The status can, and the runtime-spec defines it:
``creating`` in the ``createRuntime`` hooks (and the deprecated ``prestart``, run at the same
moment by runc), when the container's namespaces exist and its process has not run yet;
``stopped`` at ``poststop``. Any other status means a file names another stage, and is refused
rather than guessed at. ``createRuntime``, not ``createContainer`` or ``startContainer``: those
run inside the container's mount namespace, where there is no venetctl. ``--stage`` is for a
file per stage, or a runtime that reports another status.

Poststop stops the CTID's record only when this container made it: its namespace is
``/proc/PID/ns/net`` of the state's process, or of a process that is gone, or its link is gone.
A container refused at create because its CTID runs elsewhere must not take the other
container's network down when its own poststop runs. Nothing left to stop is not an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Literal

from ..config.ctid import validate_ctid
from ..errors import InvalidContainerError, InvalidOptionError
from ..lifecycle import Node
from ._netns import check_startable, pid_netns
from .records import start_replacing_stale, stop_owned

__all__ = [
    "ANNOTATION",
    "MAX_STATE_BYTES",
    "STAGES",
    "STATUSES",
    "Action",
    "HookResult",
    "OciState",
    "action_of",
    "ctid_of",
    "parse_state",
    "read_state",
    "run",
    "start",
    "stop",
]

Action = Literal["start", "stop"]

ANNOTATION = "io.venetfilter.ctid"
STAGES: Mapping[str, Action] = {"createRuntime": "start", "prestart": "start", "poststop": "stop"}
"""The hook stages ``--stage`` accepts, and what each does."""
STATUSES: Mapping[str, Action] = {"creating": "start", "stopped": "stop"}
"""What each container status on stdin does when no ``--stage`` is given."""
MAX_STATE_BYTES = 1 << 20
NETWORK_HINT = "run it with --network none"


@dataclass(frozen=True)
class OciState:
    """What the hook uses of the runtime-spec state."""

    id: str
    status: str
    pid: int | None
    annotations: Mapping[str, str]

    @property
    def name(self) -> str:
        """``OCI container ID`` (the id cut to 12 characters, as podman shows it)."""
        return f"OCI container {self.id[:12]}"


@dataclass(frozen=True)
class HookResult:
    """What the hook did: `ctid` is None when there was nothing to do."""

    action: Action
    ctid: str | None
    warnings: tuple[str, ...] = ()


def read_state(stream: BinaryIO) -> bytes:
    """The state document from `stream` (at most `MAX_STATE_BYTES`)."""
    if stream.isatty():
        raise InvalidOptionError("the hook reads the container's state as JSON on stdin: the runtime runs it")
    data = stream.read(MAX_STATE_BYTES + 1)
    if len(data) > MAX_STATE_BYTES:
        raise InvalidOptionError(f"the container state on stdin is longer than {MAX_STATE_BYTES} bytes")
    return data


def _bad(what: str) -> InvalidOptionError:
    return InvalidOptionError(f"the container state on stdin {what}")


def parse_state(data: bytes | str) -> OciState:
    """The state document; `InvalidOptionError` (exit 21) when it is not one."""
    try:
        doc = json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _bad(f"is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _bad("is not a JSON object")
    ident, status, pid, annotations = doc.get("id"), doc.get("status"), doc.get("pid"), doc.get("annotations", {})
    if not isinstance(ident, str) or not ident:
        raise _bad("has no container id ('id')")
    if not isinstance(status, str):
        raise _bad("has no status ('status')")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise _bad(f"has an invalid pid {pid!r}")
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise _bad("has invalid annotations (an object of strings expected)")
    return OciState(ident, status, pid, annotations)


def action_of(state: OciState, stage: str | None = None) -> Action:
    """Start or stop: from `stage` when given, else from the state's status."""
    if stage is not None:
        if stage not in STAGES:
            raise InvalidOptionError(f"unknown hook stage {stage!r}: use {', '.join(STAGES)}")
        return STAGES[stage]
    if state.status not in STATUSES:
        raise InvalidOptionError(
            f"{state.name} has status {state.status!r}: the hook runs at createRuntime (status 'creating') "
            "and poststop ('stopped'); give --stage for another"
        )
    return STATUSES[state.status]


def ctid_of(state: OciState) -> str:
    """The CTID the annotation names; `InvalidOptionError` or `InvalidContainerError` (exit 21)."""
    value = state.annotations.get(ANNOTATION)
    if value is None:
        raise InvalidOptionError(f"{state.name} has no annotation {ANNOTATION}: give --annotation {ANNOTATION}=CTID")
    try:
        return validate_ctid(value)
    except InvalidContainerError as exc:
        raise InvalidContainerError(f"{state.name}: annotation {ANNOTATION}: {exc}") from None


def start(node: Node, state: OciState) -> HookResult:
    """Start the CTID's network in the namespace of the state's process. A record a gone OCI
    container left (no worker noticed) is stopped first; any refusal leaves nothing behind."""
    ctid = ctid_of(state)
    if state.pid is None:
        raise _bad(f"has no pid ('pid') for {state.name}: the hook must run at createRuntime")
    path = pid_netns(state.pid)
    check_startable(path, node.host_netns, NETWORK_HINT)
    result = start_replacing_stale(node, ctid, path, "an OCI container")
    return HookResult("start", ctid, result.warnings)


def stop(node: Node, state: OciState) -> HookResult:
    """Stop the CTID's network if this container owns its record; else nothing (not an error)."""
    try:
        ctid = ctid_of(state)
    except (InvalidOptionError, InvalidContainerError):  # refused at create: nothing was started
        return HookResult("stop", None)
    if stop_owned(node, ctid, state.pid).result is None:  # nothing running, or another container's
        return HookResult("stop", None)
    return HookResult("stop", ctid)


def run(node: Node, data: bytes | str, stage: str | None = None) -> HookResult:
    """The hook: parse the state, start or stop."""
    state = parse_state(data)
    if action_of(state, stage) == "start":
        return start(node, state)
    return stop(node, state)
