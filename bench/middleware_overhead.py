"""Per-request cost of DataminWSGIMiddleware: the same small WSGI app called in-process with and without
it, through a publisher that does what EventProducer.publish does on the request path (a bounded
queue put), drained by a background thread.

    python bench/middleware_overhead.py [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from producers.request_event import MiddlewareSettings
from producers.wsgi import DataminWSGIMiddleware


class QueuePublisher:
    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(100_000)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            self.q.get()

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        try:
            self.q.put_nowait((event_type, record))
            return True
        except queue.Full:
            return False


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"hello world"]


ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/products/42", "QUERY_STRING": "utm_source=x&ref=abc",
    "SCRIPT_NAME": "", "SERVER_NAME": "shop.example", "SERVER_PORT": "443", "REMOTE_ADDR": "10.0.0.2",
    "HTTP_HOST": "shop.example", "HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.9",
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
    "HTTP_ACCEPT_LANGUAGE": "nb-NO,nb;q=0.9,en;q=0.8", "HTTP_REFERER": "https://search.example/?q=shoes",
    "HTTP_COOKIE": "session=abc123; datamin_consent=c-77; _ga=GA1.2.3", "HTTP_SEC_CH_UA": '"Chromium";v="130"',
    "HTTP_SEC_CH_UA_PLATFORM": '"Linux"', "HTTP_SEC_GPC": "1", "HTTP_ACCEPT": "text/html",
    "wsgi.url_scheme": "https",
}


def run(wsgi: Callable[..., Any], n: int) -> float:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        return lambda data: None

    t0 = time.perf_counter()
    for _ in range(n):
        result = wsgi(dict(ENVIRON), start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=0)
    args = parser.parse_args()
    n = args.requests or (20_000 if args.quick else 200_000)
    settings = MiddlewareSettings(trusted_proxies=("10.0.0.0/8",), session_cookie="session", client_id_cookie="_ga",
                                  cdn_country_header="CF-IPCountry")
    wrapped = DataminWSGIMiddleware(app, QueuePublisher(), settings)
    run(app, 1000)
    run(wrapped, 1000)
    best_with, best_without = float("inf"), float("inf")
    for _ in range(5):  # interleaved rounds, best of each, to damp noise
        best_without = min(best_without, run(app, n // 5))
        best_with = min(best_with, run(wrapped, n // 5))
    added_us = (best_with - best_without) * 1e6
    print(f"without middleware: {best_without * 1e6:.2f} us/request; with: {best_with * 1e6:.2f} us/request; "
          f"publish errors: {wrapped.publish_errors}", file=sys.stderr)
    print(f"RESULT middleware_overhead {added_us:.2f} us ratio={best_with / best_without:.2f} "
          "baseline=same WSGI app without middleware")


if __name__ == "__main__":
    main()
