"""The erased-subjects topic, as the processor sees it: keyed hashes of every subject who asked for
erasure, so that no replay of a raw topic and no backfill brings the person back after the privacy
requests that recorded the erasure have aged out of their own topic.

The topic is compacted and small (one record per erased person), so every processor instance reads
all of it: first to its end before any event is processed, then on in a background thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from datamin.config import Config
from datamin.exceptions import BrokerError
from datamin.kafka import KafkaError, TopicPartition, new_consumer, translate_kafka_errors
from datamin.keys import subject_hash
from datamin.topics import Topics
from processors.ledger import ConsentLedger

log = logging.getLogger(__name__)
CATCH_UP_TIMEOUT_S = 120.0


def erasure_record(erased_at: datetime, request_id: str) -> dict[str, Any]:
    """The privacy_request-shaped record that marks a subject erased in a consent ledger."""
    return {"kind": "erasure", "received": erased_at, "request_id": request_id}


class ErasedSubjects:
    """Which subjects were erased, and when. ``erased_at(key)`` is safe to call from the loop while the
    background reader adds records."""

    def __init__(self, config: Config) -> None:

        self._config = config
        self._erased: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hash = lru_cache(maxsize=65536)(lambda key: subject_hash(config, key))

    def __len__(self) -> int:
        with self._lock:
            return len(self._erased)

    def erased_at(self, subject_key: str | None) -> tuple[datetime, str] | None:
        """(when, request id) of the subject's erasure, or None when it was never erased."""
        if not subject_key or not self._erased:
            return None
        hashed = self._hash(subject_key)
        with self._lock:
            return self._erased.get(hashed)

    def mark(self, ledger: ConsentLedger | None, subject_key: str | None) -> None:
        """Records a known erasure of ``subject_key`` in ``ledger`` (idempotent) before its event is minimised."""
        found = self.erased_at(subject_key)
        if found is not None and ledger is not None:
            ledger.apply_request(subject_key, erasure_record(*found))

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic: a JSON value adds the hash, a tombstone removes it."""
        if not key:
            return
        hashed = key.decode("ascii", "replace")
        with self._lock:
            if value is None:
                self._erased.pop(hashed, None)
                return
            try:
                doc = json.loads(value)
                when = datetime.fromisoformat(doc["erased_at"]).astimezone(UTC)
                rid = str(doc.get("request_id") or "")
            except (ValueError, KeyError, TypeError):
                log.warning("erased-subjects: a record without a readable erased_at was skipped")
                return
            self._erased[hashed] = (when, rid)

    # -- reading the topic -------------------------------------------------------------------------
    def start(self) -> None:
        """Reads the topic to its end (blocking), then follows it in a daemon thread."""
        topic = Topics(self._config).erased_subjects
        with translate_kafka_errors("reading the erased-subjects topic", self._config):
            consumer = new_consumer(self._config, group_id=None, enable_auto_commit=False,
                                    isolation_level="read_committed")
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                consumer.close()
                raise BrokerError(f"the topic {topic} does not exist: run `datamin topics` first")
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            started = time.monotonic()
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() - started > CATCH_UP_TIMEOUT_S:
                    consumer.close()
                    raise BrokerError(f"reading {topic} took over {CATCH_UP_TIMEOUT_S:.0f}s; check the broker")
                self._poll(consumer)
        log.info("erased-subjects: %d erased subject(s) known", len(self))
        self._thread = threading.Thread(target=self._follow, args=(consumer,), name="erased-subjects",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _poll(self, consumer: Any) -> None:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                self.apply(record.key, record.value)

    def _follow(self, consumer: Any) -> None:

        try:
            while not self._stop.is_set():
                try:
                    self._poll(consumer)
                except KafkaError as exc:  # the broker away: keep what is known, try again
                    log.warning("erased-subjects: %s; retrying", type(exc).__name__)
                    self._stop.wait(1.0)
        finally:
            consumer.close()
