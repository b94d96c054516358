"""sd_notify: the datagram format and addresses, and a real worker's READY=1 / STOPPING=1 timing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from venetfilter.core import AddressTable
from venetfilter.errors import QueueBindError
from venetfilter.netns import run_in_netns
from venetfilter.rules.kernel import installed_layout, table_exists
from venetfilter.worker.nflog import NflogBackend
from venetfilter.worker.sdnotify import notify, socket_address


def bound(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def test_socket_addresses() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@systemd/notify") == b"\0systemd/notify"
    for unusable in ("", "@", "relative/path", "vsock:2:1234"):
        assert socket_address(unusable) is None


def test_notify_sends_one_datagram_to_a_path(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with bound(path) as sock:
        assert notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notify_to_an_abstract_socket() -> None:
    name = f"@venetfilter-test-{uuid.uuid4().hex}"
    with bound(b"\0" + name[1:].encode()) as sock:
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_notify_without_a_manager_does_nothing_and_never_raises(tmp_path: Path) -> None:
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})


# -- a real worker -----------------------------------------------------------------------------------


def start_worker(netns: str, run_dir: Path, notify_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """The worker as tests/e2e's Stack.start_worker runs it, told to notify `notify_path`."""
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    with open(run_dir / "worker.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "venetfilter.cli", "worker", "--netns", netns, "--run-dir", str(run_dir), *extra],
            stdout=log, stderr=log, env=env,
        )


def receive_until(sock: socket.socket, wanted: bytes, seen: list[bytes]) -> None:
    """Datagrams into `seen` until one has the line `wanted` (10 s at most each)."""
    while not seen or wanted not in seen[-1].split(b"\n"):
        seen.append(sock.recv(4096))


def queue_bound(netns: str, queue: int) -> bool:
    """Whether a process has bound NFQUEUE `queue` in `netns` (the kernel's own list)."""
    text = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                          capture_output=True, text=True, check=True).stdout
    return any(line.split()[0] == str(queue) for line in text.splitlines() if line.strip())


def log_group_bound(netns: str, group: int) -> bool:
    """Whether a process has bound NFLOG `group` in `netns`: binding it ourselves is refused."""
    try:
        run_in_netns(netns, lambda: NflogBackend(group, AddressTable(), lambda *_: None)).close()
    except QueueBindError:
        return True
    return False


@pytest.mark.netns
@pytest.mark.parametrize("mode", ["default", "queue"])
def test_worker_says_ready_once_bound_and_installed_and_stopping_at_sigterm(make_netns, tmp_path: Path, mode) -> None:
    host = make_netns("vfn")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    path = tmp_path / "notify"
    with bound(str(path)) as sock:
        worker = start_worker(host, run_dir, path, "--queue", "7", "--mode", mode)
        try:
            seen: list[bytes] = []
            receive_until(sock, b"READY=1", seen)
            # at READY=1 the queue (or log group) is bound and the table is installed, sending packets to it
            assert table_exists(host)
            assert installed_layout("vnf", host).queue.queue == 7  # type: ignore[union-attr]
            assert queue_bound(host, 7) if mode == "queue" else log_group_bound(host, 7)
            assert worker.poll() is None
            assert all(b"READY=1" not in datagram for datagram in seen[:-1])
            assert b"STATUS=serving generation" in seen[-1]
            worker.send_signal(signal.SIGTERM)
            receive_until(sock, b"STOPPING=1", seen)
            assert worker.wait(timeout=10) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


@pytest.mark.netns
def test_worker_that_cannot_bind_its_queue_never_says_ready(make_netns, tmp_path: Path) -> None:
    """A second worker on a queue the first one holds fails; systemd must not hear READY=1 from it."""
    host = make_netns("vfn")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for directory in (first_dir, second_dir):
        directory.mkdir(mode=0o700)
    first_path, second_path = tmp_path / "first.sock", tmp_path / "second.sock"
    with bound(str(first_path)) as first_sock, bound(str(second_path)) as second_sock:
        first = start_worker(host, first_dir, first_path, "--queue", "9")
        second = None
        try:
            receive_until(first_sock, b"READY=1", [])
            second = start_worker(host, second_dir, second_path, "--queue", "9")
            assert second.wait(timeout=20) != 0
            second_sock.settimeout(0.2)
            received = []
            with pytest.raises(TimeoutError):
                while True:
                    received.append(second_sock.recv(4096))
            assert not any(b"READY=1" in datagram for datagram in received)
            assert any(b"STOPPING=1" in datagram for datagram in received)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
