"""An undo stack: every step that changed something pushes its undo; a failure undoes them all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

__all__ = ["Rollback"]

log = logging.getLogger(__name__)


class Rollback:
    """Use as ``with Rollback() as undo: ...; undo.push(fn, ...)``.

    When the block raises, the pushed undos run newest first; an undo that fails is logged and
    the rest still run, and the original exception propagates. When the block succeeds they are
    dropped. `undo_all` runs them on purpose.
    """

    def __init__(self) -> None:
        self._undos: list[tuple[str, Callable[[], object]]] = []
        self.failures: list[tuple[str, BaseException]] = []

    def push(self, what: str, undo: Callable[[], object]) -> None:
        """Remember `undo` (described by `what`) for a rollback."""
        self._undos.append((what, undo))

    def undo_all(self) -> None:
        """Run every pushed undo, newest first; failures are logged and kept in `failures`."""
        while self._undos:
            what, undo = self._undos.pop()
            try:
                undo()
            except Exception as exc:  # keep undoing; the caller's error is the one that matters
                log.warning("rollback: cannot %s: %s", what, exc)
                self.failures.append((what, exc))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.undo_all()
        self._undos.clear()
