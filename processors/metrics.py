"""The processor's metrics: counters per instance, served in Prometheus' text format."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class Metrics:
    """Counters of one processor, read by the metrics endpoint from another thread."""

    def __init__(self, dropped: Counter[str]) -> None:
        self.lock = threading.Lock()
        self.events_in = 0
        self.events_out = 0
        self.dead_lettered = 0
        self.dropped = dropped
        """the Minimiser's counters: dropped.<event>.<field>, invalid.<event>.<field>, …"""
        self.lag: dict[tuple[str, int], int] = {}
        self.started = time.monotonic()

    def add(self, events_in: int, events_out: int, dead: int) -> None:
        with self.lock:
            self.events_in += events_in
            self.events_out += events_out
            self.dead_lettered += dead

    def prometheus(self) -> str:
        """The counters in Prometheus text exposition format."""
        with self.lock:
            dropped = dict(self.dropped)
            lag = dict(self.lag)
            counts = (self.events_in, self.events_out, self.dead_lettered)
        lines = []
        for name, value, doc in zip(("events_in", "events_out", "dead_lettered"), counts,
                                    ("raw events consumed", "minimised events produced",
                                     "events sent to the dead-letter topic"), strict=True):
            lines += [f"# HELP datamin_processor_{name}_total {doc}", f"# TYPE datamin_processor_{name}_total counter",
                      f"datamin_processor_{name}_total {value}"]
        lines += ["# HELP datamin_processor_fields_total fields dropped or found invalid, by rule",
                  "# TYPE datamin_processor_fields_total counter"]
        placeholders = {k: v for k, v in dropped.items() if k.startswith("placeholder.")}
        for key, value in sorted(dropped.items()):
            if key in placeholders:
                continue
            outcome, _, where = key.partition(".")
            event, _, field = where.rpartition(".")
            lines.append(f'datamin_processor_fields_total{{outcome="{_label(outcome)}",event="{_label(event)}",'
                         f'field="{_label(field)}"}} {value}')
        lines += ["# HELP datamin_processor_placeholders_total personal data replaced by a placeholder, by detector",
                  "# TYPE datamin_processor_placeholders_total counter"]
        for key, value in sorted(placeholders.items()):
            lines.append(f'datamin_processor_placeholders_total{{rule="{_label(key.partition(".")[2])}"}} {value}')
        lines += ["# HELP datamin_processor_consumer_lag records of each input partition the group has not "
                  "committed yet (end offset minus committed offset), whichever instance owns it",
                  "# TYPE datamin_processor_consumer_lag gauge"]
        for (topic, partition), value in sorted(lag.items()):
            lines.append(f'datamin_processor_consumer_lag{{topic="{_label(topic)}",partition="{partition}"}} {value}')
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def serve_metrics(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    """Serves ``metrics`` at http://127.0.0.1:<port>/metrics from a daemon thread (port 0: any free
    port, see ``server.server_address``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics.prometheus().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="datamin-metrics", daemon=True).start()
    log.info("metrics at http://127.0.0.1:%d/metrics", server.server_address[1])
    return server
