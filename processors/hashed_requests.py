"""Privacy requests that name their subject only by its keyed hash, as the privacy-requests topic does.

The topic is keyed by the subject's keyed hash (``h1_…``, `datamin.keys.subject_hash`), so a request
lands in another partition than the subject's raw events and names no clear key a ledger could be
looked up by. Every processor instance therefore reads the whole topic (it is small: one record per
request) and keeps the requests per hash; before an event is minimised, `mark` hashes its subject
(cached) and applies that subject's requests to the ledger of the event's partition. Applying a
request twice changes nothing (the ledger identifies requests by id).

Requests that still name a clear subject (written before the topic was hashed) are applied by the
main loop as before.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

from datamin.config import Config
from datamin.exceptions import EventError
from datamin.identity import is_hashed
from datamin.keys import subject_hash
from datamin.topics import Topics
from processors.ledger import ConsentLedger
from processors.topic_follower import TopicFollower
from schemas import decode, default_registry

log = logging.getLogger(__name__)
LEDGER_KINDS = frozenset({"restriction", "objection", "lift", "withdrawal", "erasure"})


class HashedRequests(TopicFollower):
    """The hashed requests on the privacy-requests topic, per subject hash."""

    label = "privacy-requests"

    def __init__(self, config: Config) -> None:
        super().__init__(config, Topics(config).privacy_requests)
        self._requests: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._registry = default_registry()
        self._hash = lru_cache(maxsize=65536)(lambda key: subject_hash(config, key))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._requests.values())

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            schema, raw = decode(value, self._registry)
        except EventError:
            return  # the main loop dead-letters it
        hashed = raw.get("subject_key")
        if schema.name != "privacy_request" or not is_hashed(hashed) or raw.get("kind") not in LEDGER_KINDS:
            return
        with self._lock:
            self._requests.setdefault(str(hashed), {})[str(raw.get("request_id") or "")] = raw

    def requests_of(self, subject_key: str | None) -> list[dict[str, Any]]:
        """The hashed requests of ``subject_key`` (canonical), oldest first."""
        if not subject_key or not self._requests or is_hashed(subject_key):
            return []
        hashed = self._hash(subject_key)
        with self._lock:
            found = list(self._requests.get(hashed, {}).values())
        return sorted(found, key=lambda r: r["received"])

    def mark(self, ledger: ConsentLedger | None, subject_key: str | None) -> None:
        """Applies the subject's hashed requests to ``ledger`` before one of their events is minimised."""
        if ledger is None:
            return
        for record in self.requests_of(subject_key):
            ledger.apply_request(subject_key, record)

    def start(self) -> None:
        super().start()
        log.info("privacy-requests: %d hashed request(s) known", len(self))
