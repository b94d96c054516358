"""Safe files: atomic replacement, private creation and one global lock.

A write goes to a temporary file in the target's directory, is flushed to disk, renamed over the
target and the directory is flushed too: a crash leaves the old file or the new one, never a mix.
Every change of configuration or runtime state is made under `global_lock`, an `fcntl.flock` on
``RUN_DIR/lock``, so concurrent processes never lose each other's updates.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "LOCK_NAME", "PreparedWrite", "atomic_write", "ensure_dir", "global_lock", "prepare_write"]

FILE_MODE = 0o600
DIR_MODE = 0o700
LOCK_NAME = "lock"

_held = threading.local()  # per thread: {lock path: [fd, depth]}, so the lock is re-entrant


def ensure_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) when absent; the directories made are private (0700)."""
    path = Path(path)
    if not path.is_dir():
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=DIR_MODE)
            except FileExistsError:
                continue  # another process made it first
            os.chmod(directory, DIR_MODE)  # the umask could have taken bits away
    return path


class PreparedWrite:
    """A replacement of `target` written and flushed to a temporary file beside it, not yet in
    place: `commit` renames it over the target, `abort` removes it. Preparing first proves that the
    write can happen (directory writable, disk not full) before anything else changes."""

    def __init__(self, target: Path, tmp_name: str) -> None:
        self.target = target
        self._tmp_name: str | None = tmp_name

    def commit(self) -> None:
        if self._tmp_name is None:
            raise ValueError("already committed or aborted")
        tmp_name, self._tmp_name = self._tmp_name, None
        try:
            os.replace(tmp_name, self.target)
        except BaseException:
            _unlink_quietly(tmp_name)
            raise
        _fsync_dir(self.target.parent)

    def abort(self) -> None:
        if self._tmp_name is not None:
            _unlink_quietly(self._tmp_name)
            self._tmp_name = None


def prepare_write(path: str | Path, data: bytes, mode: int = FILE_MODE) -> PreparedWrite:
    """Write `data` for `path` to a temporary file beside it, flushed to disk; see `PreparedWrite`.

    A new file gets `mode`; an existing one keeps its mode and (when allowed) its owner. A symlink is
    followed: its target will be replaced, the link stays. An `OSError` names `path`, not the
    temporary file.
    """
    target = Path(os.path.realpath(path))
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            if st is not None:
                os.fchmod(tmp.fileno(), st.st_mode & 0o7777)
                _keep_owner(tmp.fileno(), st)
            else:
                os.fchmod(tmp.fileno(), mode)
            os.fsync(tmp.fileno())
    except BaseException as exc:
        _unlink_quietly(tmp_name)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    return PreparedWrite(target, tmp_name)


def atomic_write(path: str | Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` atomically and durably (`prepare_write`, then commit)."""
    prepare_write(path, data, mode).commit()


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _keep_owner(fd: int, st: os.stat_result) -> None:
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            pass  # not root: the file becomes ours, as with any editor


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems cannot sync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(dir_fd)


@contextmanager
def global_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock ``RUN_DIR/lock`` (created 0600); re-entrant within one thread."""
    path = os.path.realpath(ensure_dir(run_dir) / LOCK_NAME)
    held: dict[str, list[int]] = _held.__dict__.setdefault("locks", {})
    entry = held.get(path)
    if entry is not None:
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[path] = [fd, 1]
        try:
            yield
        finally:
            del held[path]
    finally:
        os.close(fd)  # closing releases the lock
