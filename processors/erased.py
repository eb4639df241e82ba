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
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from datamin.config import Config
from datamin.keys import load_secret, subject_hash
from datamin.topics import Topics
from processors.ledger import ConsentLedger
from processors.topic_follower import TopicFollower

log = logging.getLogger(__name__)


def erasure_record(erased_at: datetime, request_id: str) -> dict[str, Any]:
    """The privacy_request-shaped record that marks a subject erased in a consent ledger."""
    return {"kind": "erasure", "received": erased_at, "request_id": request_id}


class ErasedSubjects(TopicFollower):
    """Which subjects were erased, and when. ``erased_at(key)`` is safe to call from the loop while the
    background reader adds records."""

    label = "erased-subjects"

    def __init__(self, config: Config) -> None:
        super().__init__(config, Topics(config).erased_subjects)
        self._erased: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()
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

    def start(self) -> None:
        """Reads the topic to its end (blocking), then follows it. Creates the rights secret if it is
        missing (the processor is its first user; the rights commands never create it)."""
        load_secret(Path(self._config.pseudonymise.key_dir))
        super().start()
        log.info("erased-subjects: %d erased subject(s) known", len(self))
