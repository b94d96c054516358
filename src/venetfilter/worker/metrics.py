"""The worker's counters in Prometheus' text format, served over HTTP when asked for."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import MetricsError

__all__ = ["MetricsError", "MetricsServer", "render"]




def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(stats: dict) -> str:
    """Prometheus exposition text of a worker's `stats()`."""
    lines = [
        "# HELP venetfilter_packets_total Packets classified, per container and verdict.",
        "# TYPE venetfilter_packets_total counter",
    ]
    for ctid, verdicts in sorted(stats["containers"].items()):
        for verdict, count in sorted(verdicts.items()):
            lines.append(f'venetfilter_packets_total{{container="{_label(ctid)}",verdict="{verdict.lower()}"}} {count}')
    lines += ["# HELP venetfilter_queue_dropped_total Packets the kernel dropped: queue full or socket buffer full.",
              "# TYPE venetfilter_queue_dropped_total counter"]
    for queue, counts in sorted(stats["queues"].items()):
        for reason in ("queue_dropped", "user_dropped"):
            lines.append(f'venetfilter_queue_dropped_total{{queue="{queue}",reason="{reason}"}} {counts[reason]}')
    counters = (
        ("errors", stats["errors"], "Packets dropped because classifying them failed."),
        ("reloads", stats["reloads"], "Successful reloads of the runtime state."),
        ("reload_errors", stats["reload_errors"], "Failed reloads (the previous state stays in force)."),
        ("sync_errors", stats["sync_errors"], "Failed updates of the kernel table (the guard restores it)."),
        ("unknown_link_drops", stats["unknown_links"], "Packets dropped on a container link the table does not know."),
        ("verdict_errors", stats["verdict_errors"], "Verdict messages the kernel refused (their packets stay dropped)."),
        ("id_gaps", stats["id_gaps"], "Jumps in queued packet ids: messages not read, their packets dropped."),
        ("guard_checks", stats["guard"]["checks"], "Looks of the guard at the kernel table."),
        ("guard_tables_restored", stats["guard"]["tables_restored"],
         "Times the kernel table was missing or changed by someone else and was reinstalled."),
        ("guard_elements_restored", stats["guard"]["elements_restored"],
         "Times the kernel sets were changed by someone else and were put right."),
        ("guard_errors", stats["guard"]["errors"], "Guard looks that failed."),
    )
    for name, value, help_text in counters:
        lines += [f"# HELP venetfilter_{name}_total {help_text}", f"# TYPE venetfilter_{name}_total counter",
                  f"venetfilter_{name}_total {value}"]
    lines += ["# HELP venetfilter_guard_enabled 1 when the worker guards the kernel table.",
              "# TYPE venetfilter_guard_enabled gauge", f"venetfilter_guard_enabled {int(stats['guard']['enabled'])}",
              "# HELP venetfilter_info The worker's layout.", "# TYPE venetfilter_info gauge",
              f'venetfilter_info{{mode="{_label(stats["mode"])}",backend="{_label(stats["backend"])}"}} 1']
    lines += ["# HELP venetfilter_generation The runtime state generation in force.",
              "# TYPE venetfilter_generation gauge", f"venetfilter_generation {stats['generation']}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics on (address, port), from a thread."""

    def __init__(self, address: str, port: int, stats: Callable[[], dict]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = render(stats()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family

        try:
            self._server = Server((address, port), Handler)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {address} port {port}: {exc.strerror or exc}") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="venetfilter-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
