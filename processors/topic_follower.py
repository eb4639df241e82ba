"""A small topic every processor instance reads whole: to its end before any event is processed, then
on in a background thread (the erased-subjects topic, the privacy-requests topic's hashed requests)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from datamin.config import Config
from datamin.kafka import KafkaError, new_consumer, read_to_end, translate_kafka_errors

log = logging.getLogger(__name__)
CATCH_UP_TIMEOUT_S = 120.0


class TopicFollower:
    """Subclasses name the ``topic`` and ``apply`` each record; ``start`` / ``stop`` do the reading."""

    label = "topic"

    def __init__(self, config: Config, topic: str) -> None:
        self._config = config
        self._topic = topic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Reads the topic to its end (blocking), then follows it in a daemon thread."""
        with translate_kafka_errors(f"reading the {self.label} topic", self._config):
            consumer = new_consumer(self._config, group_id=None, enable_auto_commit=False,
                                    isolation_level="read_committed")
            try:
                read_to_end(consumer, self._topic, lambda _p, key, value: self.apply(key, value),
                            timeout_s=CATCH_UP_TIMEOUT_S)
            except BaseException:
                consumer.close()
                raise
        self._thread = threading.Thread(target=self._follow, args=(consumer,), name=self.label, daemon=True)
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
                    log.warning("%s: %s; retrying", self.label, type(exc).__name__)
                    self._stop.wait(1.0)
        finally:
            consumer.close()
