"""Records of started container networks: one JSON file per container, so that a later ``stop``
or ``set`` (another process) knows the namespaces, what `start` created and how to proxy.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import HostNetworkError
from .container import ContainerNetwork
from ..config.ctid import validate_ctid

__all__ = ["RECORD_SUBDIR", "load_record", "record_path", "remove_record", "save_record"]

RECORD_SUBDIR = "host"
"""Records live in ``RUN_DIR/host/CTID.json``."""


def record_path(record_dir: str | os.PathLike[str], ctid: str) -> Path:
    """``DIR/CTID.json`` (the id is checked, so the path stays in `record_dir`)."""
    validate_ctid(ctid)
    return Path(record_dir) / f"{ctid}.json"


def save_record(record_dir: str | os.PathLike[str], network: ContainerNetwork) -> None:
    """Write `network`'s record atomically (0600)."""
    path = record_path(record_dir, network.ctid)
    data = json.dumps(network.to_json(), indent=2, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise HostNetworkError(f"cannot write {path}: {exc.strerror or exc}") from exc


def load_record(record_dir: str | os.PathLike[str], ctid: str) -> ContainerNetwork | None:
    """The record of `ctid`, None when it has none; `HostNetworkError` when it does not parse."""
    path = record_path(record_dir, ctid)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HostNetworkError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HostNetworkError(f"cannot read {path}: not a JSON object")
    network = ContainerNetwork.from_json(data)
    if network.ctid != ctid:
        raise HostNetworkError(f"{path} describes container {network.ctid}, not {ctid}")
    return network


def remove_record(record_dir: str | os.PathLike[str], ctid: str) -> None:
    """Remove the record of `ctid`; a missing one is not an error."""
    try:
        record_path(record_dir, ctid).unlink()
    except FileNotFoundError:
        pass
