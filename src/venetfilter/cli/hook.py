"""``venetctl hook oci`` and ``venetctl hook lxc``: a thin layer over `venetfilter.runtimes`."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import common_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hook`` with its ``oci`` and ``lxc`` subcommands."""
    parents = [common_options()]
    p = subparsers.add_parser(
        "hook", parents=parents, help="run as a container runtime's hook (OCI: podman, CRI-O; LXC)",
        description="Start a container's venet link when its runtime has made its network namespace, and "
        "stop it when the container is gone.",
    )
    hooks = p.add_subparsers(dest="runtime", metavar="RUNTIME", required=True)
    _register_oci(hooks, parents)
    _register_lxc(hooks, parents)


def _register_oci(hooks: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl hook oci``: the container state on stdin; createRuntime starts the link, poststop
    stops it (`venetfilter.runtimes.oci`)."""
    import sys

    from ..runtimes import oci
    from ._common import EXIT_OK, make_node, warn

    p = hooks.add_parser(
        "oci", parents=parents, help="OCI (podman, CRI-O): the createRuntime and poststop hooks",
        description="Run as an OCI runtime hook, the container's state as JSON on stdin: at createRuntime "
        f"(status 'creating') start the venet link of the container the annotation {oci.ANNOTATION} names in "
        "the namespace of the state's pid; at poststop (status 'stopped') stop it. Install "
        "contrib/oci-hooks.d/venetfilter.json in a hooks.d directory.",
    )
    p.add_argument(
        "--stage", choices=list(oci.STAGES),
        help="the hook stage (default: from the state's status; for a hooks.d file per stage)",
    )

    def run_oci(args: argparse.Namespace) -> int:
        result = oci.run(make_node(args), oci.read_state(sys.stdin.buffer), args.stage)
        for message in result.warnings:
            warn(message)
        return EXIT_OK

    p.set_defaults(func=run_oci)


def _register_lxc(hooks: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl hook lxc``: ``lxc.hook.start-host`` starts the container's link, ``lxc.hook.post-stop``
    stops it (`venetfilter.runtimes.lxc`)."""
    import os
    import syslog

    from ..errors import VenetfilterError
    from ..runtimes import lxc
    from ._common import EXIT_OK, EXIT_SYSTEM, make_node, warn

    p = hooks.add_parser(
        "lxc", parents=parents, help="LXC: lxc.hook.start-host and lxc.hook.post-stop",
        description="Run as an LXC container hook: start-host starts the container's venet link in the "
        "namespace of $LXC_PID, post-stop stops it (a container that is not running is not an error). The "
        "CTID is the container's name unless --ctid gives one. A refusal exits non-zero, so LXC does not "
        "start the container.",
        epilog="In the container's config: 'lxc.net.0.type = empty', 'lxc.hook.start-host = venetctl hook "
        "lxc' and 'lxc.hook.post-stop = venetctl hook lxc'. See docs/openvz-to-lxc.md.",
    )
    p.add_argument(
        "--ctid", metavar="CTID", help="the container id (default: the LXC container's name, when it is a valid CTID)",
    )
    p.add_argument(
        "lxc_args", nargs="*", metavar="NAME SECTION HOOKTYPE",
        help="what LXC appends to the hook line (with lxc.hook.version = 1: nothing, the environment says it)",
    )

    def log(priority: int, message: str) -> None:
        """Also to syslog: LXC logs what a hook prints at debug level only, so by default not at all."""
        syslog.openlog("venetctl", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(priority, f"hook lxc: {message}")
        syslog.closelog()

    def run_lxc(args: argparse.Namespace) -> int:
        try:
            event = lxc.parse_event(args.lxc_args, os.environ, args.ctid)
            result = lxc.run_hook(make_node(args), event)
        except (VenetfilterError, OSError) as exc:
            code = exc.exit_code if isinstance(exc, VenetfilterError) else EXIT_SYSTEM
            log(syslog.LOG_ERR, f"LXC container {os.environ.get('LXC_NAME', '?')}: {exc} (exit {code})")
            raise
        for message in result.warnings:
            warn(message)
            log(syslog.LOG_WARNING, message)
        print(result.message)
        log(syslog.LOG_INFO, result.message)
        return EXIT_OK

    p.set_defaults(func=run_lxc)
