"""Configuration: vzctl-style address management, OpenVZ config files and the runtime state.

Each module does one job: `ctid` (container ids and link names), `addresses` (address tokens and
what a container may have), `conffile` (``CTID.conf``), `nodeconf` (the node's own settings),
`neighbourdevs` (``NEIGHBOUR_DEVS``), `store` (atomic writes and the lock), `runtime` (the runtime
records in ``state.json``), `notify` (the worker socket). `venetfilter.lifecycle.Node` puts them
to work.
"""

from __future__ import annotations

from .addresses import ConfigAddress, parse_address_token, parse_address_tokens, split_tokens
from .conffile import ConfigFile, ConfigWarning, parse_config, read_config, render_config
from .ctid import CTID_MAX_LENGTH, CTID_PATTERN, host_ifname, is_valid_ctid, validate_ctid
from .notify import notify_worker
from .paths import DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, config_path, default_conf_dir, default_run_dir
from .runtime import RunningContainer, RuntimeState, load_state, save_state, table_entries
from .store import atomic_write, global_lock

__all__ = [
    "CTID_MAX_LENGTH",
    "CTID_PATTERN",
    "DEFAULT_CONF_DIR",
    "DEFAULT_RUN_DIR",
    "ConfigAddress",
    "ConfigFile",
    "ConfigWarning",
    "RunningContainer",
    "RuntimeState",
    "atomic_write",
    "config_path",
    "default_conf_dir",
    "default_run_dir",
    "global_lock",
    "host_ifname",
    "is_valid_ctid",
    "load_state",
    "notify_worker",
    "parse_address_token",
    "parse_address_tokens",
    "parse_config",
    "read_config",
    "render_config",
    "save_state",
    "split_tokens",
    "table_entries",
    "validate_ctid",
]
