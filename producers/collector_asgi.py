"""The collector as an ASGI app for uvicorn (``datamin collector``) or beside any ASGI app.

    app = CollectorServer(endpoint)                 # the collector alone
    app = CollectorServer(endpoint, app=fastapi)    # /collect… to the collector, the rest to your app

Unlike a Starlette ``Mount``, which redirects ``/collect`` to ``/collect/`` (a redirect breaks every
CORS preflight), both paths answer directly. The body must arrive within ``body_timeout`` seconds of
the request's headers (a client trickling its body a byte at a time is answered 408 and let go);
the header deadline is the server's (``collector_serve``). On lifespan shutdown ``on_shutdown``
runs (closing the producer, which flushes it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from producers.collector_http import CollectorEndpoint, Reply, json_reply

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class CollectorServer:
    def __init__(self, endpoint: CollectorEndpoint, *, app: ASGIApp | None = None, body_timeout: float = 10.0,
                 on_shutdown: Callable[[], None] | None = None) -> None:
        self.endpoint = endpoint
        self.app = app
        self.body_timeout = body_timeout
        self.on_shutdown = on_shutdown
        self.timed_out = 0
        """requests answered 408 because their body did not arrive in time"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan" and self.app is None:
            await self._lifespan(receive, send)
            return
        if kind != "http" or (self.app is not None and self.endpoint.route(scope.get("path", "")) is None):
            if self.app is None:
                return
            if kind == "lifespan" and self.on_shutdown is not None:
                await self.app(scope, receive, self._shutdown_hook(send))
                return
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        client = scope.get("client")
        reply, cors = self.endpoint.before_body(scope.get("method", ""), scope.get("path", ""), headers,
                                                client[0] if client else None)
        if reply is None:
            try:
                body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
            except TimeoutError:
                self.timed_out += 1
                reply = json_reply(408, {"error": f"the body did not arrive within {self.body_timeout:g} s"},
                              [*cors, ("connection", "close")])
            except _BodyTooLarge:
                reply = self.endpoint.too_large(cors)
            except _Disconnected:
                return
            else:
                reply = self.endpoint.after_body(body, headers, cors)
        await _send(send, reply)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = self.endpoint.max_body_bytes
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _shutdown_hook(self, send: Send) -> Send:
        async def hooked(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                self._shutdown()
            await send(message)
        return hooked

    def _shutdown(self) -> None:
        if self.on_shutdown is not None:
            try:
                self.on_shutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.warning("datamin collector: shutdown hook failed", exc_info=True)


async def _send(send: Send, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]})
    await send({"type": "http.response.body", "body": reply.body})
