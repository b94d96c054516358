"""Every worker and rules option checked before anything happens: exit 21 with a clear message
(argparse's), nothing bound, no table installed."""

from __future__ import annotations

import socket

import pytest

from venetfilter.cli import main
from venetfilter.worker.metrics import MetricsError, MetricsServer


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--queues", "0"],
        ["worker", "--queues", "65"],
        ["worker", "--queue", "70000"],
        ["worker", "--queue", "-1"],
        ["worker", "--queue", "65535", "--queues", "2"],
        ["worker", "--queue-cpu-fanout"],
        ["worker", "--metrics-port", "70000"],
        ["worker", "--metrics-port", "http"],
        ["worker", "--log-rate", "nan"],
        ["worker", "--log-rate", "inf"],
        ["worker", "--log-rate", "0"],
        ["worker", "--judge-rate", "-5"],
        ["worker", "--mode", "fast"],
        ["worker", "--run-dir", ""],
        ["rules", "install", "--queue-balance", "5:2"],
        ["rules", "install", "--queue-balance", "junk"],
        ["rules", "install", "--queue", "70000"],
        ["rules", "install", "--queue-cpu-fanout"],
        ["start", "101", "--neighbour-devs", "junk/"],
        ["start", "101", "--neighbour-devs", "list:"],
        ["--notify-timeout", "-1", "list"],
    ],
)
def test_bad_options_are_21_and_touch_nothing(argv, capsys, tmp_path) -> None:
    assert main(["--run-dir", str(tmp_path / "run"), "--conf-dir", str(tmp_path / "conf"), *argv]) == 21
    err = capsys.readouterr().err
    assert err.startswith("venetctl: ") and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("venetctl (venetfilter) ")


def test_metrics_on_ipv6_and_a_busy_port_is_a_clear_error() -> None:
    server = MetricsServer("::1", 0, lambda: {})
    try:
        with pytest.raises(MetricsError, match=f"port {server.port}: Address already in use"):
            MetricsServer("::1", server.port, lambda: {})
        with socket.create_connection(("::1", server.port), timeout=2):
            pass
    finally:
        server.close()
