"""``status``: what is true on the node now, compared with what the records say.

Per container: its record's phase, whether its link and namespace exist, whether the link is in
our interface group, its saved and runtime addresses, and whether the kernel table passes exactly
those. For the node: the table (present, mode), the worker (answering, serving the state's
generation, guarding). A running container is *isolated* when the table is in place with its
queue rule and the container's link is known to the kernel as a container link: then nothing it
does not own passes, worker or no worker (without one, refused packets are dropped unjudged).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config.ctid import LINK_GROUP
from ..config.runtime import RuntimeState, load_state, table_entries
from ..errors import CorruptStateError, VenetfilterError
from ..host import open_iproute
from ..rules import RulesError, desired_elements, installed_layout, read_elements
from ..rules.layout import LINKS
from ..config.notify import request

__all__ = ["ContainerStatus", "NodeStatus", "gather_status"]


@dataclass
class ContainerStatus:
    ctid: str
    phase: str  # starting | running | stopping | stopped
    link: str | None = None
    link_present: bool = False
    link_in_group: bool = False
    netns: str | None = None
    netns_present: bool = False
    saved: list[str] | None = None
    runtime: list[str] | None = None
    filter_matches: bool = False  # the kernel table passes exactly the runtime addresses on this link
    isolated: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class NodeStatus:
    table: bool = False
    mode: str | None = None
    queue: str | None = None
    worker: bool = False
    worker_generation: int | None = None
    state_generation: int | None = None
    guard: bool | None = None
    containers: list[ContainerStatus] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def isolated(self) -> bool:
        """Every container that has a record is isolated."""
        return all(c.isolated for c in self.containers if c.phase != "stopped")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "isolated": self.isolated}


def _links(host_netns: str | None) -> dict[str, tuple[int, int]]:
    """{name: (index, group)} of the links of the host's namespace."""
    with open_iproute(host_netns) as ipr:
        return {m.get_attr("IFLA_IFNAME"): (m["index"], m.get_attr("IFLA_GROUP") or 0) for m in ipr.link("dump")}


def _netns_present(netns: str | None) -> bool:
    from ..host.netns import netns_exists

    return netns is not None and netns_exists(netns)


def gather_status(node: Any, ctid: str | None = None) -> NodeStatus:
    """The status of `node` (a `Node`), or of one of its containers."""
    status = NodeStatus()
    try:
        state = load_state(node.run_dir)
    except CorruptStateError as exc:
        status.problems.append(str(exc))
        state = RuntimeState()
    status.state_generation = state.generation
    host_netns = node.host_netns
    try:
        layout = installed_layout(node.node_config.link_prefix, host_netns)
        status.table = layout is not None
        status.queue = (None if layout is None else layout.queue.describe() if layout.mode == "queue"
                        else f"netdev, refused packets logged to group {layout.queue.queue}")
        status.mode = layout.mode if layout else None
        elements = read_elements(host_netns) if status.table else {}
    except (RulesError, OSError) as exc:
        status.problems.append(f"cannot read the kernel table: {exc}")
        elements = {}
    if not status.table:
        status.problems.append("no kernel table venetfilter is installed: containers are not isolated "
                               "(start the worker, or 'venetctl rules install')")
    try:
        stats = json.loads(request(node.run_dir, b"stats\n", timeout=1.0))
        status.worker, status.worker_generation = True, stats.get("generation")
        status.mode, status.guard = stats.get("mode"), stats.get("guard", {}).get("enabled")
        if status.worker_generation != state.generation:
            status.problems.append(f"the worker serves generation {status.worker_generation}, the state is at "
                                   f"{state.generation}")
    except (OSError, ValueError):
        status.problems.append("no worker answers: refused packets are dropped unjudged, and nobody guards the table")
    try:
        links = _links(host_netns)
    except (OSError, VenetfilterError) as exc:
        status.problems.append(f"cannot list the host's links: {exc}")
        links = {}
    wanted = desired_elements(table_entries(state))
    infos = [node.info(ctid)] if ctid is not None else node.containers()
    for info in infos:
        record = info.runtime
        entry = ContainerStatus(info.ctid, record.phase if record else "stopped")
        entry.saved = None if info.saved is None else [str(a) for a in info.saved]
        if record is not None:
            entry.link, entry.netns = record.link, record.netns
            entry.runtime = [str(a) for a in record.addresses]
            index, group = links.get(record.link, (None, None))
            entry.link_present = index is not None
            entry.link_in_group = group == LINK_GROUP
            entry.netns_present = _netns_present(record.netns)
            mine = {e for e in wanted if e[1] == record.ifindex}
            entry.filter_matches = {e for e in elements if e[1] == record.ifindex} == mine or status.mode == "queue"
            if record.phase != "running":
                entry.problems.append(f"left {record.phase} by an interrupted command: 'venetctl stop {info.ctid}' "
                                      "finishes it")
            if not entry.link_present:
                entry.problems.append(f"its link {record.link} is gone")
            elif index != record.ifindex:
                entry.problems.append(f"its link {record.link} is not the one recorded (#{record.ifindex}): the "
                                      "filter does not know it and drops its traffic")
            elif status.mode == "default" and (LINKS, record.ifindex, "") not in elements:
                entry.problems.append(f"its link {record.link} has no chains in the kernel table: not filtered")
            elif status.mode == "queue" and not entry.link_in_group:
                entry.problems.append(f"its link {record.link} is not in group {LINK_GROUP}: not filtered")
            if not entry.netns_present:
                entry.problems.append(f"its network namespace {record.netns} is gone")
            if status.table and not entry.filter_matches:
                entry.problems.append("the kernel table does not hold exactly its addresses")
            filtered = (LINKS, record.ifindex, "") in elements if status.mode == "default" else entry.link_in_group
            entry.isolated = status.table and (not entry.link_present or filtered)
        status.containers.append(entry)
    return status

