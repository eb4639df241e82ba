"""WSGI middleware: one http_request event per request (Flask, Django, any WSGI app).

    app.wsgi_app = DataminWSGIMiddleware(app.wsgi_app, producer, MiddlewareSettings(...))

The event is published when the server closes the response (so status, bytes sent and duration are
known). A file the app answers with the server's ``wsgi.file_wrapper`` (Flask's ``send_file``) is
handed back to the server as it is, so that the server can still send it with sendfile(2); its bytes
sent are its Content-Length. Publishing can never fail or slow down the request beyond a queue put:
every exception around it is caught and counted in ``publish_errors``; the app's own exceptions pass
through unchanged (recorded as status 500).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from producers.request_event import MiddlewareSettings, Publisher, RequestPublisher, build_record

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


_HEADER_NAMES: dict[str, str] = {}
"""environ key -> header name ("" for keys that are not headers), for the keys seen most"""
_HEADER_NAMES_MAX = 4096
"""past this many keys nothing more is remembered: clients choose the names of the headers they send"""


def wsgi_headers(environ: Environ) -> dict[str, str]:
    """The request headers of a WSGI environ, lower-case with dashes."""
    names = _HEADER_NAMES
    headers: dict[str, str] = {}
    for key, value in environ.items():
        name = names.get(key)
        if name is None:
            name = key[5:].lower().replace("_", "-") if key.startswith("HTTP_") else ""
            if len(names) < _HEADER_NAMES_MAX:
                names[key] = name
        if name and isinstance(value, str):
            headers[name] = value
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
        call = _Call(self, environ, start_response)
        try:
            call.result = result = self.app(environ, call.start_response)
        except BaseException:
            call.status = call.status or "500"
            call.publish()
            raise
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return call.pass_file(result)
        return call

    def _publish(self, environ: Environ, status: str | None, bytes_sent: int, started: float, t0: float) -> None:
        duration_ms = (self._timer() - t0) * 1000.0
        # what the record needs, read now: the record may be built later, and uWSGI (by default) clears
        # and reuses the environ; the headers alone are a small dict, the whole environ a large one
        self._publish_record(self._record, environ, wsgi_headers(environ), environ.get("REQUEST_METHOD"),
                             environ.get("SERVER_NAME"), wsgi_url(environ), environ.get("REMOTE_ADDR"), status,
                             bytes_sent, started, duration_ms)

    def _record(self, headers: dict[str, str], method: str | None, server_name: str | None, url: str,
                peer: str | None, status_line: str | None, bytes_sent: int, started: float, duration_ms: float,
                user_id: str | None) -> dict[str, Any]:
        status = int(status_line[:3]) if status_line and status_line[:3].isdigit() else None
        return build_record(
            self.settings, started=started, method=method, host=headers.get("host") or server_name, url=url,
            status=status, bytes_sent=bytes_sent, duration_ms=duration_ms, headers=headers, peer=peer,
            user_id=user_id)


class _Call:
    """One request: the server's ``start_response`` wrapped to note the status, and the app's response
    iterable wrapped to count the bytes sent and to publish once when the server closes it."""

    __slots__ = ("middleware", "environ", "_start_response", "started", "t0", "status", "bytes_sent", "result",
                 "_closed", "_headers", "_file_close")

    def __init__(self, middleware: DataminWSGIMiddleware, environ: Environ, start_response: StartResponse) -> None:
        self.middleware = middleware
        self.environ = environ
        self._start_response = start_response
        self.started, self.t0 = middleware._wall(), middleware._timer()
        self.status: str | None = None
        self.bytes_sent = 0
        self.result: Iterable[bytes] = ()
        self._closed = False
        self._headers: list[tuple[str, str]] = []
        self._file_close: Callable[[], object] | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        self._headers = headers
        write = self._start_response(status, headers, exc_info) if exc_info else self._start_response(status, headers)

        def counting_write(data: bytes) -> object:
            self.bytes_sent += len(data)
            return write(data)

        return counting_write

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            self.bytes_sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = self._file_close or getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.publish()

    def pass_file(self, result: Any) -> Iterable[bytes]:
        """The server's own file wrapper, to send as the server likes; published when the server closes
        it. A wrapper that takes no new attribute is wrapped as any response."""
        try:
            self._file_close = getattr(result, "close", None)
            result.close = self.close
        except (AttributeError, TypeError):
            self._file_close = None
            return self
        length = next((v for k, v in self._headers if k.lower() == "content-length"), "")
        self.bytes_sent = int(length) if length.isdigit() else 0
        passed: Iterable[bytes] = result
        return passed

    def publish(self) -> None:
        self.middleware._publish(self.environ, self.status, self.bytes_sent, self.started, self.t0)
