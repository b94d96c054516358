"""``venetctl hook oci|lxc`` and ``venetctl install-hook oci|lxc``: a thin layer over `venetfilter.runtimes`."""

from __future__ import annotations

import argparse
import os
import sys
import syslog
from typing import Any

from ..config.paths import default_conf_dir, default_run_dir
from ..errors import VenetfilterError
from ..runtimes import configs, lxc, oci
from ._common import (
    EXIT_OK,
    EXIT_SYSTEM,
    add_install_options,
    common_options,
    directory,
    install_file,
    make_node,
    warn,
)

__all__ = ["register"]


def _syslog(priority: int, message: str) -> None:
    """Tell syslog too (daemon, ident venetctl): a runtime shows a hook's output only when it fails
    (podman) or logs it at debug level (LXC), so its warnings and refusals would reach no one."""
    syslog.openlog("venetctl", syslog.LOG_PID, syslog.LOG_DAEMON)
    syslog.syslog(priority, message)
    syslog.closelog()


def _refused(exc: BaseException, where: str) -> None:
    """Log a refusal (an error the CLI turns into its message and exit code) to syslog."""
    code = exc.exit_code if isinstance(exc, VenetfilterError) else EXIT_SYSTEM
    _syslog(syslog.LOG_ERR, f"{where}: {exc} (exit {code})")


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
    _register_install(subparsers, parents)


