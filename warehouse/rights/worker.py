"""The rights worker: self-service privacy requests carried out end to end (``datamin rights worker``).

A person posts a privacy_request to the collector; the collector ties it to the subject the request
proves (`datamin.identity`) and publishes it on the raw requests topic ``<prefix>.raw.privacy_request``
(clear subject, kept hours like every raw topic). This long-running worker (consumer group
``<topics.prefix>-rights``) reads that topic and, for each self-service request:

1. records it in the rights trail as received, with its one-month deadline (once per request id);
2. publishes the record of it to the privacy-requests topic, keyed and valued by the subject's keyed
   hash (never the key), where every processor reads it (lift excepted, see 4);
3. carries out erasure (every store, `warehouse.rights.everywhere`), objection and restriction (rows
   hidden from analysts) and withdrawal (consent-only identifiers stripped) for the proven subject,
   and records what was done;
4. leaves access, rectification and lift requests open in the trail, queued for the officer: an
   export is never delivered through the collector, and a lift may undo a restriction the officer
   placed. ``datamin rights status`` lists them with their deadlines.

Requests of another channel than ``self_service`` on that topic are skipped (the officer's own
command carries out and publishes what the officer submits).

Started before the pipeline has written anything (a fresh install: the warehouse folder missing or
empty, the rights secret not yet created by the processor), the worker waits for them, saying so in the
log every minute, instead of exiting: requests wait on their topic meanwhile, and nothing is created.

Exactly once under a kill: each step is idempotent (the trail is keyed by request id; erasing,
restricting or withdrawing twice changes nothing the second time; a request already done is
skipped), and offsets are committed only after every request of a batch is done. A worker killed
midway reads the batch again and finishes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamin.clock import as_utc
from datamin.config import Config
from datamin.exceptions import ConfigError, DecodeError
from datamin.identity import subject_of_raw
from datamin.keys import subject_hash
from datamin.topics import Topics
from schemas import decode, default_registry
from warehouse.layout import layout_of
from warehouse.rights.everywhere import SpoolEraser
from warehouse.rights.preflight import check_stores, check_topics
from warehouse.rights.requests import carry_out, publish_request
from warehouse.rights.trail import read_requests, record_done, record_received

log = logging.getLogger("datamin.rights")

STORES_POLL_SECONDS = 2.0
"""how often a worker started before the pipeline wrote anything looks again"""
STORES_LOG_SECONDS = 60.0

CARRIED_OUT = ("erasure", "objection", "restriction", "withdrawal")
"""kinds the worker carries out itself; every other kind waits for the officer"""
SELF_SERVICE = "self_service"


def group_id(config: Config) -> str:
    """The worker's consumer group: one per topic prefix."""
    return f"{config.topics.prefix}-rights"


@dataclass
class WorkerStats:
    """What the worker did since it started."""

    received: int = 0
    carried_out: int = 0
    queued: int = 0
    skipped: int = 0
    """records that were not self-service requests to act on (officer requests, done ones, bad records)"""
    kinds: dict[str, int] = field(default_factory=dict)


