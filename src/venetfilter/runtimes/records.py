"""Whose a runtime record is, for the hooks: a record a hook made names ``/proc/PID/ns/net`` of the
container's process, so a hook can tell its own container's record from another's.

A record belongs to the container that runs (or ran) as PID, and to nobody once that process or
the record's link is gone: such a stale record, left by a container killed with no worker to
notice, is stopped before the CTID starts again (`start_replacing_stale`). A record started by
hand (``venetctl start --netns NAME``) is never a hook's. A stop stops only the record of its own
container, or a stale one (`stop_owned`): a container refused at start because its CTID runs
elsewhere must not take the other container's network down when its own stop hook runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from ..config.runtime import RunningContainer
from ..config.store import global_lock
from ..host import open_iproute
from ..lifecycle import Node
from ..lifecycle.node import StartResult, StopResult

__all__ = ["Stopped", "owned", "start_replacing_stale", "stop_owned"]

_PID_NETNS = re.compile(r"/proc/([1-9][0-9]*)/ns/net")


def owned(node: Node, record: RunningContainer, pid: int | None) -> bool:
    """True when `record` was made by a hook for the process `pid`, or for one that is gone, or its
    link is gone: a record the container that ran as `pid` (or nobody) owns."""
    match = _PID_NETNS.fullmatch(record.netns or "")
    if match is None:  # started by hand (`venetctl start --netns NAME`): not a hook's
        return False
    if int(match[1]) == pid or not os.path.exists(f"/proc/{match[1]}"):
        return True
    with open_iproute(node.host_netns) as ipr:
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.link("dump")}
    return links.get(record.ifindex) != record.link


def start_replacing_stale(node: Node, ctid: str, netns: str, runtime: str) -> StartResult:
    """`Node.start` of `ctid` in `netns`, a stale record of it stopped first (with a warning that
    names the `runtime`'s container, e.g. "an OCI container"); raises what `Node.start` raises."""
    warnings: list[str] = []
    with global_lock(node.run_dir):
        record = node.runtime_state().containers.get(ctid)
        if record is not None and owned(node, record, None):
            node.stop(ctid)
            warnings.append(f"container {ctid} was left running by {runtime} that is gone: stopped first")
        result = node.start(ctid, netns=netns)
    return replace(result, warnings=(*warnings, *result.warnings))


@dataclass(frozen=True)
class Stopped:
    """What `stop_owned` found and did."""

    record: RunningContainer | None
    """The CTID's record (None: nothing was running)."""
    result: StopResult | None
    """`Node.stop`'s result; None when there was no record or it is another container's."""


def stop_owned(node: Node, ctid: str, pid: int | None) -> Stopped:
    """Stop `ctid` if its record is that of the container that ran as `pid` (or a stale one)."""
    with global_lock(node.run_dir):
        record = node.runtime_state().containers.get(ctid)
        if record is None or not owned(node, record, pid):
            return Stopped(record, None)
        # its warnings say that the link went with the container's namespace: as expected here
        return Stopped(record, node.stop(ctid))
