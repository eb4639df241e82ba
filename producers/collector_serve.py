"""``datamin collector``: the collector served by uvicorn, configured from ``[collector]`` in datamin.toml.

It needs the identity secret (``[identity] secret_file``, shared with the web server) to verify visitor
cookies and user tokens; without it, it does not start.

Each worker process builds its own EventProducer (``create_app`` runs in the worker, after any fork),
wraps it so each visitor may record at most ``consent_records_per_day`` consent choices, and closes it
(flushing what is queued) on shutdown. Rate limits are per worker: with N workers a client may reach
N times ``rate_per_second`` at worst (a load balancer with sticky clients keeps it at one).

Deadlines against slow clients: a request's headers must arrive within ``header_timeout_seconds`` of
the connection opening (or of the previous response on a kept-alive connection), else the connection
is closed (``DeadlineH11Protocol``); the body within ``body_timeout_seconds`` (``CollectorServer``).
TLS: terminate it in a reverse proxy (nginx, a load balancer) and list the proxy in
``collector.trusted_proxies``; the collector itself speaks plain HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from datamin.config import Config, load_config
from datamin.identity import Identity, identity_from_config
from producers.collector import Collector, CollectorSettings
from producers.collector_asgi import CollectorServer
from producers.collector_http import CollectorEndpoint
from producers.ratelimit import ConsentBound, TokenBuckets
from producers.request_event import MiddlewareSettings, Publisher

log = logging.getLogger(__name__)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers (slowloris): a client that has not
    sent a whole request head within ``header_timeout`` seconds is disconnected."""

    header_timeout = 10.0
    """set from collector.header_timeout_seconds by ``create_app`` (which runs in each worker)"""
    closed_slow = 0
    """connections closed because their headers did not arrive in time (this process)"""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request head has arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # a kept-alive connection: the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            DeadlineH11Protocol.closed_slow += 1
            self.transport.close()


def build_app(config: Config, producer: Publisher, *, identity: Identity | None = None, app: Any = None,
              on_shutdown: Any = None) -> CollectorServer:
    """The collector ASGI app for ``config``, publishing through ``producer``; ``identity`` verifies
    visitor cookies and user tokens (without it no subject is proven: consent is refused)."""
    c = config.collector
    settings = CollectorSettings.from_config(
        config, allowed_origins=c.allowed_origins, consent_cookie=c.consent_cookie, identity=identity,
        max_body_bytes=c.max_body_bytes)
    collector = Collector(ConsentBound(producer, c.consent_records_per_day), settings)
    endpoint = CollectorEndpoint(collector, prefix=c.prefix, limiter=TokenBuckets(c.rate_per_second, c.burst),
                                 trusted_proxies=MiddlewareSettings(trusted_proxies=c.trusted_proxies).networks)
    return CollectorServer(endpoint, app=app, body_timeout=c.body_timeout_seconds, on_shutdown=on_shutdown)


def create_app() -> CollectorServer:
    """uvicorn's factory, run in each worker: the config from DATAMIN_CONFIG / datamin.toml and the environment."""
    from producers.producer import EventProducer

    config = load_config()
    identity = identity_from_config(config.identity)
    DeadlineH11Protocol.header_timeout = config.collector.header_timeout_seconds
    producer = EventProducer(config)
    return build_app(config, producer, identity=identity, on_shutdown=producer.close)


def serve(config_path: str | None, *, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Runs uvicorn until SIGINT/SIGTERM (graceful: in-flight requests finish, producers flush)."""
    import uvicorn

    if config_path:
        os.environ["DATAMIN_CONFIG"] = os.path.abspath(config_path)  # workers read it again
    identity_from_config(load_config().identity)  # a bad config or secret stops here, before any worker
    uvicorn.run("producers.collector_serve:create_app", factory=True, host=host, port=port, workers=workers,
                http="producers.collector_serve:DeadlineH11Protocol", lifespan="on", proxy_headers=False,
                server_header=False, timeout_graceful_shutdown=15, log_level=log_level)
