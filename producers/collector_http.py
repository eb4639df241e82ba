"""The collector's HTTP exchange without I/O: what the ASGI server (``collector_asgi``) and the WSGI
app (``collector_wsgi``) both do with a request, so the two cannot drift.

Paths, relative to the mount prefix (``/collect`` by default):

    POST    /collect  and  /collect/     events (see producers.collector); never a redirect
    OPTIONS /collect  and  /collect/     CORS preflight
    GET     /collect/datamin.js          the page snippet (producers/static/datamin.js)

Order of checks: path (404), Origin (403: a browser from an origin not allowed), method (405),
per-client rate limit (429 with Retry-After), then the body (413 when too large; the reading
deadline is the server adapter's), then ``Collector.handle``.

The client a rate limit counts against is the socket peer, or the address a trusted proxy forwarded
(the same rule as the middleware's ``client_address``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from producers.collector import Collector
from producers.ratelimit import TokenBuckets
from producers.request_event import IPNetwork, client_address


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def script() -> bytes:
    """The JS snippet pages load from ``<prefix>/datamin.js``."""
    return resources.files("producers").joinpath("static/datamin.js").read_bytes()


class CollectorEndpoint:
    """The request flow around a ``Collector``: routing, CORS, rate limit, body size, the snippet."""

    def __init__(self, collector: Collector, *, prefix: str = "/collect", limiter: TokenBuckets | None = None,
                 trusted_proxies: tuple[IPNetwork, ...] = ()) -> None:
        self.collector = collector
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies
        self._script = script()
        self.rate_limited = 0
        """requests answered 429"""

    @property
    def max_body_bytes(self) -> int:
        return self.collector.settings.max_body_bytes

    def route(self, path: str) -> str | None:
        """"collect", "script" or None (not the collector's)."""
        if path in (self.prefix, self.prefix + "/") or (not self.prefix and path == ""):
            return "collect"
        if path == self.prefix + "/datamin.js":
            return "script"
        return None

    def before_body(self, method: str, path: str, headers: dict[str, str],
                    peer: str | None) -> tuple[Reply | None, list[tuple[str, str]]]:
        """A reply that ends the exchange before the body is read (or None: read it), and the CORS
        headers every reply of this request carries. ``headers`` lower-case."""
        where = self.route(path)
        if where is None:
            return json_reply(404, {"error": f"not found; the collector answers at {self.prefix or '/'}"}, []), []
        if where == "script":
            if method not in ("GET", "HEAD"):
                return json_reply(405, {"error": "use GET"}, [("allow", "GET, HEAD")]), []
            body = b"" if method == "HEAD" else self._script
            return Reply(200, [("content-type", "text/javascript; charset=utf-8"),
                               ("cache-control", "public, max-age=3600"),
                               ("content-length", str(len(self._script)))], body), []
        settings = self.collector.settings
        origin = headers.get("origin")
        cors: list[tuple[str, str]] = []
        if origin is not None:
            if origin not in settings.allowed_origins:
                return json_reply(403, {"error": "this origin may not post events here; add it to "
                                            "collector.allowed_origins (the site's own origin too)"}, []), []
            cors = [("access-control-allow-origin", origin), ("access-control-allow-credentials", "true"),
                    ("vary", "Origin")]
        if method == "OPTIONS":
            return Reply(204, cors + [("access-control-allow-methods", "POST, OPTIONS"),
                                      ("access-control-allow-headers", "content-type, " + settings.token_header),
                                      ("access-control-max-age", "600"), ("cache-control", "no-store")]), cors
        if method != "POST":
            return json_reply(405, {"error": "use POST"}, cors + [("allow", "POST, OPTIONS")]), cors
        if self.limiter is not None:
            client = self.client(peer, headers) or "unknown"
            if not self.limiter.allow(client):
                self.rate_limited += 1
                wait = max(1, math.ceil(self.limiter.retry_after(client)))
                return json_reply(429, {"error": f"too many requests from this client; retry in {wait} s"},
                             cors + [("retry-after", str(wait))]), cors
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return self.too_large(cors), cors
        return None, cors

    def client(self, peer: str | None, headers: dict[str, str]) -> str | None:
        return client_address(peer, headers.get("x-forwarded-for"), headers.get("forwarded"), self.trusted_proxies)

    def too_large(self, cors: list[tuple[str, str]]) -> Reply:
        return json_reply(413, {"error": f"body larger than {self.max_body_bytes} bytes"}, cors)

    def after_body(self, body: bytes, headers: dict[str, str], cors: list[tuple[str, str]]) -> Reply:
        status, payload = self.collector.handle(body, headers)
        return json_reply(status, payload, cors)


def json_reply(status: int, payload: dict[str, Any], extra: list[tuple[str, str]]) -> Reply:
    body = json.dumps(payload).encode("utf-8")
    return Reply(status, [*extra, ("cache-control", "no-store"), ("content-type", "application/json"),
                          ("content-length", str(len(body)))], body)
