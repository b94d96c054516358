"""The worker's parts without a kernel queue: callback, drop log, control socket, metrics, proc parsing."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest

from tests.packets import ipv4
from venetfilter.config.notify import notify_worker
from venetfilter.core import Verdict
from venetfilter.worker import Worker, WorkerOptions, read_queue_stats, request
from venetfilter.worker.callback import VerdictCallback
from venetfilter.worker.control import ControlServer
from venetfilter.worker.droplog import DropLog, describe_addresses
from venetfilter.worker.metrics import MetricsServer, render


class FakePacket:
    def __init__(self, payload: bytes, indev: int, outdev: int, fail_payload: bool = False, hook: int = 0) -> None:
        self.payload, self.indev, self.outdev, self.fail_payload = payload, indev, outdev, fail_payload
        self.hook = hook  # NF_INET_PRE_ROUTING: indev is a container link
        self.verdicts: list[str] = []

    def get_payload(self) -> bytes:
        if self.fail_payload:
            raise RuntimeError("netlink attribute missing")
        return self.payload

    def accept(self) -> None:
        self.verdicts.append("accept")

    def drop(self) -> None:
        self.verdicts.append("drop")


@pytest.fixture
def table(table_class):
    table = table_class()
    table.set_container("101", 5, ["192.0.2.1"])
    return table


def test_callback_gives_every_packet_one_verdict(table):
    drops = []
    callback = VerdictCallback(table, lambda *args: drops.append(args))
    good, spoofed, broken = FakePacket(ipv4("192.0.2.1", "198.51.100.1"), 5, 2), FakePacket(ipv4("192.0.2.7", "198.51.100.1"), 5, 2), FakePacket(b"", 5, 2, fail_payload=True)
    for packet in (good, spoofed, broken):
        callback(packet)
    assert (good.verdicts, spoofed.verdicts, broken.verdicts) == (["accept"], ["drop"], ["drop"])
    assert callback.packets == 3 and callback.errors == 1
    assert [d[0] for d in drops] == [Verdict.DROP_SOURCE, Verdict.DROP_MALFORMED]


def test_callback_survives_a_crashing_classifier_and_drop_logger(caplog):
    class Exploding:
        def classify(self, *args):
            raise MemoryError("boom")

    def bad_logger(*args):
        raise ValueError("log sink broken")

    callback = VerdictCallback(Exploding(), bad_logger)  # type: ignore[arg-type]
    packets = [FakePacket(ipv4("192.0.2.1", "198.51.100.1"), 5, 2) for _ in range(3)]
    with caplog.at_level(logging.ERROR, "venetfilter.worker"):
        for packet in packets:
            callback(packet)
    assert [p.verdicts for p in packets] == [["drop"]] * 3
    assert callback.errors == 6  # three classify failures, three logging failures


def test_drop_log_is_rate_limited(caplog):
    now = [0.0]
    log = DropLog(rate=2, burst=3, clock=lambda: now[0])
    header = ipv4("192.0.2.7", "198.51.100.1")
    with caplog.at_level(logging.WARNING, "venetfilter.worker"):
        for _ in range(10):
            log.drop("101", Verdict.DROP_SOURCE, header, 5, 2)
        assert len(caplog.records) == 3 and log.suppressed == 7
        now[0] = 1.0  # two more tokens
        log.drop("101", Verdict.DROP_SOURCE, header, 5, 2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "drop DROP_SOURCE container=101 192.0.2.7 -> 198.51.100.1 indev=5 outdev=2"
    assert messages[3] == "7 more drops not logged"
    assert log.suppressed == 0


@pytest.mark.parametrize(
    "header, text",
    [(b"", "empty packet"), (b"\x45\x00", "2 bytes, IP version 4"), (b"\x10" * 40, "40 bytes, IP version 1")],
)
def test_describe_odd_headers(header, text):
    assert describe_addresses(header) == text


def test_queue_stats_parsing():
    text = "    0  12345     3 2 128  17  4 99 1\n   12   777     0 2 128  0  0 5 1\ngarbage line\n"
    stats = read_queue_stats(text)
    assert set(stats) == {0, 12}
    assert (stats[0].waiting, stats[0].queue_dropped, stats[0].user_dropped, stats[0].copy_range) == (3, 17, 4, 128)


def write_state(run_dir, generation, containers):
    (run_dir / "state.json").write_text(json.dumps({"generation": generation, "containers": containers}))


def test_worker_reload_keeps_old_state_on_corrupt_file(tmp_path):
    write_state(tmp_path, 4, {"101": {"ifindex": 5, "addresses": ["192.0.2.1/24"], "netns": None, "link": "vnf101"}})
    worker = Worker(WorkerOptions(run_dir=tmp_path))
    try:
        assert worker.reload() == 4
        assert worker.table.owner("192.0.2.1") == "101"
        (tmp_path / "state.json").write_text("{not json")
        with pytest.raises(Exception, match="not JSON"):
            worker.reload()
        assert worker.generation == 4 and worker.reload_errors == 1
        assert worker.table.owner("192.0.2.1") == "101"
    finally:
        worker.close()


def test_control_socket_reload_stats_and_bad_requests(tmp_path):
    generation = [7]

    def reload():
        if generation[0] < 0:
            raise RuntimeError("state.json: corrupt\nreally")
        return generation[0]

    server = ControlServer(tmp_path, reload, lambda: {"packets": 3})
    try:
        assert notify_worker(tmp_path, 7, timeout=2) is True
        assert request(tmp_path, b"stats\n") == b'{"packets": 3}\n'
        assert request(tmp_path, b"bogus\n") == b"error unknown request\n"
        with pytest.raises(ConnectionError):  # over-long: refused, the rest left unread
            request(tmp_path, b"x" * 100000)
        assert request(tmp_path, b"stats\n") == b'{"packets": 3}\n'  # and the server goes on
        generation[0] = -1
        assert request(tmp_path, b"reload\n") == b"error state.json: corrupt really\n"
        warnings = []
        assert notify_worker(tmp_path, 8, timeout=2, warn=warnings.append) is False and warnings
        assert (tmp_path / "worker.sock").stat().st_mode & 0o777 == 0o600
    finally:
        server.close()
    assert not (tmp_path / "worker.sock").exists()
    assert notify_worker(tmp_path, 8, timeout=1) is False  # nobody listens: quietly false


def test_metrics_endpoint():
    stats = {
        "containers": {"101": {"ACCEPT": 5, "DROP_SOURCE": 2}},
        "queues": {"0": {"queue_dropped": 1, "user_dropped": 0, "waiting": 0}},
        "errors": 0, "reloads": 3, "reload_errors": 1, "generation": 9, "sync_errors": 0, "unknown_links": 4,
        "verdict_errors": 0, "id_gaps": 0, "mode": "default", "backend": "native",
        "guard": {"enabled": True, "checks": 10, "tables_restored": 2, "elements_restored": 1, "errors": 0},
    }
    server = MetricsServer("127.0.0.1", 0, lambda: stats)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert body == render(stats)
    assert 'venetfilter_packets_total{container="101",verdict="drop_source"} 2' in body
    assert 'venetfilter_queue_dropped_total{queue="0",reason="queue_dropped"} 1' in body
    assert "venetfilter_reload_errors_total 1" in body and "venetfilter_generation 9" in body
    assert "venetfilter_guard_tables_restored_total 2" in body and "venetfilter_unknown_link_drops_total 4" in body
    assert 'venetfilter_info{mode="default",backend="native"} 1' in body
