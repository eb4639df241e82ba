"""WSGI middleware: one http_request event per request (Flask, Django, any WSGI app).

    app.wsgi_app = DataminWSGIMiddleware(app.wsgi_app, producer, MiddlewareSettings(...))

The event is published when the server closes the response (so status, bytes sent and duration are
known). Publishing can never fail or slow down the request beyond a queue put: every exception
around it is caught and counted in ``publish_errors``; the app's own exceptions pass through
unchanged (recorded as status 500).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from producers.request_event import MiddlewareSettings, Publisher, RequestPublisher, build_record

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def wsgi_headers(environ: Environ) -> dict[str, str]:
    """The request headers of a WSGI environ, lower-case with dashes."""
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items()
               if key.startswith("HTTP_") and isinstance(value, str)}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def wsgi_url(environ: Environ) -> str:
    """The request target as received: the server's raw URI when it gives one, else rebuilt."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        return raw
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


class DataminWSGIMiddleware(RequestPublisher):
    server = "WSGI"

    def __init__(self, app: WSGIApp, producer: Publisher, settings: MiddlewareSettings | None = None, *,
                 wall_clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(producer, settings, wall_clock=wall_clock, timer=timer)
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started, t0 = self._wall(), self._timer()
        state = _State()

        def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state.status = status
            write = start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            def counting_write(data: bytes) -> object:
                state.bytes_sent += len(data)
                return write(data)

            return counting_write

        try:
            result = self.app(environ, _start_response)
        except BaseException:
            state.status = state.status or "500"
            self._publish(environ, state, started, t0)
            raise
        return _Response(result, lambda: self._publish(environ, state, started, t0), state)

    def _publish(self, environ: Environ, state: _State, started: float, t0: float) -> None:
        duration_ms = (self._timer() - t0) * 1000.0
        self._publish_record(self._record, environ, environ, state.status, state.bytes_sent, started, duration_ms)

    def _record(self, environ: Environ, status_line: str | None, bytes_sent: int, started: float,
                duration_ms: float, user_id: str | None) -> dict[str, Any]:
        status = int(status_line[:3]) if status_line and status_line[:3].isdigit() else None
        return build_record(
            self.settings, started=started, method=environ.get("REQUEST_METHOD"),
            host=environ.get("HTTP_HOST") or environ.get("SERVER_NAME"), url=wsgi_url(environ), status=status,
            bytes_sent=bytes_sent, duration_ms=duration_ms, headers=wsgi_headers(environ),
            peer=environ.get("REMOTE_ADDR"), user_id=user_id)


class _State:
    __slots__ = ("status", "bytes_sent")

    def __init__(self) -> None:
        self.status: str | None = None
        self.bytes_sent = 0


class _Response:
    """Wraps the app's response iterable: counts bytes, publishes once when closed."""

    def __init__(self, result: Iterable[bytes], on_close: Callable[[], None], state: _State) -> None:
        self._result = result
        self._on_close = on_close
        self._state = state
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._state.bytes_sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()
