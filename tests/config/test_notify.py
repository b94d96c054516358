"""The reload notification: client side of the worker socket protocol."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from venetfilter.config import notify_worker
from venetfilter.config.notify import format_reply, parse_reply

from .conftest import record_running
from .worker_stub import WorkerStub


def collect() -> tuple[list[str], object]:
    messages: list[str] = []
    return messages, messages.append


def test_no_worker_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify_worker(tmp_path / "missing-dir", 1) is False
    assert notify_worker(tmp_path, 1) is False
    assert capsys.readouterr() == ("", "")


def test_refused_connection_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "worker.sock"))  # bound, never listening: ECONNREFUSED
    assert notify_worker(tmp_path, 1) is False
    assert capsys.readouterr() == ("", "")


def test_worker_confirms(tmp_path: Path) -> None:
    generation = record_running(tmp_path, "101", 7)
    messages, warn = collect()
    with WorkerStub(tmp_path) as stub:
        assert notify_worker(tmp_path, generation, warn=warn) is True  # type: ignore[arg-type]
    assert stub.requests == [b"reload\n"] and messages == []


def test_long_socket_path(tmp_path: Path) -> None:
    run = tmp_path / ("x" * 60) / ("y" * 60)
    generation = record_running(run, "101", 7)
    with WorkerStub(run):
        assert notify_worker(run, generation) is True


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("stale", "older than"), ("garbage", "answered"), ("close", "answered 'nothing'"), ("silent", "did not confirm")],
)
def test_bad_worker_warns_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, expected: str) -> None:
    generation = record_running(tmp_path, "101", 7)
    with WorkerStub(tmp_path, mode):
        started = time.monotonic()
        assert notify_worker(tmp_path, generation, timeout=0.3) is False
        assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert err.startswith("Warning: ") and expected in err and err.count("\n") == 1


def test_replies() -> None:
    assert parse_reply(format_reply(42)) == 42
    for bad in [b"ok 42", b"ok -1\n", b"OK 1\n", b"ok  1\n", b"ok 1 2\n", b"", b"ok \n", b"ok 1" + b"0" * 30 + b"\n"]:
        assert parse_reply(bad) is None
