"""ASGI middleware: one http_request event per HTTP request (FastAPI, Starlette, any ASGI app).

    app.add_middleware(DataminASGIMiddleware, producer=producer, settings=MiddlewareSettings(...))
    # or: app = DataminASGIMiddleware(app, producer, settings)

The event is published when the app has finished the request. WebSocket and lifespan scopes pass
through untouched. Publishing never fails the request: every exception around it is caught and
counted in ``publish_errors``; the app's own exceptions pass through (recorded as status 500).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from producers.request_event import MiddlewareSettings, Publisher, RequestPublisher, build_record

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def asgi_headers(scope: Scope) -> dict[str, str]:
    """The request headers of a scope, lower-case; repeated headers joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def asgi_url(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else scope.get("root_path", "") + scope.get(
        "path", "/")
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


class DataminASGIMiddleware(RequestPublisher):
    server = "ASGI"

    def __init__(self, app: ASGIApp, producer: Publisher, settings: MiddlewareSettings | None = None, *,
                 wall_clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(producer, settings, wall_clock=wall_clock, timer=timer)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started, t0 = self._wall(), self._timer()
        status: list[int | None] = [None]
        sent = [0]

        async def counting_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                status[0] = message.get("status")
            elif kind == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            if status[0] is None:
                status[0] = 500
            raise
        finally:
            self._publish(scope, status[0], sent[0], started, t0)

    def _publish(self, scope: Scope, status: int | None, bytes_sent: int, started: float, t0: float) -> None:
        duration_ms = (self._timer() - t0) * 1000.0
        # a copy: the record may be built later, and the scope belongs to the server and the app
        self._publish_record(self._record, scope, dict(scope), status, bytes_sent, started, duration_ms)

    def _record(self, scope: Scope, status: int | None, bytes_sent: int, started: float, duration_ms: float,
                user_id: str | None) -> dict[str, Any]:
        headers = asgi_headers(scope)
        client = scope.get("client")
        return build_record(
            self.settings, started=started, method=scope.get("method"),
            host=headers.get("host") or _server_host(scope), url=asgi_url(scope), status=status,
            bytes_sent=bytes_sent, duration_ms=duration_ms, headers=headers,
            peer=client[0] if client else None, user_id=user_id)


def _server_host(scope: Scope) -> str | None:
    server = scope.get("server")
    return str(server[0]) if server else None
