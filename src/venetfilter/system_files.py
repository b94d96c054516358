"""Files venetfilter writes for other programs (the worker's systemd unit, the container runtimes'
hook configs): the absolute paths they name, the directory they go to, and the write itself.

Each such file has one template in the package and a rendering for the default paths in contrib/
(checked by a test); ``venetctl install-service`` and ``venetctl install-hook`` render it with the
paths of this Python environment and write it with `write`.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path, PurePosixPath

from .config.store import atomic_write
from .errors import InvalidOptionError

__all__ = ["SystemFileError", "absolute", "installed_script", "target_dir", "write"]


class SystemFileError(InvalidOptionError):
    """A path that such a file cannot name (relative, or not expressible in its format): exit code 21."""


def absolute(path: str | os.PathLike[str], what: str, error: type[SystemFileError] = SystemFileError) -> PurePosixPath:
    """`path` normalised; `error` when it is not absolute (a file read by another program has no
    current directory to be relative to)."""
    pure = PurePosixPath(os.path.normpath(path))
    if not pure.is_absolute():
        raise error(f"the {what} {os.fspath(path)} is not an absolute path")
    return pure


def installed_script(name: str, error: type[SystemFileError] = SystemFileError) -> Path:
    """The absolute path of the script `name` (``venetctl``, ``venetfilter-worker``) of the running
    Python environment (its scripts directory, then $PATH); `error` when there is none."""
    for directory in Path(sysconfig.get_path("scripts")), Path(sys.executable).parent:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    found = shutil.which(name)
    if found is None:
        raise error(f"no {name} script is installed in this Python environment or on $PATH")
    return Path(found).absolute()


def target_dir(default: Path, directory: Path | None = None, root: Path | None = None) -> Path:
    """Where a file goes: `directory`, else `default`, under `root` when given (a system image)."""
    if root is not None:
        return root / default.relative_to("/")
    return directory if directory is not None else default


def write(text: str, directory: Path, name: str) -> Path:
    """Write `text` as `directory`/`name` (mode 0644, `directory` made if missing); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    atomic_write(path, text.encode(), mode=0o644)
    return path
