"""The hardware node's own settings: ``CONF_DIR/venetfilter-node.conf``, vzctl's ``vz.conf`` for us.

The same shell-style ``KEY="value"`` lines as a container's ``CTID.conf``. Keys:

- ``LINK_PREFIX``: the name prefix of our host-side container links (default ``vnf``); the
  kernel rules tell our links from everybody else's by it.
- ``NEIGHBOUR_DEVS``: where ``start`` puts proxy ARP/NDP entries, ``all`` (default), ``detect``
  or ``list:eth0 eth1`` (as vzctl's).
- ``SKIP_ARPDETECT``: ``yes`` skips the duplicate address detection of new addresses (default no).
- ``ERROR_ON_ARPFAIL``: ``no`` makes an address another host answers for a warning instead of a
  refusal (default yes: refused, exit 78).

The file name is not a valid ``CTID.conf`` (an id has at most 12 characters), so it is never
listed as a container. A missing file means every default; a bad value is an error, never a
silent default: the prefix decides what is filtered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigFileError, InvalidContainerError, VenetfilterError
from .conffile import read_config
from .ctid import DEFAULT_LINK_PREFIX, validate_link_prefix
from .neighbourdevs import parse_neighbour_devs

__all__ = ["NODE_CONF_NAME", "NodeConfig", "read_node_config"]

NODE_CONF_NAME = "venetfilter-node.conf"


@dataclass(frozen=True)
class NodeConfig:
    """The node's settings, defaults filled in."""

    link_prefix: str = DEFAULT_LINK_PREFIX
    neighbour_devs: str = "all"
    skip_arpdetect: bool = False
    error_on_arpfail: bool = True


def _yes_no(path: Path, values: dict[str, str], key: str, default: bool) -> bool:
    text = values.get(key)
    if text is None:
        return default
    if text.lower() in ("yes", "true", "1"):
        return True
    if text.lower() in ("no", "false", "0"):
        return False
    raise ConfigFileError(path, f"{key}: {text!r} is not yes or no")


def read_node_config(conf_dir: str | Path) -> NodeConfig:
    """Read ``CONF_DIR/venetfilter-node.conf``; `ConfigFileError` for an unreadable file or a bad value."""
    path = Path(conf_dir) / NODE_CONF_NAME
    config = read_config(path)
    if config is None:
        return NodeConfig()
    prefix = config.values.get("LINK_PREFIX", DEFAULT_LINK_PREFIX)
    try:
        validate_link_prefix(prefix)
    except InvalidContainerError as exc:
        raise ConfigFileError(path, f"LINK_PREFIX: {exc}") from None
    devs = config.values.get("NEIGHBOUR_DEVS", "all")
    try:
        parse_neighbour_devs(devs)
    except VenetfilterError as exc:
        raise ConfigFileError(path, f"NEIGHBOUR_DEVS: {exc}") from None
    return NodeConfig(
        link_prefix=prefix,
        neighbour_devs=devs,
        skip_arpdetect=_yes_no(path, config.values, "SKIP_ARPDETECT", False),
        error_on_arpfail=_yes_no(path, config.values, "ERROR_ON_ARPFAIL", True),
    )
