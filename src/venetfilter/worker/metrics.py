"""The worker's counters in Prometheus' text format, served over HTTP when asked for."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MetricsServer", "render"]


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
    for name, help_text in (("errors", "Packets dropped because classifying them failed."),
                            ("reloads", "Successful reloads of the runtime state."),
                            ("reload_errors", "Failed reloads (the previous state stays in force).")):
        lines += [f"# HELP venetfilter_{name}_total {help_text}", f"# TYPE venetfilter_{name}_total counter",
                  f"venetfilter_{name}_total {stats[name]}"]
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

        self._server = ThreadingHTTPServer((address, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="venetfilter-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
