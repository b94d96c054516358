"""Neighbour proxying: per-address proxy ARP (IPv4) and proxy NDP (IPv6) entries on the host uplinks.

Which uplinks is vzctl's ``NEIGHBOUR_DEVS`` (`venetfilter.config.neighbourdevs`), chosen from one
read of the host (`venetfilter.host.view`); the entries themselves are added and deleted in
batches (`venetfilter.host.batch`). The kernel answers for a proxy entry only with forwarding on
(and, for NDP, proxy_ndp on): see `venetfilter.host.sysctl`.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from pyroute2 import IPRoute

from ..config.neighbourdevs import NeighbourDevs, format_neighbour_devs, parse_neighbour_devs
from ._netlink import netlink_step
from .ipaddr import Address

__all__ = ["NTF_PROXY", "NeighbourDevs", "format_neighbour_devs", "parse_neighbour_devs", "proxy_entries"]

NTF_PROXY = 0x08


def _accept(msg: Any) -> bool:
    return True


def proxy_entries(ipr: IPRoute) -> list[tuple[Address, int]]:
    """Every proxy entry of the namespace, as (address, link index).

    Proxy entries are only dumped when the request itself carries NTF_PROXY (``ip neigh show
    proxy``); pyroute2 turns dump keywords into a match filter unless ``dump_filter`` is given.
    """
    found = []
    with netlink_step("list the neighbour proxy entries"):
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in ipr.neigh("dump", family=family, flags=NTF_PROXY, dump_filter=_accept):
                dst = msg.get_attr("NDA_DST")
                if dst is not None and msg["flags"] & NTF_PROXY:
                    found.append((ipaddress.ip_address(dst), msg["ifindex"]))
    return found
