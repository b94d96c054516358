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
    """``venetctl hook oci``: filled in by the OCI hook work."""


def _register_lxc(hooks: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    """``venetctl hook lxc``: filled in by the LXC hook work."""
