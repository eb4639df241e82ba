"""Restoring the consent ledgers of newly assigned partitions without stopping the stream.

When partitions are assigned, the processor pauses every input partition of those numbers (their
events must never be minimised without their consent state) and hands them to `LedgerRestore`, which
rebuilds their ledgers in a background thread: it reads their consent and privacy-request partitions
from the beginning to the end they had when it started (its own read_committed consumer), applying
each record, and expiring what can no longer decide an event every ``EXPIRE_EVERY`` records. The
processor keeps polling meanwhile (so it stays in its group: kafka-python runs rebalance listeners
on the thread that heartbeats, so a restore inside the listener would stop its heartbeats), takes the
finished ledgers with `take` after each poll, installs them and resumes their partitions. Records
after that end are read by the processor itself, from its group's committed offsets: applying a
record twice is harmless.

A revoked partition's restore is cancelled (its result discarded); an error in the thread (the
broker away for longer than ``RESTORE_TIMEOUT_S``) is raised by the next `take`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from datamin.config import Config
from datamin.exceptions import BrokerError, DecodeError
from datamin.identity import is_hashed, subject_of_raw
from datamin.kafka import TopicPartition, new_consumer, translate_kafka_errors
from datamin.topics import Topics
from processors.ledger import ConsentLedger
from processors.pipeline import subject_of
from schemas import decode, default_registry

log = logging.getLogger("datamin.processor")

RESTORE_TIMEOUT_S = 300.0
"""a restore that has not reached its end after this long fails (the broker, or a huge topic)"""
EXPIRE_EVERY = 100_000
"""records applied between two expiries while restoring, so a restore's memory stays bounded too"""


class _Job:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions
        self.cancelled: set[int] = set()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


class LedgerRestore:
    """Restores ledgers in background threads; `take` hands over the finished ones."""

    def __init__(self, config: Config, make_ledger: Callable[[], ConsentLedger],
                 clock: Callable[[], datetime]) -> None:
        self.config = config
        self.topics = Topics(config)
        self.make_ledger = make_ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: list[_Job] = []
        self._done: dict[int, ConsentLedger] = {}
        self._error: BaseException | None = None

    def pending(self) -> set[int]:
        """Partitions being restored."""
        with self._lock:
            return {p for job in self._jobs for p in job.partitions - job.cancelled}

    def start(self, partitions: Iterable[int]) -> None:
        """Starts restoring ``partitions`` (their input partitions must be paused until `take` hands
        their ledgers over)."""
        job = _Job(set(partitions))
        if not job.partitions:
            return
        job.thread = threading.Thread(target=self._run, args=(job,), name="ledger-restore", daemon=True)
        with self._lock:
            self._jobs.append(job)
        job.thread.start()

    def cancel(self, partitions: Iterable[int]) -> None:
        """Forgets the restores (running or finished, not yet taken) of ``partitions``."""
        gone = set(partitions)
        with self._lock:
            for p in gone:
                ledger = self._done.pop(p, None)
                if ledger is not None:
                    ledger.close()
            for job in self._jobs:
                job.cancelled |= job.partitions & gone
                if job.cancelled == job.partitions:
                    job.stop.set()

    def take(self) -> dict[int, ConsentLedger]:
        """The ledgers restored since the last call (partition -> ledger). Raises what failed a restore."""
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            done, self._done = self._done, {}
            self._jobs = [job for job in self._jobs if job.thread is not None and job.thread.is_alive()]
        return done

    def stop(self) -> None:
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.stop.set()
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout=10)

    def _run(self, job: _Job) -> None:
        try:
            ledgers = self._restore(job)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread by take()
            with self._lock:
                self._error = exc
            return
        with self._lock:
            for p, ledger in ledgers.items():
                if p in job.cancelled or job.stop.is_set():
                    ledger.close()
                else:
                    self._done[p] = ledger
            job.partitions = set()

    def _restore(self, job: _Job) -> dict[int, ConsentLedger]:
        partitions = sorted(job.partitions)
        ledgers = {p: self.make_ledger() for p in partitions}
        control = sorted({self.topics.consent, self.topics.privacy_requests})
        tps = [TopicPartition(topic, p) for topic in control for p in partitions]
        started = time.monotonic()
        applied = 0
        next_expiry = EXPIRE_EVERY
        with translate_kafka_errors("restoring the consent ledger", self.config):
            reader = new_consumer(self.config, group_id=None, isolation_level="read_committed",
                                  enable_auto_commit=False)
            try:
                reader.assign(tps)
                reader.seek_to_beginning(*tps)
                end = reader.end_offsets(tps)
                pending = {tp for tp in tps if reader.position(tp) < end[tp]}
                while pending and not job.stop.is_set():
                    if time.monotonic() - started > RESTORE_TIMEOUT_S:
                        raise BrokerError(f"restoring the consent ledger took over {RESTORE_TIMEOUT_S:.0f}s; "
                                          "check the broker, or the size of the consent topic")
                    for tp, records in reader.poll(timeout_ms=500).items():
                        if tp.partition in job.cancelled:
                            continue
                        ledger = ledgers[tp.partition]
                        for record in records:
                            if record.offset < end[tp]:
                                applied += _apply_control(ledger, tp.topic, self.topics, record)
                                if applied >= next_expiry:
                                    next_expiry = applied + EXPIRE_EVERY
                                    for each in ledgers.values():
                                        each.expire(self.clock())
                    pending = {tp for tp in pending if tp.partition not in job.cancelled
                               and reader.position(tp) < end[tp]}
            finally:
                reader.close(autocommit=False)
        now = self.clock()
        for ledger in ledgers.values():
            ledger.expire(now)
        log.info("consent ledger restored for partitions %s: %d records, %d subjects (%d spilled), %.1fs",
                 partitions, applied, sum(len(x) for x in ledgers.values()),
                 sum(x.store.spilled for x in ledgers.values()), time.monotonic() - started)
        return ledgers


def _apply_control(ledger: ConsentLedger, topic: str, topics: Topics, record: Any) -> int:
    """Applies one consent or privacy-request record while restoring; undecodable ones are skipped here
    (the main loop dead-letters them)."""
    if record.value is None:
        subject = subject_of_raw(record.key.decode("utf-8", "replace")) if record.key else None
        if topic == topics.consent and subject:
            ledger.forget_consents(subject)
        return 0
    try:
        schema, raw = decode(record.value, default_registry())
    except DecodeError:
        return 0
    key = record.key.decode("utf-8", "replace") if record.key else None
    subject = subject_of(raw, key)
    try:
        if schema.name == "consent_record":
            ledger.apply_consent(subject, raw)
        elif schema.name == "privacy_request":
            if is_hashed(subject):
                return 0  # applied per event by HashedRequests
            ledger.apply_request(subject, raw)
        else:
            return 0
    except (TypeError, ValueError):
        return 0
    return 1
