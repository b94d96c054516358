"""Real packets between test namespaces, sent from this process: a socket keeps the namespace it
was created in, so a short-lived thread enters the namespace, makes the socket and hands it back."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

from venetfilter.netns import run_in_netns as in_netns  # a socket keeps the namespace it was made in

__all__ = ["TcpEcho", "UdpEcho", "in_netns", "ping", "tcp_probe", "udp_probe"]


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class _Server:
    """A server socket in a namespace, served by a thread until `close()`."""

    def __init__(self, netns: str, address: str, port: int, kind: int) -> None:
        self.sock = in_netns(netns, lambda: socket.socket(_family(address), kind))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve_one()
            except TimeoutError:
                continue

    def _serve_one(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class UdpEcho(_Server):
    """A UDP server in `netns` answering every datagram with the same bytes, counting them."""

    def __init__(self, netns: str, address: str, port: int) -> None:
        self.received = 0
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, source address)
        super().__init__(netns, address, port, socket.SOCK_DGRAM)

    def _serve_one(self) -> None:
        data, peer = self.sock.recvfrom(2048)
        self.received += 1
        self.arrivals.append((time.monotonic(), peer[0]))
        self.sock.sendto(data, peer)


def udp_probe(netns: str, source: str, destination: str, port: int, timeout: float = 0.5) -> bool:
    """Send one datagram from `source` (inside `netns`) and wait for its echo."""
    sock = in_netns(netns, lambda: socket.socket(_family(destination), socket.SOCK_DGRAM))
    with sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        payload = f"probe {time.monotonic_ns()}".encode()
        sock.sendto(payload, (destination, port))
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                if data == payload:
                    return True
        except TimeoutError:
            return False


class TcpEcho(_Server):
    """A TCP server in `netns` echoing what each connection sends."""

    def __init__(self, netns: str, address: str, port: int) -> None:
        super().__init__(netns, address, port, socket.SOCK_STREAM)

    def _serve_one(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(1)
            try:
                conn.sendall(conn.recv(1024))
            except OSError:
                pass


def tcp_probe(netns: str, source: str, destination: str, port: int, timeout: float = 1.0) -> bool:
    """Connect from `source` (inside `netns`), send a line and read it back."""
    sock = in_netns(netns, lambda: socket.socket(_family(destination), socket.SOCK_STREAM))
    with sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        try:
            sock.connect((destination, port))
            sock.sendall(b"hello\n")
            return sock.recv(1024) == b"hello\n"
        except OSError:
            return False


def ping(netns: str, source: str, destination: str, count: int = 1, timeout: float = 1.0) -> bool:
    """ICMP echo from `source` inside `netns`; True when every reply came back."""
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2",
         "-W", str(timeout), "-I", source, destination],
        capture_output=True,
    )
    return result.returncode == 0
