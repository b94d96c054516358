"""Netlink link events in the worker: the interface group of our links kept right, and the
default mode's per-link chains told of every container link that appears or is renamed.

The kernel rules know a container link by its interface group (`LINK_GROUP`), not by its name: one
integer compare per packet. ``start`` creates each link in that group; should anyone move a
container link (named with our prefix, or registered under any name) out of it (``ip link set
vnf101 group 0``), create one outside it, or make one a bridge port (its packets would come up as
the bridge's), the watcher puts it right at once, logs a warning and counts it. It looks at every link once at start,
then follows RTM_NEWLINK events. (The kernel announces a group change only for a link that is up;
a link that is down carries nothing, and going up is announced.) The window between such a change
and the fix is the time netlink takes to tell us: only the node's admin or tools can make it, never
a container's root.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Collection
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from ..config.ctid import LINK_GROUP
from ..rules.kernel import nft_writable

__all__ = ["LinkWatch"]

logger = logging.getLogger("venetfilter.worker")
NETLINK_ROUTE = 0
AF_BRIDGE = 7
RTM_NEWLINK = 16
RTM_DELLINK = 17


class LinkWatch:
    """Follows the links of the current namespace from a thread until `close()`.

    Events are read from a plain netlink socket (recv with a timeout, parsed by pyroute2's
    marshal): pyroute2's own socket buffers messages out of sight of select(), so a second event
    of one read would wait for the next. Changes go through an IPRoute of the same thread.
    """

    def __init__(
        self,
        prefix: str,
        on_deleted: Callable[[int, str], None] | None = None,
        known: Callable[[], Collection[int]] = frozenset,
        on_changed: Callable[[int, str], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.on_deleted = on_deleted
        self.on_changed = on_changed  # a container link appeared or got a new name
        self.known = known  # the ifindexes of the registered container links, whatever their names
        self._names: dict[int, str] = {}  # the container links seen, by ifindex
        self.regrouped = 0
        self.errors = 0
        self._stop = threading.Event()
        self._events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._events.bind((0, RTMGRP_LINK))  # subscribed before the dump: no change falls in between
        self._events.settimeout(0.5)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        # pyroute2's socket belongs to the thread that made it: the watcher thread does all the rest
        self._thread = threading.Thread(target=self._run, name="venetfilter-links", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._events.close()
            raise self._failure

    def _run(self) -> None:
        try:
            self._ipr = IPRoute()
            for link in self._ipr.link("dump"):
                self._look(link)
        except BaseException as error:  # handed to the constructor
            self._failure = error
            return
        finally:
            self._ready.set()
        try:
            self._follow()
        finally:
            self._ipr.close()
            self._events.close()

    def _follow(self) -> None:
        marshal = MarshalRtnl()
        while not self._stop.is_set():
            try:
                data = self._events.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError as error:
                if self._stop.is_set():
                    return
                self.errors += 1  # ENOBUFS: events lost; look at every link again
                logger.error("link events: %s; looking at every link again", error)
                data = b""
                for link in self._ipr.link("dump"):
                    self._look(link)
            try:
                for message in marshal.parse(data):
                    kind = message["header"]["type"]
                    if kind == RTM_NEWLINK:
                        self._look(message)
                    elif kind == RTM_DELLINK:
                        self._names.pop(message["index"], None)
                        if self.on_deleted is not None:
                            self.on_deleted(message["index"], message.get_attr("IFLA_IFNAME") or "")
            except Exception as error:  # noqa: BLE001 (a bad message must not kill the worker)
                self.errors += 1
                logger.error("link events: %s", error)

    def _look(self, link: Any) -> None:
        """A container link (named with our prefix, or registered under any name) must be in our
        group and nobody's port: enslaved to a bridge, its packets would come up as the bridge's."""
        if link.get("family") == AF_BRIDGE or link.get_attr("IFLA_GROUP") is None:
            return  # a bridge port's own notifications: not the link's state
        name = link.get_attr("IFLA_IFNAME") or ""
        index = link["index"]
        group, master = link.get_attr("IFLA_GROUP"), link.get_attr("IFLA_MASTER")
        if not (name.startswith(self.prefix) or index in self.known() or group == LINK_GROUP):
            return
        if not nft_writable(name):
            self._change(index, name, "has a name nft cannot write, so no chain can filter it: set down", state="down")
            return
        if self._names.get(index) != name:
            self._names[index] = name
            if self.on_changed is not None and self._ready.is_set():  # the first dump is the starting point
                self.on_changed(index, name)
        if master:
            self._change(index, name, f"was a port of link #{master}: taken out", master=0)
        if group != LINK_GROUP:
            self._change(index, name, f"was outside group {LINK_GROUP} (in {group}): put back", group=LINK_GROUP)

    def _change(self, index: int, name: str, what: str, **change: int | str) -> None:
        try:
            self._ipr.link("set", index=index, **change)
        except NetlinkError as error:
            if error.code != 19:  # ENODEV: gone meanwhile
                self.errors += 1
                logger.error("container link %s %s, but the fix failed: %s", name, what.split(":")[0], error)
            return
        self.regrouped += 1
        logger.warning("link %s %s, it is a container link", name, what)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
