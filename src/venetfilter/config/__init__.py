"""Configuration: vzctl-style address management, OpenVZ config files and the runtime state.

`ContainerManager` is the API (what ``venetctl set/show/list`` call); the modules below it each do
one job: `ctid` (container ids), `addresses` (address tokens), `conffile` (``CTID.conf``),
`store` (atomic writes and the lock), `runtime` (``state.json``), `notify` (the worker socket).
"""

from __future__ import annotations

from .addresses import ConfigAddress, parse_address_token, parse_address_tokens, split_tokens
from .conffile import ConfigFile, ConfigWarning, parse_config, read_config, render_config
from .ctid import CTID_MAX_LENGTH, CTID_PATTERN, host_ifname, is_valid_ctid, validate_ctid
from .manager import NOT_SAVED_WARNING, ContainerInfo, ContainerManager, LiveApplier, NoopApplier, SetResult
from .notify import notify_worker
from .paths import DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, config_path, default_conf_dir, default_run_dir
from .runtime import RunningContainer, RuntimeState, load_state, mark_running, mark_stopped, table_entries
from .store import atomic_write, global_lock

__all__ = [
    "CTID_MAX_LENGTH",
    "CTID_PATTERN",
    "DEFAULT_CONF_DIR",
    "DEFAULT_RUN_DIR",
    "NOT_SAVED_WARNING",
    "ConfigAddress",
    "ConfigFile",
    "ConfigWarning",
    "ContainerInfo",
    "ContainerManager",
    "LiveApplier",
    "NoopApplier",
    "RunningContainer",
    "RuntimeState",
    "SetResult",
    "atomic_write",
    "config_path",
    "default_conf_dir",
    "default_run_dir",
    "global_lock",
    "host_ifname",
    "is_valid_ctid",
    "load_state",
    "mark_running",
    "mark_stopped",
    "notify_worker",
    "parse_address_token",
    "parse_address_tokens",
    "parse_config",
    "read_config",
    "render_config",
    "split_tokens",
    "table_entries",
    "validate_ctid",
]