def _register_oci(hooks: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl hook oci``: the container state on stdin; createRuntime starts the link, poststop
    stops it (`venetfilter.runtimes.oci`)."""
    p = hooks.add_parser(
        "oci", parents=parents, help="OCI (podman, CRI-O): the createRuntime and poststop hooks",
        description="Run as an OCI runtime hook, the container's state as JSON on stdin: at createRuntime "
        f"(status 'creating') start the venet link of the container the annotation {oci.ANNOTATION} names in "
        "the namespace of the state's pid; at poststop (status 'stopped') stop it. Install its hooks.d file "
        "with 'venetctl install-hook oci'.",
    )
    p.add_argument(
        "--stage", choices=list(oci.STAGES),
        help="the hook stage (default: from the state's status; for a hooks.d file per stage)",
    )
    p.set_defaults(func=run_oci)


def run_oci(args: argparse.Namespace) -> int:
    """``venetctl hook oci``."""
    try:
        result = oci.run(make_node(args), oci.read_state(sys.stdin.buffer), args.stage)
    except (VenetfilterError, OSError) as exc:
        _refused(exc, "hook oci")
        raise
    for message in result.warnings:
        warn(message)
        _syslog(syslog.LOG_WARNING, f"hook oci: CT {result.ctid}: {message}")
    return EXIT_OK


def _register_lxc(hooks: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl hook lxc``: ``lxc.hook.start-host`` starts the container's link, ``lxc.hook.post-stop``
    stops it (`venetfilter.runtimes.lxc`)."""
    p = hooks.add_parser(
        "lxc", parents=parents, help="LXC: lxc.hook.start-host and lxc.hook.post-stop",
        description="Run as an LXC container hook: start-host starts the container's venet link in the "
        "namespace of $LXC_PID, post-stop stops it (a container that is not running is not an error). The "
        "CTID is the container's name unless --ctid gives one. A refusal exits non-zero, so LXC does not "
        "start the container.",
        epilog="In the container's config: 'lxc.net.0.type = empty' and this command as lxc.hook.start-host "
        "and lxc.hook.post-stop; 'venetctl install-hook lxc' writes these lines. See docs/openvz-to-lxc.md.",
    )
    p.add_argument(
        "--ctid", metavar="CTID", help="the container id (default: the LXC container's name, when it is a valid CTID)",
    )
    p.add_argument(
        "lxc_args", nargs="*", metavar="NAME SECTION HOOKTYPE",
        help="what LXC appends to the hook line (with lxc.hook.version = 1: nothing, the environment says it)",
    )

    p.set_defaults(func=run_lxc)


def run_lxc(args: argparse.Namespace) -> int:
    """``venetctl hook lxc``."""
    try:
        event = lxc.parse_event(args.lxc_args, os.environ, args.ctid)
        result = lxc.run_hook(make_node(args), event)
    except (VenetfilterError, OSError) as exc:
        _refused(exc, f"hook lxc: LXC container {os.environ.get('LXC_NAME', '?')}")
        raise
    for message in result.warnings:
        warn(message)
        _syslog(syslog.LOG_WARNING, f"hook lxc: {message}")
    print(result.message)
    _syslog(syslog.LOG_INFO, f"hook lxc: {result.message}")
    return EXIT_OK


def _register_install(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl install-hook oci|lxc``: the runtime's config for the hook, with this install's paths
    (`venetfilter.runtimes.configs`)."""
    p = subparsers.add_parser(
        "install-hook", parents=parents, help="install a container runtime's config for the hook (OCI, LXC)",
        description="Write the config that makes a container runtime run 'venetctl hook', naming the venetctl "
        "of this Python environment and --conf-dir and --run-dir as its directories.",
    )
    runtimes = p.add_subparsers(dest="runtime", metavar="RUNTIME", required=True)
    oci_parser = runtimes.add_parser(
        "oci", parents=parents, help=f"the hooks.d file (podman, CRI-O), {configs.CONFIG_NAME['oci']}",
        description=f"Write {configs.CONFIG_NAME['oci']}, the hooks.d file that runs 'venetctl hook oci' at "
        f"createRuntime and poststop of every container with the annotation {oci.ANNOTATION}, to "
        f"{configs.OCI_HOOKS_DIR} (podman's and CRI-O's default; podman --hooks-dir names another).",
        epilog=f"Then: podman run --network none --annotation {oci.ANNOTATION}=CTID ...",
    )
    lxc_parser = runtimes.add_parser(
        "lxc", parents=parents, help=f"the config snippet for LXC containers, {configs.CONFIG_NAME['lxc']}",
        description=f"Write {configs.CONFIG_NAME['lxc']}, the LXC config lines that give a container no "
        "network of LXC's own and run 'venetctl hook lxc' as its lxc.hook.start-host and lxc.hook.post-stop, to "
        f"{configs.LXC_CONFIG_DIR}.",
        epilog=f"Then: lxc-create -n CTID -t TEMPLATE -f {configs.LXC_CONFIG_DIR / configs.CONFIG_NAME['lxc']}, or "
        f"'lxc.include = {configs.LXC_CONFIG_DIR / configs.CONFIG_NAME['lxc']}' in a container's config. "
        "See docs/openvz-to-lxc.md.",
    )
    for parser, runtime, default_dir in (
        (oci_parser, "oci", configs.OCI_HOOKS_DIR), (lxc_parser, "lxc", configs.LXC_CONFIG_DIR),
    ):
        add_install_options(parser, "--dir", default_dir, f"the {runtime.upper()} config")
        parser.add_argument("--venetctl", type=directory, metavar="PATH",
                            help="the venetctl the hook runs (default: this environment's, else the one on $PATH)")
        parser.set_defaults(func=run_install_hook, default_dir=default_dir)
    lxc_parser.add_argument("--ctid", metavar="CTID",
                            help="the CTID on the hook lines, for a container whose name is not one (with --print, "
                            "for that container's config)")


def run_install_hook(args: argparse.Namespace) -> int:
    """``venetctl install-hook``."""
    venetctl = args.venetctl.absolute() if args.venetctl else configs.installed_venetctl()
    dirs = args.conf_dir or default_conf_dir(), args.run_dir or default_run_dir()
    if args.runtime == "oci":
        text = configs.render_oci(venetctl, *dirs)
    else:
        text = configs.render_lxc(venetctl, *dirs, ctid=args.ctid)
    name = configs.CONFIG_NAME[args.runtime]
    path = install_file(args, text, args.default_dir, name, venetctl, "the hook cannot run until it does")
    if path is None:
        return EXIT_OK
    print(f"wrote {path} (venetctl {venetctl})")
    if args.runtime == "oci":
        print(f"containers run with --annotation {oci.ANNOTATION}=CTID get their venet link "
              f"(podman reads {path.parent} when it is its hooks directory)")
    else:
        print(f"containers created with 'lxc-create -f {path}' or including it ('lxc.include = {path}') get "
              "their venet link")
    return EXIT_OK