class RightsWorker:
    """Consumes the raw requests topic; see the module docstring. ``run(stop)`` until ``stop`` is set."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 out_dir: Path | None = None, spool_eraser: SpoolEraser | None = None) -> None:
        self.config = config
        self.spool_eraser = spool_eraser
        """erases a subject from this machine's producer spool (handed in by the command line)"""
        self.clock = clock
        self.layout = layout_of(config)
        self.out_dir = out_dir or Path(config.warehouse.root) / "_rights" / "exports"
        self.stats = WorkerStats()
        self._received: set[str] = set()
        self._done: set[str] = set()
        self.registry = default_registry()

    def run(self, stop: threading.Event) -> WorkerStats:
        from datamin.kafka import new_consumer, translate_kafka_errors

        if not self._wait_for_stores(stop):
            return self.stats
        topics = Topics(self.config)
        check_topics(self.config, [topics.requests_in, topics.privacy_requests, topics.erased_subjects,
                                   topics.consent], doing="starting the rights worker")
        for request in read_requests(self.layout, now=self.clock()):
            self._received.add(request.request_id)
            if request.state == "done":
                self._done.add(request.request_id)
        with translate_kafka_errors("reading the raw requests topic", self.config):
            consumer = new_consumer(self.config, topics.requests_in, group_id=group_id(self.config),
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed", max_poll_records=100)
        log.info("rights worker started: %d request(s) on record, group %s", len(self._received),
                 group_id(self.config))
        try:
            while not stop.is_set():
                with translate_kafka_errors("reading the raw requests topic", self.config):
                    batch = consumer.poll(timeout_ms=500)
                if not batch:
                    continue
                for records in batch.values():
                    for record in records:
                        self.handle(record.key, record.value)
                with translate_kafka_errors("committing the rights worker's offsets", self.config):
                    consumer.commit()  # only after every request of the batch is done
        finally:
            consumer.close(autocommit=False)
        log.info("rights worker stopped: %s", self.stats)
        return self.stats

    def _wait_for_stores(self, stop: threading.Event) -> bool:
        """Waits until the warehouse and the rights secret exist (`preflight.check_stores`); False when
        ``stop`` was set first."""
        next_log = waiting = 0.0
        while True:
            try:
                check_stores(self.config)
                if waiting:
                    log.info("rights worker: the pipeline's stores are there now; starting")
                return True
            except ConfigError as exc:
                if waiting >= next_log:
                    log.warning("rights worker waiting for the pipeline's stores (on a fresh install the processor "
                                "and the sink create them when they first run): %s", exc)
                    next_log = waiting + STORES_LOG_SECONDS
            if stop.wait(STORES_POLL_SECONDS):
                return False
            waiting += STORES_POLL_SECONDS

    def handle(self, key: bytes | None, value: bytes | None) -> str:
        """Acts on one record of the topic; returns what happened (for logs and tests): "carried out",
        "queued", "done already" or "skipped: <why>". Raises DataminError when a step failed (the batch
        is then not committed and is read again after a restart)."""
        if value is None:
            return self._skip("a record without a value")
        try:
            schema, raw = decode(value, self.registry)
        except DecodeError:
            return self._skip("not a privacy request datamin can read")
        if schema.name != "privacy_request":
            return self._skip("not a privacy request")
        channel = raw.get("channel") or SELF_SERVICE
        if channel != SELF_SERVICE:
            self.stats.skipped += 1
            return f"skipped: channel {channel} (carried out by whoever submitted it)"
        subject = subject_of_raw(raw.get("subject_key")) or subject_of_raw(key.decode("utf-8", "replace")
                                                                           if key else None)
        request_id = str(raw.get("request_id") or "")
        kind = str(raw.get("kind") or "")
        if subject is None or not request_id:
            return self._skip("no proven subject or no request id")
        if request_id in self._done:
            self.stats.skipped += 1
            return "done already"
        received = raw.get("received")
        when = as_utc(received) if isinstance(received, datetime) else self.clock()
        hashed = subject_hash(self.config, subject)
        if request_id not in self._received:
            record_received(self.layout, request_id=request_id, subject_hash=hashed,
                            kind=kind, channel=SELF_SERVICE, received=when)
            self._received.add(request_id)
            self.stats.received += 1
        if kind != "lift":  # a lift is the officer's to publish, once they carry it out
            publish_request(self.config, request_id=request_id, hashed=hashed, kind=kind, received=when,
                            channel=SELF_SERVICE)
        if kind not in CARRIED_OUT:
            self.stats.queued += 1
            log.info("privacy request %s (%s) queued for the officer", request_id, kind)
            return "queued"
        line, receipt = self._carry_out(kind, subject, request_id)
        record_done(self.layout, request_id=request_id, at=self.clock(), outcome=line, receipt=receipt)
        self._done.add(request_id)
        self.stats.carried_out += 1
        self.stats.kinds[kind] = self.stats.kinds.get(kind, 0) + 1
        log.info("privacy request %s (%s) carried out: %s", request_id, kind, line)
        return "carried out"

    def _carry_out(self, kind: str, subject: str, request_id: str) -> tuple[str, dict[str, Any]]:
        return carry_out(self.config, kind, subject, request_id, out_dir=self.out_dir, now=self.clock(),
                         spool_eraser=self.spool_eraser)

    def _skip(self, why: str) -> str:
        self.stats.skipped += 1
        log.warning("privacy-requests: a record was skipped (%s)", why)
        return f"skipped: {why}"


def run_rights_worker(config: Config, stop: threading.Event | None = None, *,
                      spool_eraser: SpoolEraser | None = None) -> WorkerStats:
    """``datamin rights worker``: runs until SIGTERM / SIGINT (or ``stop``); waits for the stores on a fresh
    install. Raises BrokerError at start-up when the topics are missing."""
    from datamin.signals import stop_on_signals

    with stop_on_signals(stop, doing="finishing the request in hand, then stopping") as event:
        return RightsWorker(config, spool_eraser=spool_eraser).run(event)

