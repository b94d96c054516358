"""The hardware node's own settings: ``CONF_DIR/venetfilter-node.conf``, vzctl's ``vz.conf`` for us.

The same shell-style ``KEY="value"`` lines as a container's ``CTID.conf``. Keys:

- ``LINK_PREFIX``: the name prefix of our host-side container links (default ``vnf``); the
  kernel rules tell our links from everybody else's by it.

The file name is not a valid ``CTID.conf`` (an id has at most 12 characters), so it is never
listed as a container. A missing file means every default; a bad value is an error, never a
silent default: the prefix decides what is filtered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigFileError, InvalidContainerError
from .conffile import read_config
from .ctid import DEFAULT_LINK_PREFIX, validate_link_prefix

__all__ = ["NODE_CONF_NAME", "NodeConfig", "read_node_config"]

NODE_CONF_NAME = "venetfilter-node.conf"


@dataclass(frozen=True)
class NodeConfig:
    """The node's settings, defaults filled in."""

    link_prefix: str = DEFAULT_LINK_PREFIX


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
    return NodeConfig(link_prefix=prefix)
