"""Host networking for venet-style containers, through netlink (pyroute2) in any network namespace.

What OpenVZ's kernel and vzctl scripts did for a container's network, on a stock kernel: a
venet-like link (`link`), addresses and default routes inside (`inside`), host routes and proxy
ARP/NDP entries in batches (`batch`), chosen from one read of the host (`view`), duplicate address
detection and announcements (`announce`), the forwarding sysctls (`sysctl`), all tied together
step by step with rollback by `container`. Every function takes the network namespace(s) to act
in (`netns`). The order of the steps, and the runtime record, are `venetfilter.lifecycle`'s.
"""

from __future__ import annotations

from .container import (
    ContainerNetwork,
    PartialChangeError,
    Step,
    change_addresses,
    default_netns_name,
    network_of,
    proxy_devices_of,
    start,
    stop,
)
from .link import CONTAINER_IFNAME, host_ifname
from .neighbours import NeighbourDevs, parse_neighbour_devs, proxy_entries
from .netns import NetnsSpec, create_netns, open_iproute, remove_netns, run_in_netns
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
    "VENET_SYSCTLS",
    "ContainerNetwork",
    "NeighbourDevs",
    "NetnsSpec",
    "PartialChangeError",
    "Step",
    "SysctlChange",
    "SysctlStatus",
    "apply_sysctls",
    "change_addresses",
    "create_netns",
    "default_netns_name",
    "host_ifname",
    "network_of",
    "open_iproute",
    "parse_neighbour_devs",
    "persist_sysctls",
    "proxy_devices_of",
    "proxy_entries",
    "read_sysctls",
    "remove_netns",
    "run_in_netns",
    "start",
    "stop",
]
