"""Host networking for venet-style containers, through netlink (pyroute2) in any network namespace.

What OpenVZ's kernel and vzctl scripts did for a container's network, on a stock kernel: a
venet-like link (`link`), addresses and default routes inside (`inside`), host routes (`routes`),
proxy ARP/NDP (`neighbours`), the forwarding sysctls (`sysctl`), all tied together with rollback
by `container`. Every function takes the network namespace(s) to act in (`netns`).
"""

from __future__ import annotations

from .applier import HostApplier
from .container import ContainerNetwork, change_addresses, default_netns_name, network_of, start, stop
from .link import CONTAINER_IFNAME, host_ifname
from .neighbours import NeighbourDevs, parse_neighbour_devs, proxy_entries
from .netns import NetnsSpec, create_netns, open_iproute, remove_netns, run_in_netns
from .record import RECORD_SUBDIR, load_record, remove_record, save_record
from .sysctl import (
    DEFAULT_SYSCTL_FILE,
    IPV6_FORWARDING_WARNING,
    VENET_SYSCTLS,
    SysctlChange,
    SysctlStatus,
    apply_sysctls,
    persist_sysctls,
    read_sysctls,
)

__all__ = [
    "CONTAINER_IFNAME",
    "DEFAULT_SYSCTL_FILE",
    "IPV6_FORWARDING_WARNING",
    "RECORD_SUBDIR",
    "VENET_SYSCTLS",
    "ContainerNetwork",
    "HostApplier",
    "NeighbourDevs",
    "NetnsSpec",
    "SysctlChange",
    "SysctlStatus",
    "apply_sysctls",
    "change_addresses",
    "create_netns",
    "default_netns_name",
    "host_ifname",
    "load_record",
    "network_of",
    "open_iproute",
    "parse_neighbour_devs",
    "persist_sysctls",
    "proxy_entries",
    "read_sysctls",
    "remove_netns",
    "remove_record",
    "run_in_netns",
    "save_record",
    "start",
    "stop",
]
