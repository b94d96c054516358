"""A container's life on the node: `Node.start`, `stop`, `set` and `status`, each one transaction
over the container's runtime record, the host and the filter (see `venetfilter.lifecycle.node`)."""

from __future__ import annotations

from .network import DryNetwork, HostNetwork, Network
from .node import NOT_RUNNING_MESSAGE, NOT_SAVED_WARNING, ContainerInfo, Node, SetResult, StartResult, StopResult

__all__ = [
    "NOT_RUNNING_MESSAGE",
    "NOT_SAVED_WARNING",
    "ContainerInfo",
    "DryNetwork",
    "HostNetwork",
    "Network",
    "Node",
    "SetResult",
    "StartResult",
    "StopResult",
]
