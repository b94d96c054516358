"""``venetctl start``, ``stop`` and ``sysctl``: a thin layer over `venetfilter.host`.

``start`` brings a container's network up with its saved addresses, keeps a record of it in
``RUN_DIR/host/CTID.json`` (namespaces, what was created, neighbour devices) and then records the
container as running in the runtime state; ``stop`` does the reverse. A runtime ``venetctl set``
applies its change to that network through `HostApplier` (see ``_common.make_manager``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ContainerManager, validate_ctid
from ..config.nodeconf import read_node_config
from ..errors import AddressRoutedError, NotRunningError, NotStartedError, UnknownContainerError
from ..host import (
    DEFAULT_SYSCTL_FILE,
    IPV6_FORWARDING_WARNING,
    RECORD_SUBDIR,
    apply_sysctls,
    load_record,
    network_of,
    parse_neighbour_devs,
    persist_sysctls,
    read_sysctls,
    remove_record,
    save_record,
    start,
    stop,
)
from ..netns import NetnsNotFoundError
from ._common import (
    EXIT_ADDRESS_IN_USE,
    EXIT_INVALID,
    EXIT_OK,
    common_options,
    error,
    make_manager,
    sync_kernel_sets,
    warn,
)

__all__ = ["EXIT_RUNNING", "record_dir", "register"]

_NETNS_HELP = "NAME|PATH|PID"
EXIT_RUNNING = 32  # vzctl's VZ_VE_RUNNING


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``start``, ``stop`` and ``sysctl``."""
    parents = [common_options()]
    p = subparsers.add_parser(
        "start", parents=parents, help="bring a container's network up (venet-like link, routes, proxy ARP/NDP)",
        description="Create the container's link (ve-CTID / venet0), put its saved addresses on it, route and "
        "proxy them on the host.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    p.add_argument(
        "--netns", metavar=_NETNS_HELP,
        help="the container's existing network namespace (default: create venet-CTID)",
    )
    _host_netns_option(p)
    p.add_argument(
        "--neighbour-devs", default="all", type=_neighbour_devs, metavar="all|detect|list:IF...",
        help="host interfaces that answer ARP/NDP for the container's addresses (default all)",
    )
    p.set_defaults(func=_mapped(run_start))

    p = subparsers.add_parser(
        "stop", parents=parents, help="take a container's network down",
        description="Undo start: proxy entries, host routes, the link, and the namespace if start created it.",
    )
    p.add_argument("ctid", metavar="CTID", help="container id")
    _host_netns_option(p, "(used only when start left no record)")
    p.set_defaults(func=_mapped(run_stop))

    p = subparsers.add_parser(
        "sysctl", parents=parents, help="show, apply or persist the sysctls venet needs",
        description="IPv4/IPv6 forwarding, proxy NDP and no ICMP redirects.",
    )
    p.add_argument("--apply", action="store_true", help="set the values that differ")
    p.add_argument(
        "--persist", nargs="?", const=DEFAULT_SYSCTL_FILE, type=Path, metavar="FILE",
        help=f"write them to a sysctl.d file (default {DEFAULT_SYSCTL_FILE})",
    )
    p.add_argument("--netns", metavar=_NETNS_HELP, help="act in this network namespace (default: the current one)")
    p.set_defaults(func=_mapped(run_sysctl))


def _host_netns_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument(
        "--host-netns", metavar=_NETNS_HELP,
        help=f"the host's network namespace (default: the current one) {note}".strip(),
    )


def _neighbour_devs(text: str) -> str:
    parse_neighbour_devs(text)  # HostNetworkError is reported by main
    return text


def _mapped(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`run`, with the host errors that have a vzctl exit code reported with it."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except AddressRoutedError as exc:
            error(f"Unable to add IP {exc.address}: {exc}")
            return EXIT_ADDRESS_IN_USE
        except NetnsNotFoundError as exc:
            error(str(exc))
            return EXIT_INVALID

    return handler


def record_dir(manager: ContainerManager) -> Path:
    """Where the host records live: ``RUN_DIR/host``."""
    return Path(manager.run_dir) / RECORD_SUBDIR


def run_start(args: argparse.Namespace) -> int:
    """``venetctl start``."""
    ctid = validate_ctid(args.ctid)
    manager = make_manager(args)
    config = manager.read_config(ctid)
    if config is None:
        raise UnknownContainerError(ctid)
    for warning in config.warnings:
        warn(str(warning))
    records = record_dir(manager)
    if ctid in manager.runtime_state().containers or load_record(records, ctid) is not None:
        error(f"container {ctid} is already running")
        return EXIT_RUNNING
    node = read_node_config(manager.conf_dir)
    network = start(
        ctid, [a.address for a in config.addresses],
        netns=args.netns, host_netns=args.host_netns, neighbour_devs=args.neighbour_devs,
        link_prefix=node.link_prefix,
    )
    try:
        save_record(records, network)
        result = manager.start(ctid, network.host_index, netns=network.netns, link=network.host_ifname)
        if not result.notified:
            sync_kernel_sets(manager, args.host_netns)
    except BaseException:
        remove_record(records, ctid)
        try:
            stop(network)
        except Exception as exc:  # the original error is the one to report
            warn(f"cannot undo the start of container {ctid}: {exc}")
        raise
    print(f"Container {ctid}: link {network.host_ifname} (ifindex {network.host_index}), netns {network.netns}")
    if network.addresses:
        print(f"Adding IP address(es): {' '.join(str(a) for a in network.addresses)}")
    for message in result.warnings:
        warn(message)
    return EXIT_OK


def run_stop(args: argparse.Namespace) -> int:
    """``venetctl stop``."""
    ctid = validate_ctid(args.ctid)
    manager = make_manager(args)
    records = record_dir(manager)
    running = ctid in manager.runtime_state().containers
    network = load_record(records, ctid)
    if network is None:
        try:
            network = network_of(ctid, host_netns=args.host_netns, link_prefix=read_node_config(manager.conf_dir).link_prefix)
        except NotStartedError:
            if not running and manager.read_config(ctid) is None:
                raise UnknownContainerError(ctid) from None
            if not running:
                raise NotRunningError(ctid) from None
    if running:
        if not manager.stop(ctid).notified:  # the worker stops passing its traffic first
            sync_kernel_sets(manager, args.host_netns)
    if network is not None:
        try:
            stop(network)
        except NotStartedError as exc:
            warn(str(exc))
        remove_record(records, ctid)
    print(f"Container {ctid}: network stopped")
    return EXIT_OK


def run_sysctl(args: argparse.Namespace) -> int:
    """``venetctl sysctl``."""
    if not args.apply and args.persist is None:
        for status in read_sysctls(args.netns):
            current = "(missing)" if status.current is None else status.current
            note = "ok" if status.ok else f"venet needs {status.wanted}"
            print(f"{status.name} = {current}  [{note}]")
    if args.apply:
        changes = apply_sysctls(args.netns)
        for change in changes:
            print(f"{change.name}: {change.old} -> {change.new}")
        if not changes:
            print("sysctls already set, nothing changed")
    if args.persist is not None:
        path = Path(args.persist)
        print(f"wrote {path}" if persist_sysctls(path) else f"{path} already up to date, nothing changed")
    warn(IPV6_FORWARDING_WARNING)
    return EXIT_OK
