"""The Flask app the web benchmarks serve under gunicorn: with DATAMIN_BENCH_MIDDLEWARE=1 wrapped in
DataminWSGIMiddleware publishing through a real EventProducer (config from the environment), else bare.
GET /_stats answers the producer's counters (or {} without middleware), GET /_threads its Python threads."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask, Response, request  # noqa: E402

flask_app = Flask("bench")
producer = None


@flask_app.get("/")
@flask_app.get("/p/<int:n>")
def page(n: int = 0) -> Response:
    return Response(f"<html><body>page {n} for {request.headers.get('User-Agent', '?')[:20]}</body></html>",
                    mimetype="text/html")


@flask_app.get("/_stats")
def stats() -> Response:
    body = dataclasses.asdict(producer.stats()) if producer is not None else {}
    return Response(json.dumps(body), mimetype="application/json")


@flask_app.get("/_threads")
def threads() -> Response:
    """This process's Python threads by native id: the benchmarks split CPU time by thread with it."""
    body = {str(t.native_id): t.name for t in threading.enumerate() if t.native_id is not None}
    return Response(json.dumps(body), mimetype="application/json")


app = flask_app.wsgi_app
if os.environ.get("DATAMIN_BENCH_MIDDLEWARE") == "1":
    from datamin.config import load_config
    from producers.producer import EventProducer
    from producers.request_event import MiddlewareSettings
    from producers.wsgi import DataminWSGIMiddleware

    producer = EventProducer(load_config())
    app = DataminWSGIMiddleware(flask_app.wsgi_app, producer, MiddlewareSettings(session_cookie="session"))
