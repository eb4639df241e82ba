"""The forged-cookie attack of issue #13, as an attacker tries it: the web app (ASGI middleware) and
the collector under a real uvicorn server, a real EventProducer on the real broker, and the real
processor deciding what the victim's events keep.

Before subjects were namespaced and visitor ids server-issued, setting the consent cookie to a
logged-in user's id let anyone grant consent in that user's name (their next requests kept their
pseudonyms), lift a restriction on them, or inject a consent history into their export."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from kafka import KafkaConsumer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from datamin.config import Config
from datamin.identity import Identity
from datamin.topics import Topics, provision
from processors.loop import run_processor
from producers.asgi import DataminASGIMiddleware
from producers.collector import Collector, CollectorSettings
from producers.producer import EventProducer
from producers.request_event import MiddlewareSettings
from schemas import decode, default_registry

SECRET = b"attack-test-secret-shared-by-web-and-collector"
VICTIM = "user-42"


def _app(identity: Identity, producer: EventProducer) -> Any:
    """A shop: /page (the victim logs in with ?login=user-42), /visitor (issues a visitor cookie),
    /link-token (the web server's signed token for its logged-in user) and the collector at /collect."""

    async def page(request: Request) -> PlainTextResponse:
        user = request.query_params.get("login")
        if user:
            request.scope["shop.user"] = user
        return PlainTextResponse("ok")

    async def visitor(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("banner")
        response.set_cookie("datamin_consent", identity.issue_visitor())
        return response

    async def token(request: Request) -> JSONResponse:
        return JSONResponse({"token": identity.sign_user(request.query_params["user"])})

    collector = Collector(producer, CollectorSettings(identity=identity))
    app = Starlette(routes=[Route("/page", page), Route("/visitor", visitor), Route("/token", token),
                            Route("/collect", collector, methods=["POST", "OPTIONS"])])
    settings = MiddlewareSettings(identity=identity, user_id=lambda scope: scope.get("shop.user"))
    return DataminASGIMiddleware(app, producer, settings)


@pytest.fixture
def shop(kafka_config: Config) -> Iterator[tuple[str, Identity, EventProducer]]:
    provision(kafka_config)
    identity = Identity(SECRET)
    producer = EventProducer(kafka_config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(identity, producer), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", identity, producer
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        producer.close(30)


def _consent(**granted: bool) -> dict[str, Any]:
    return {"event": "consent_record", "time": datetime.now(UTC).isoformat(), "necessary": True, "source": "banner",
            "statistics": False, "marketing": False, "feedback": False, **granted}


def _post(http: httpx.Client, events: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return http.post("/collect", content=json.dumps(events), headers=headers)


def _records(config: Config, topic: str) -> list[tuple[bytes | None, dict[str, Any] | None]]:
    consumer = KafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
                             isolation_level="read_committed", consumer_timeout_ms=4000,
                             **config.kafka.client_kwargs())
    try:
        return [(m.key, decode(m.value, default_registry())[1] if m.value is not None else None) for m in consumer]
    finally:
        consumer.close()


def _minimised_pages(config: Config, expected: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    topic = Topics(config).minimised("http_request")
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = [r for _, r in _records(config, topic) if r is not None]
        if len(rows) >= expected:
            break
    return rows


def test_forged_cookie_and_tokens_name_nobody(kafka_config: Config,
                                              shop: tuple[str, Identity, EventProducer]) -> None:
    base, identity, producer = shop
    with httpx.Client(base_url=base, timeout=30) as attacker, httpx.Client(base_url=base, timeout=30) as victim:
        # the attacker names the victim in every way a client can
        for cookie in (VICTIM, f"user:{VICTIM}", "USER-42", "visitor:user-42"):
            attacker.cookies.set("datamin_consent", cookie)
            answer = _post(attacker, [_consent(statistics=True, marketing=True),
                                      {"event": "privacy_request", "request_id": "r-forged", "kind": "lift",
                                       "received": datetime.now(UTC).isoformat()},
                                      {**_consent(statistics=True), "subject_key": f"user:{VICTIM}"}])
            assert answer.status_code == 400
            assert [r["index"] for r in answer.json()["rejected"]] == [0, 1, 2]
            assert all("not issued by this server" in r["error"] for r in answer.json()["rejected"])
        attacker.cookies.clear()
        # a forged or over-long-lived token is an error answer, never a fall-back to a valid cookie
        attacker.get("/visitor")
        assert attacker.cookies.get("datamin_consent")
        other = Identity(b"a-secret-the-attacker-chose-of-32-bytes!").sign_user(VICTIM)
        for bad in (other, "u1.dXNlcjp1c2VyLTQy.1.9999999999.00.00", ""):
            answer = _post(attacker, [_consent(statistics=True)], **{"x-datamin-subject": bad})
            assert answer.status_code == 401 and "token is not valid" in answer.json()["error"]

        # the victim, logged in, browses: no consent of theirs exists
        assert victim.get("/page", params={"login": VICTIM}).status_code == 200
        # a real visitor consents as a visitor, then logs in: that consent is not the user's
        victim.get("/visitor")
        visitor_cookie = victim.cookies["datamin_consent"]
        assert _post(victim, [_consent(statistics=True)]).status_code == 200
        assert victim.get("/page").status_code == 200  # as the visitor: statistics consent applies
        assert victim.get("/page", params={"login": "user-7"}).status_code == 200  # logged in: no consent yet
    assert producer.flush(60)

    consent_keys = [k for k, _ in _records(kafka_config, Topics(kafka_config).consent)]
    visitor = "visitor:" + visitor_cookie.split(".")[0]
    assert consent_keys == [visitor.encode()]  # nothing in the victim's (or anyone else's) name
    assert _records(kafka_config, Topics(kafka_config).requests_in) == []
    assert _records(kafka_config, Topics(kafka_config).privacy_requests) == []

    stop = threading.Event()
    worker = threading.Thread(target=run_processor, args=(kafka_config,),
                              kwargs={"stop": stop, "instance": "attack"})
    worker.start()
    try:
        rows = _minimised_pages(kafka_config, 13)  # every request, the collector's posts included
    finally:
        stop.set()
        worker.join(timeout=60)
    assert len(rows) == 13
    pages = sorted((r for r in rows if r["url"] == "/page"), key=lambda r: r["time"])
    assert len(pages) == 3
    assert [r["subject"] is not None for r in pages] == [False, True, False]  # only the visitor's own view
    assert all(r["user_id"] is None for r in rows)  # neither user keeps an identifier


def test_the_signed_link_call_carries_a_choice_over_on_purpose(
        kafka_config: Config, shop: tuple[str, Identity, EventProducer]) -> None:
    base, identity, producer = shop
    with httpx.Client(base_url=base, timeout=30) as browser:
        token = browser.get("/token", params={"user": "Ola "}).json()["token"]
        assert _post(browser, [_consent(statistics=True)], **{"x-datamin-subject": token}).status_code == 200
    assert producer.flush(60)
    keys = [k for k, _ in _records(kafka_config, Topics(kafka_config).consent)]
    assert keys == [b"user:ola"]  # the server vouched for its user; the key is canonical
