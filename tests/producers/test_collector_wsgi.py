"""The collector as a WSGI app in front of a Flask app: the same rules as the ASGI server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from datamin.identity import Identity
from producers.collector import Collector, CollectorSettings
from producers.collector_http import CollectorEndpoint
from producers.collector_wsgi import CollectorWSGI
from producers.ratelimit import TokenBuckets

SITE = "https://shop.example"
USAGE = {"event": "usage_event", "time": datetime.now(UTC).isoformat(), "kind": "page_view", "page": "/a"}
IDENTITY = Identity(b"a secret the web server and the collector share, 32+ bytes")


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        self.events.append((event_type, record))
        return True


def make(burst: int = 100, max_body_bytes: int = 256 * 1024) -> tuple[Any, Sink]:
    app = Flask("shop")

    @app.get("/")
    def home() -> str:
        return "the shop"

    sink = Sink()
    collector = Collector(sink, CollectorSettings(allowed_origins=(SITE,), max_body_bytes=max_body_bytes,
                                                  identity=IDENTITY))
    endpoint = CollectorEndpoint(collector, limiter=TokenBuckets(rate=0.001, burst=burst))
    app.wsgi_app = CollectorWSGI(endpoint, app=app.wsgi_app)  # type: ignore[method-assign]
    return app.test_client(), sink


def test_flask_serves_the_collector_at_both_paths_and_its_own_pages() -> None:
    client, sink = make()
    visitor = IDENTITY.issue_visitor()
    client.set_cookie("datamin_consent", visitor)  # the web server set it; the browser sends it along
    for path in ("/collect", "/collect/"):
        response = client.post(path, json=[USAGE], headers={"Origin": SITE})
        assert response.status_code == 200 and response.json == {"accepted": 1, "rejected": []}
        assert response.headers["Access-Control-Allow-Origin"] == SITE
        preflight = client.options(path, headers={"Origin": SITE, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204
    assert client.get("/").data == b"the shop"
    assert client.get("/collect/datamin.js").data.startswith(b"/* datamin.js")
    assert client.post("/collect", json=[USAGE], headers={"Origin": "https://evil.example"}).status_code == 403
    assert [r["subject_key"] for _, r in sink.events] == [IDENTITY.visitor_of(visitor)] * 2


def test_size_and_rate_limits_hold_under_wsgi() -> None:
    client, sink = make(burst=2, max_body_bytes=1000)
    big = json.dumps([{**USAGE, "page": "/" + "x" * 2000}])
    assert client.post("/collect", data=big, content_type="application/json").status_code == 413
    assert client.post("/collect", json=[USAGE]).status_code == 200
    limited = client.post("/collect", json=[USAGE])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert len(sink.events) == 1
