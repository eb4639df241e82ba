"""The collector as a WSGI app, for Flask, Django or any WSGI server (gunicorn, uWSGI, waitress).

    app.wsgi_app = CollectorWSGI(endpoint, app=app.wsgi_app)     # Flask: /collect… to the collector
    application = CollectorWSGI(endpoint, app=get_wsgi_application())   # Django, in wsgi.py

It shares every rule with the ASGI server through ``CollectorEndpoint``; no event loop, no thread,
so it is safe under pre-forking servers. Reading deadlines for headers and body are the WSGI
server's (gunicorn's ``--timeout``, nginx's ``client_header_timeout`` / ``client_body_timeout``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from producers.collector_http import CollectorEndpoint

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_STATUS = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
           429: "Too Many Requests", 503: "Service Unavailable"}


def wsgi_headers(environ: Environ) -> dict[str, str]:
    """The request headers of an environ, lower-case with dashes (as the collector reads them)."""
    headers = {key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


class CollectorWSGI:
    def __init__(self, endpoint: CollectorEndpoint, *, app: WSGIApp | None = None) -> None:
        self.endpoint = endpoint
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self.app is not None and self.endpoint.route(path) is None:
            return self.app(environ, start_response)
        headers = wsgi_headers(environ)
        reply, cors = self.endpoint.before_body(environ.get("REQUEST_METHOD", ""), path, headers,
                                                environ.get("REMOTE_ADDR"))
        if reply is None:
            body = self._read_body(environ)
            reply = self.endpoint.too_large(cors) if body is None else self.endpoint.after_body(body, headers, cors)
        start_response(f"{reply.status} {_STATUS.get(reply.status, 'Status')}", reply.headers)
        return [reply.body]

    def _read_body(self, environ: Environ) -> bytes | None:
        """The body, or None when it is larger than allowed (read no further than one byte past)."""
        stream = environ.get("wsgi.input")
        if stream is None:
            return b""
        limit = self.endpoint.max_body_bytes
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared.isdigit():
            want = int(declared)
            if want > limit:
                return None
            data: bytes = stream.read(want)
            return data
        # no length (chunked): servers that support it give a stream that ends; read up to limit + 1
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return None if size > limit else b"".join(chunks)
