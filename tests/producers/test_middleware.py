"""The WSGI middleware under a real Flask app and the ASGI middleware under a real Starlette app."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import warnings
from collections.abc import Callable
from typing import Any

import httpx
from flask import Flask, Response, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from datamin.config import Config
from datamin.identity import Identity
from datamin.topics import Topics, provision
from producers.asgi import DataminASGIMiddleware
from producers.producer import EventProducer
from producers.request_event import MiddlewareSettings
from producers.wsgi import DataminWSGIMiddleware
from schemas import decode, default_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer

IDENTITY = Identity(b"middleware-test-secret-of-32-bytes+")
VISITOR_COOKIE = IDENTITY.issue_visitor()
VISITOR = "visitor:" + VISITOR_COOKIE.split(".")[0]
SETTINGS = MiddlewareSettings(trusted_proxies=("127.0.0.1/32",), session_cookie="session",
                              cdn_country_header="CF-IPCountry", identity=IDENTITY,
                              user_id=lambda env: env.get("datamin.user") if isinstance(env, dict) else None)
HEADERS = {"User-Agent": "TestAgent/1.0", "Referer": "https://ref.example/x?y=1", "Accept-Language": "nb-NO,nb",
           "DNT": "1", "Sec-GPC": "1", "CF-IPCountry": "NO", "Sec-CH-UA-Platform": '"Linux"',
           "Cookie": f"session=s-1; datamin_consent={VISITOR_COOKIE}"}


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        if self.fail:
            raise RuntimeError("broker on fire")
        self.events.append((event_type, record))
        return True


class LaterPublisher(FakePublisher):
    """Takes ``publish_later`` as EventProducer does: the record is built afterwards, elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.later: list[tuple[str, Any, tuple[Any, ...]]] = []

    def publish_later(self, event_type: str, build: Any, *args: Any) -> bool:
        self.later.append((event_type, build, args))
        return True

    def build_all(self) -> None:
        self.events += [(event_type, build(*args)) for event_type, build, args in self.later]


def flask_client(publisher: Any) -> Any:
    """A Flask test client carrying the cookies of HEADERS (its cookie jar replaces a Cookie header)."""
    client = flask_app(publisher).test_client()
    client.set_cookie("session", "s-1")
    client.set_cookie("datamin_consent", VISITOR_COOKIE)
    return client


def flask_app(publisher: Any) -> Flask:
    app = Flask("t")

    @app.route("/hello")
    def hello() -> Response:
        if request.args.get("login"):
            request.environ["datamin.user"] = "user-42"
        return Response("hello world", status=201)

    @app.route("/boom")
    def boom() -> Response:
        raise RuntimeError("app error")

    app.wsgi_app = DataminWSGIMiddleware(app.wsgi_app, publisher, SETTINGS)  # type: ignore[method-assign]
    return app


def starlette_app(publisher: Any) -> Starlette:
    async def hello(req: Request) -> PlainTextResponse:
        return PlainTextResponse("hello world", status_code=201)

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(DataminASGIMiddleware, producer=publisher, settings=SETTINGS)
    return app


