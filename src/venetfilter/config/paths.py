"""Where configuration and runtime state live, and the environment variables that move them."""

from __future__ import annotations

import os
from pathlib import Path

from .ctid import validate_ctid

__all__ = [
    "CONF_DIR_ENV",
    "DEFAULT_CONF_DIR",
    "DEFAULT_RUN_DIR",
    "RUN_DIR_ENV",
    "config_path",
    "default_conf_dir",
    "default_run_dir",
]

DEFAULT_CONF_DIR = Path("/etc/venetfilter")
DEFAULT_RUN_DIR = Path("/run/venetfilter")
CONF_DIR_ENV = "VENETFILTER_CONF_DIR"
RUN_DIR_ENV = "VENETFILTER_RUN_DIR"


def default_conf_dir() -> Path:
    """``$VENETFILTER_CONF_DIR`` when set and not empty, else ``/etc/venetfilter``."""
    return Path(os.environ.get(CONF_DIR_ENV) or DEFAULT_CONF_DIR)


def default_run_dir() -> Path:
    """``$VENETFILTER_RUN_DIR`` when set and not empty, else ``/run/venetfilter``."""
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


def config_path(conf_dir: str | Path, ctid: str) -> Path:
    """``CONF_DIR/CTID.conf`` (the id is validated, so the path never leaves `conf_dir`)."""
    return Path(conf_dir) / f"{validate_ctid(ctid)}.conf"
