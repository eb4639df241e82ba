"""Token buckets per key: how the collector bounds what one client (or one visitor) may send.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; a request (or event) takes
one. So a key may send ``burst`` at once and ``rate`` a second after that; at most ``burst + rate * t``
in any ``t`` seconds. Buckets of keys unseen for longest are forgotten once ``max_keys`` are held (a
forgotten key starts with a full bucket again), so invented keys cannot grow memory without bound.

Pure: the clock is passed in; no I/O, no threads (callers on several threads hold ``lock``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from producers.request_event import Publisher


class TokenBuckets:
    """``allow(key)`` is True while ``key`` has a token left (and takes it)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_keys >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self.lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """key -> (tokens, time of that count), least recently used first"""

    def allow(self, key: str, cost: float = 1.0) -> bool:
        with self.lock:
            now = self.clock()
            tokens, then = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` has ``cost`` tokens again (0 when it has them now)."""
        with self.lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            return max(0.0, (cost - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)


class ConsentBound:
    """A publisher that lets each visitor record at most ``per_day`` consent choices a day (as a token
    bucket of that many, refilled over a day) and passes every other event through. A refused
    consent record is counted in ``refused`` and reported to the client as not queued."""

    def __init__(self, producer: Publisher, per_day: int, *, max_visitors: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.producer = producer
        self.buckets = TokenBuckets(per_day / 86_400.0, per_day, max_keys=max_visitors, clock=clock)
        self.refused = 0

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        if event_type == "consent_record":
            subject = record.get("subject_key")
            if not isinstance(subject, str) or not self.buckets.allow(subject):
                self.refused += 1
                return False
        return self.producer.publish(event_type, record)