def test_flask_request_becomes_one_event() -> None:
    publisher = FakePublisher()
    client = flask_client(publisher)
    response = client.get("/hello?a=1&b=%20x", headers={**HEADERS, "X-Forwarded-For": "198.51.100.23"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"}, buffered=True)
    assert response.status_code == 201 and response.data == b"hello world"
    [(event_type, record)] = publisher.events
    assert event_type == "http_request"
    assert record["method"] == "GET" and record["url"] == "/hello?a=1&b=%20x" and record["host"] == "localhost"
    assert record["status"] == 201 and record["bytes_sent"] == 11 and record["duration_ms"] >= 0
    assert record["client_ip"] == "198.51.100.23"  # the proxy at 127.0.0.1 is trusted
    assert record["user_agent"] == "TestAgent/1.0" and record["accept_language"] == "nb-NO,nb"
    assert record["do_not_track"] and record["global_privacy_control"] and record["cdn_country"] == "NO"
    assert record["client_hints"] == {"sec-ch-ua-platform": '"Linux"'}
    assert record["session_id"] == "s-1" and record["subject_key"] == VISITOR


def test_flask_forged_forwarded_for_ignored_and_user_is_subject() -> None:
    publisher = FakePublisher()
    client = flask_client(publisher)
    client.get("/hello?login=1", headers={**HEADERS, "X-Forwarded-For": "6.6.6.6"},
               environ_base={"REMOTE_ADDR": "203.0.113.9"}, buffered=True)
    record = publisher.events[0][1]
    assert record["client_ip"] == "203.0.113.9"
    assert record["user_id"] == "user-42" and record["subject_key"] == "user:user-42"


def test_flask_app_error_is_recorded_and_passes_through() -> None:
    publisher = FakePublisher()
    app = flask_app(publisher)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom", buffered=True)
    assert response.status_code == 500
    assert publisher.events[0][1]["status"] == 500


def test_failing_publisher_never_fails_the_request() -> None:
    publisher = FakePublisher(fail=True)
    app = flask_app(publisher)
    response = app.test_client().get("/hello", buffered=True)
    assert response.status_code == 201
    assert app.wsgi_app.publish_errors == 1  # type: ignore[attr-defined]


def _asgi_get(app: Any, url: str, headers: dict[str, str], client: tuple[str, int],
              base: str = "http://shop.example") -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            return await http.get(url, headers=headers)

    return asyncio.run(call())


def test_with_publish_later_the_user_is_asked_in_the_request_and_the_record_built_afterwards() -> None:
    asked_in: list[int] = []

    def user_id(environ: Any) -> str | None:
        asked_in.append(threading.get_ident())
        return "user-42" if environ.get("datamin.user") else None

    publisher = LaterPublisher()
    app = flask_app(publisher)
    app.wsgi_app.settings = dataclasses.replace(SETTINGS, user_id=user_id)  # type: ignore[attr-defined]
    client = app.test_client()
    client.set_cookie("datamin_consent", VISITOR_COOKIE)
    assert client.get("/hello?login=1", headers=HEADERS, buffered=True).status_code == 201
    assert asked_in == [threading.get_ident()] and publisher.events == [] and len(publisher.later) == 1

    def build_elsewhere() -> None:
        publisher.build_all()

    thread = threading.Thread(target=build_elsewhere)
    thread.start()
    thread.join()
    [(event_type, record)] = publisher.events
    assert event_type == "http_request" and record["subject_key"] == "user:user-42"
    assert record["status"] == 201 and record["bytes_sent"] == 11 and record["url"] == "/hello?login=1"
    assert asked_in == [threading.get_ident()]  # not asked again by the builder


def test_a_server_that_reuses_the_environ_does_not_change_the_record_built_later() -> None:
    """uWSGI (wsgi-env-behaviour "cheat", its default) clears the environ after a request and fills the
    same dict with the next request's."""
    publisher = LaterPublisher()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = DataminWSGIMiddleware(app, publisher, SETTINGS)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/first", "REMOTE_ADDR": "198.51.100.1",
               "HTTP_USER_AGENT": "First/1.0", "HTTP_COOKIE": f"datamin_consent={VISITOR_COOKIE}"}

    def start_response(status: str, headers: list[tuple[str, str]]) -> Callable[[bytes], object]:
        return lambda data: None

    response = middleware(environ, start_response)
    assert b"".join(response) == b"ok"
    response.close()  # type: ignore[attr-defined]
    environ.clear()
    environ.update({"REQUEST_METHOD": "POST", "PATH_INFO": "/second", "REMOTE_ADDR": "203.0.113.9",
                    "HTTP_USER_AGENT": "Second/2.0"})
    publisher.build_all()
    [(_, record)] = publisher.events
    assert record["url"] == "/first" and record["method"] == "GET" and record["client_ip"] == "198.51.100.1"
    assert record["user_agent"] == "First/1.0" and record["subject_key"] == VISITOR


def test_a_file_response_goes_back_to_the_server_as_its_own_file_wrapper(tmp_path: Any) -> None:
    """gunicorn sends a response that is its ``wsgi.file_wrapper`` with sendfile(2): the middleware must
    hand it back unwrapped, and still publish once, when the server closes it."""
    from flask import send_file
    from gunicorn.http.wsgi import FileWrapper
    from werkzeug.test import EnvironBuilder

    (tmp_path / "report.pdf").write_bytes(b"%PDF" + bytes(20_000))
    publisher = FakePublisher()
    app = Flask("t")
    app.add_url_rule("/report", view_func=lambda: send_file(tmp_path / "report.pdf"))
    middleware = DataminWSGIMiddleware(app.wsgi_app, publisher, SETTINGS)
    environ = EnvironBuilder(path="/report").get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    statuses: list[str] = []
    result = middleware(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert isinstance(result, FileWrapper) and statuses == ["200 OK"]
    assert b"".join(result) == (tmp_path / "report.pdf").read_bytes()
    assert publisher.events == []  # not before the server closes it
    file = result.filelike
    result.close()
    result.close()
    assert file.closed
    [(_, record)] = publisher.events
    assert record["url"] == "/report" and record["status"] == 200 and record["bytes_sent"] == 20_004


def test_starlette_request_becomes_one_event() -> None:
    publisher = FakePublisher()
    response = _asgi_get(starlette_app(publisher), "/hello?q=%C3%A6",
                         {**HEADERS, "Forwarded": 'for="[2001:db8::7]:1"'}, ("127.0.0.1", 5555))
    assert response.status_code == 201
    [(event_type, record)] = publisher.events
    assert event_type == "http_request" and record["host"] == "shop.example"
    assert record["url"] == "/hello?q=%C3%A6" and record["status"] == 201 and record["bytes_sent"] == 11
    assert record["client_ip"] == "2001:db8::7" and record["subject_key"] == VISITOR
    assert record["cdn_country"] == "NO" and record["global_privacy_control"] is True


def test_starlette_failing_publisher_never_fails_the_request() -> None:
    publisher = FakePublisher(fail=True)
    middleware = DataminASGIMiddleware(starlette_app(FakePublisher()), publisher)
    response = _asgi_get(middleware, "/hello", {"X-Forwarded-For": "6.6.6.6"}, ("203.0.113.1", 1))
    assert response.status_code == 201 and middleware.publish_errors == 1


def _consume(config: Config, n: int) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(Topics(config).raw("http_request"), **config.kafka.client_kwargs(),
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        out = []
        for message in consumer:
            schema, record = decode(message.value, default_registry())
            assert schema.name == "http_request" and message.key == record["subject_key"].encode()
            out.append(record)
            if len(out) >= n:
                break
        return out
    finally:
        consumer.close()


def test_flask_to_real_broker(kafka_config: Config) -> None:
    provision(kafka_config)
    producer = EventProducer(kafka_config)
    client = flask_client(producer)
    assert client.get("/hello?x=1", headers=HEADERS, buffered=True).status_code == 201
    assert producer.close(30)
    [record] = _consume(kafka_config, 1)
    assert record["url"] == "/hello?x=1" and record["status"] == 201 and record["subject_key"] == VISITOR


def test_starlette_to_real_broker(kafka_config: Config) -> None:
    provision(kafka_config)
    producer = EventProducer(kafka_config)
    assert _asgi_get(starlette_app(producer), "/hello?y=2", HEADERS, ("198.51.100.4", 1)).status_code == 201
    assert producer.close(30)
    [record] = _consume(kafka_config, 1)
    assert record["url"] == "/hello?y=2" and record["client_ip"] == "198.51.100.4"
    assert record["accept_language"] == "nb-NO,nb"


def test_a_cookie_the_server_did_not_issue_is_ignored() -> None:
    publisher = FakePublisher()
    forged = {**HEADERS, "Cookie": "session=s-1; datamin_consent=user-42"}
    _asgi_get(starlette_app(publisher), "/hello", forged, ("198.51.100.4", 1))
    client = flask_app(publisher).test_client()
    client.set_cookie("datamin_consent", "user:user-42")
    client.get("/hello", buffered=True)
    assert [r["subject_key"] for _, r in publisher.events] == [None, None]
