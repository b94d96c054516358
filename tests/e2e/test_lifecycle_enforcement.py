"""Fail closed in every state: while a container starts, stops, restarts or dies half-way through a
stop, and while the runtime state is removed or emptied under traffic, a spoofed stream delivers
nothing. Foreign container links (systemd-nspawn's ``ve-``) are never touched."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.e2e.conftest import ADDRESSES, OUTSIDE_V4, OUTSIDE_V6, ip
from tests.e2e.traffic import UdpEcho, in_netns, udp_probe
from tests.e2e.wire import ipv4, ipv6, udp
from venetfilter.config.runtime import load_state, save_state
from venetfilter.config.store import global_lock

pytestmark = pytest.mark.netns
PORT = 7300
SPOOFED = {4: "192.0.2.66", 6: "2001:db8:1::66"}


class Spoofer:
    """101's root writes forged frames on venet0 as fast as it can (bounded), whatever happens to
    the link: when it vanishes the sender opens it again by name."""

    def __init__(self, netns: str) -> None:
        self.netns, self.sent = netns, 0
        self._stop = threading.Event()
        packets = []
        for family, outside in ((4, OUTSIDE_V4), (6, OUTSIDE_V6)):
            datagram = udp(SPOOFED[family], outside, 4000, PORT, b"spoofed")
            build = ipv4 if family == 4 else ipv6
            packets.append(build(SPOOFED[family], outside, 17, datagram))
        self._packets = packets
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _open(self) -> tuple[socket.socket, bytes] | None:
        sock = in_netns(self.netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
        try:
            sock.bind(("venet0", 0))
            return sock, sock.getsockname()[4]
        except OSError:  # no venet0 right now
            sock.close()
            return None

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        opened = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if opened is None:
                opened = self._open()
                if opened is None:
                    time.sleep(0.005)
                    continue
            sock, mac = opened
            try:
                for packet in self._packets:
                    ethertype = b"\x86\xdd" if packet[0] >> 4 == 6 else b"\x08\x00"
                    sock.send(mac + mac + ethertype + packet)
                    self.sent += 1
            except OSError:
                sock.close()
                opened = None
            time.sleep(0.001)
        if opened is not None:
            opened[0].close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def watched(any_stack):
    """Echo servers on the outside host, and 101's root spoofing towards them all along (each mode)."""
    stack = any_stack
    echoes = [UdpEcho(stack.outside, OUTSIDE_V4, PORT), UdpEcho(stack.outside, OUTSIDE_V6, PORT)]
    spoofer = Spoofer(stack.containers["101"])
    yield stack, echoes, spoofer
    spoofer.stop()
    for echo in echoes:
        echo.close()


def spoofed_arrivals(echoes) -> int:
    return sum(1 for echo in echoes for _, source in echo.arrivals if source in SPOOFED.values())


def test_start_stop_restart_under_a_spoofed_stream(watched):
    stack, echoes, spoofer = watched
    for _ in range(3):
        stack.venetctl("stop", "101")
        time.sleep(0.1)
        stack.venetctl("start", "101", "--netns", stack.containers["101"])
        assert udp_probe(stack.containers["101"], ADDRESSES["101"][0], OUTSIDE_V4, PORT)
        time.sleep(0.1)
    spoofer.stop()
    assert spoofer.sent > 1000
    assert spoofed_arrivals(echoes) == 0


def test_a_stop_interrupted_after_the_state_is_written(watched):
    """The stop dies after recording the container as stopped, before the link is deleted: the link
    is now one the table does not know, and everything on it is dropped (DROP_UNKNOWN_LINK). The
    next stop finishes the job."""
    stack, echoes, spoofer = watched
    with global_lock(stack.run_dir):  # what a stop killed after writing the state leaves behind
        save_state(stack.run_dir, load_state(stack.run_dir).without_container("101"))
    stack.venetctl("set", "102", "--ipadd", "192.0.2.222")  # any change: the worker reloads now
    time.sleep(0.5)
    assert not udp_probe(stack.containers["101"], ADDRESSES["101"][0], OUTSIDE_V4, PORT, timeout=0.3)
    assert stack.stats()["unknown_links"] > 0
    stack.venetctl("stop", "101")
    spoofer.stop()
    assert spoofed_arrivals(echoes) == 0


@pytest.mark.parametrize("damage", ["removed", "emptied", "garbage"])
def test_state_file_damaged_under_traffic(watched, damage):
    """state.json removed (nothing is known to run: every container link is unknown), emptied or
    overwritten with garbage (unreadable: the last good state stays in force, an error is logged).
    Nothing spoofed passes either way."""
    stack, echoes, spoofer = watched
    state = stack.run_dir / "state.json"
    if damage == "removed":
        state.unlink()
    else:
        state.write_bytes(b"" if damage == "emptied" else b"\x00{not json")
    time.sleep(0.6)
    honest = udp_probe(stack.containers["101"], ADDRESSES["101"][0], OUTSIDE_V4, PORT, timeout=0.3)
    spoofer.stop()
    assert spoofed_arrivals(echoes) == 0
    if damage == "removed":
        assert not honest and "is gone" in stack.worker_log()
    else:
        assert honest and "reload failed" in stack.worker_log()


def test_an_nspawn_style_link_is_left_alone(stack, make_netns):
    """A systemd-nspawn container's host link ``ve-x`` with its own addresses: its traffic is never
    queued or judged (it flows with the worker frozen), and ``start --neighbour-devs all`` puts no
    proxy entry on it."""
    other = make_netns("vfn")
    ip("-n", stack.host, "link", "add", "ve-x", "type", "veth", "peer", "name", "host0", "netns", other)
    ip("-n", stack.host, "addr", "add", "203.0.113.1/24", "dev", "ve-x")
    ip("-n", stack.host, "link", "set", "ve-x", "up")
    ip("-n", other, "addr", "add", "203.0.113.2/24", "dev", "host0")
    ip("-n", other, "link", "set", "host0", "up")
    ip("-n", other, "route", "add", "default", "via", "203.0.113.1")
    echo = UdpEcho(stack.outside, OUTSIDE_V4, PORT)
    try:
        assert stack.worker is not None
        stack.worker.send_signal(signal.SIGSTOP)  # a queued packet would now wait, or be dropped
        try:
            for _ in range(5):
                assert udp_probe(other, "203.0.113.2", OUTSIDE_V4, PORT)
        finally:
            stack.worker.send_signal(signal.SIGCONT)
        assert stack.stats()["unknown_links"] == 0
        stack.venetctl("set", "103", "--ipadd", "192.0.2.3", "--save")
        stack.venetctl("start", "103", "--neighbour-devs", "all")
        proxies = subprocess.run(["ip", "-n", stack.host, "neigh", "show", "proxy"], capture_output=True, text=True).stdout
        assert "192.0.2.3 dev up0" in proxies and "ve-x" not in proxies
    finally:
        echo.close()
        stack.venetctl("stop", "103", check=False)
