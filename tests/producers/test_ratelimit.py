"""Token buckets (pure, with a fake clock) and the per-visitor consent bound."""

from __future__ import annotations

from typing import Any

from producers.ratelimit import ConsentBound, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=5, clock=clock)
    assert [buckets.allow("a") for _ in range(7)] == [True] * 5 + [False] * 2
    assert buckets.retry_after("a") == 0.5
    assert buckets.allow("b")  # another key has its own bucket
    clock.now += 1.0
    assert [buckets.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 3600
    assert sum(buckets.allow("a") for _ in range(10)) == 5  # never more than the burst


def test_memory_is_bounded_by_forgetting_the_least_recent_keys() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=100, clock=Clock())
    for i in range(10_000):
        buckets.allow(f"invented-{i}")
    assert len(buckets) == 100


class Sink:
    def __init__(self) -> None:
        self.events: list[str] = []

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        self.events.append(event_type)
        return True


def test_consent_records_per_visitor_per_day() -> None:
    clock = Clock()
    sink = Sink()
    bound = ConsentBound(sink, per_day=3, clock=clock)
    results = [bound.publish("consent_record", {"subject_key": "v1"}) for _ in range(5)]
    assert results == [True, True, True, False, False] and bound.refused == 2
    assert bound.publish("consent_record", {"subject_key": "v2"})
    assert bound.publish("consent_record", {"subject_key": None}) is False  # no visitor: nothing to bound by
    assert all(bound.publish("usage_event", {"subject_key": "v1"}) for _ in range(10))  # others pass
    clock.now += 86_400
    assert bound.publish("consent_record", {"subject_key": "v1"})
    assert sink.events.count("consent_record") == 5
