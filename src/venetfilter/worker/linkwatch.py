"""Netlink link events in the worker: the interface group of our links kept right.

The kernel rules know a container link by its interface group (`LINK_GROUP`), not by its name: one
integer compare per packet. ``start`` creates each link in that group; should anyone move a link
named with our prefix out of it (``ip link set vnf101 group 0``), or create one outside it, the
watcher puts it back at once, logs a warning and counts it. It looks at every link once at start,
then follows RTM_NEWLINK events. (The kernel announces a group change only for a link that is up;
a link that is down carries nothing, and going up is announced.) The window between such a change
and the fix is the time netlink takes to tell us: only the node's admin or tools can make it, never
a container's root.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from ..config.ctid import LINK_GROUP

__all__ = ["LinkWatch"]

logger = logging.getLogger("venetfilter.worker")
NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_DELLINK = 17


class LinkWatch:
    """Follows the links of the current namespace from a thread until `close()`.

    Events are read from a plain netlink socket (recv with a timeout, parsed by pyroute2's
    marshal): pyroute2's own socket buffers messages out of sight of select(), so a second event
    of one read would wait for the next. Changes go through an IPRoute of the same thread.
    """

    def __init__(self, prefix: str, on_deleted: Callable[[int, str], None] | None = None) -> None:
        self.prefix = prefix
        self.on_deleted = on_deleted
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
                    elif kind == RTM_DELLINK and self.on_deleted is not None:
                        self.on_deleted(message["index"], message.get_attr("IFLA_IFNAME") or "")
            except Exception as error:  # noqa: BLE001 (a bad message must not kill the worker)
                self.errors += 1
                logger.error("link events: %s", error)

    def _look(self, link: Any) -> None:
        name = link.get_attr("IFLA_IFNAME") or ""
        group = link.get_attr("IFLA_GROUP")
        if not name.startswith(self.prefix) or group == LINK_GROUP:
            return
        try:
            self._ipr.link("set", index=link["index"], group=LINK_GROUP)
        except NetlinkError as error:
            if error.code != 19:  # ENODEV: gone meanwhile
                self.errors += 1
                logger.error("cannot put link %s back in group %d: %s", name, LINK_GROUP, error)
            return
        self.regrouped += 1
        logger.warning("link %s was outside group %d (in %s): put back, it is a container link", name, LINK_GROUP, group)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
