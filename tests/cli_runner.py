"""``venetctl`` run in-process for tests: exit code, stdout and stderr of one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from venetfilter.cli import main

__all__ = ["Result", "in_process"]


@dataclass
class Result:
    code: int
    out: str
    err: str


def in_process(capsys: pytest.CaptureFixture[str], options: Sequence[str]) -> Callable[..., Result]:
    """A function running ``venetctl OPTIONS ARGS`` in this process and capturing what it prints."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([*options, *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
