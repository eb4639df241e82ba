"""The ledger stays bounded: expiry forgets what can no longer decide an event, past its memory bound
it spills to SQLite and answers exactly as an unbounded ledger, and a subject costs a documented size."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.ledger import MEMORY_BYTES_PER_SUBJECT, ConsentLedger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KINDS = ("consent", "restriction", "objection", "lift", "withdrawal", "erasure")


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def key(n: int) -> str:
    return f"v:{n:040d}"  # the length of a real visitor key


def apply(ledger: ConsentLedger, subject: str, kind: str, when: datetime, mask: int = 0, rid: str = "x") -> None:
    if kind == "consent":
        ledger.apply_consent(subject, {"event_id": rid, "time": when, "necessary": bool(mask & 1),
                                       "statistics": bool(mask & 2), "marketing": bool(mask & 4),
                                       "feedback": bool(mask & 8)})
    else:
        ledger.apply_request(subject, {"request_id": rid, "kind": kind, "received": when})


def test_expire_forgets_only_what_cannot_decide_an_event_any_more() -> None:
    ledger = ConsentLedger(validity_days=30)
    apply(ledger, "old-consent", "consent", day(0), 3)
    apply(ledger, "old-withdrawal", "withdrawal", day(1))
    apply(ledger, "lifted-long-ago", "restriction", day(0))
    apply(ledger, "lifted-long-ago", "lift", day(2))
    apply(ledger, "still-restricted", "objection", day(0))
    apply(ledger, "erased", "erasure", day(0))
    apply(ledger, "recent", "consent", day(40), 3)
    apply(ledger, "lifted-recently", "restriction", day(0))
    apply(ledger, "lifted-recently", "lift", day(45))
    assert ledger.expire(day(50)) == 3
    assert set(ledger.subjects()) == {"still-restricted", "erased", "recent", "lifted-recently"}
    # what an expired subject's next event gets is what it got before: no consent
    assert ledger.state("old-consent", day(50)).granted == frozenset()
    assert ledger.expire(day(50)) == 0


def test_expire_reaches_spilled_subjects() -> None:
    ledger = ConsentLedger(validity_days=30, memory_subjects=50)
    for n in range(400):
        apply(ledger, key(n), "consent", day(0 if n % 2 else 40), 3)
    apply(ledger, key(1), "objection", day(1))  # in force: kept although its consent is stale
    assert ledger.store.spilled > 0
    assert ledger.expire(day(50)) == 199
    assert len(ledger) == 201
    assert ledger.state(key(1), day(50)).restricted is True
    assert ledger.state(key(2), day(50)).granted == {"necessary", "statistics"}
    ledger.close()


def test_spill_keeps_memory_bounded_and_answers_unchanged() -> None:
    bounded, unbounded = ConsentLedger(memory_subjects=100), ConsentLedger()
    for n in range(2000):
        for ledger in (bounded, unbounded):
            apply(ledger, key(n), "consent", day(n % 7), n % 16, f"c{n}")
            if n % 5 == 0:
                apply(ledger, key(n // 2), "restriction" if n % 10 else "lift", day(3), rid=f"r{n}")
            if n % 97 == 0:
                apply(ledger, key(n // 3), "erasure", day(4), rid=f"e{n}")
    assert bounded.store.in_memory <= 100
    assert bounded.store.spilled > 1500
    assert len(bounded) == len(unbounded) == 2000
    for n in range(0, 2000, 7):
        for at in (day(2.5), day(6.5), day(8)):
            assert bounded.state(key(n), at, gpc=n % 3 == 0) == unbounded.state(key(n), at, gpc=n % 3 == 0), n
    assert bounded.store.in_memory <= 100
    assert sorted(bounded.subjects()) == sorted(unbounded.subjects())
    bounded.forget_consents(key(8))
    unbounded.forget_consents(key(8))
    assert bounded.state(key(8), day(8)) == unbounded.state(key(8), day(8))
    bounded.close()


_record = st.tuples(st.integers(0, 5), st.sampled_from(KINDS), st.integers(0, 20), st.integers(0, 15))


@settings(max_examples=150, deadline=None)
@given(st.lists(_record, max_size=40), st.randoms(use_true_random=False))
def test_order_and_repetition_do_not_matter_and_spilling_changes_nothing(
        records: list[tuple[int, str, int, int]], rnd: Any) -> None:
    ledgers = [ConsentLedger(validity_days=10), ConsentLedger(validity_days=10, memory_subjects=1)]
    shuffled = records + records[: len(records) // 2]
    rnd.shuffle(shuffled)
    for subject, kind, when, mask in records:
        apply(ledgers[0], f"s{subject}", kind, day(when), mask)
    for subject, kind, when, mask in shuffled:
        apply(ledgers[1], f"s{subject}", kind, day(when), mask)
    for subject in range(6):
        for at in range(-1, 32, 3):
            a = ledgers[0].state(f"s{subject}", day(at + 0.5), gpc=at % 2 == 0)
            b = ledgers[1].state(f"s{subject}", day(at + 0.5), gpc=at % 2 == 0)
            assert a == b
    ledgers[1].close()


def _fill(ledger: ConsentLedger, start: int, count: int) -> ConsentLedger:
    for n in range(start, start + count):
        apply(ledger, key(n), "consent", day(n % 30), 3)
    return ledger


def test_a_subject_costs_the_documented_bytes_and_past_the_bound_nearly_nothing() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        unbounded = _fill(ConsentLedger(), 0, 20_000)
        gc.collect()
        assert (tracemalloc.get_traced_memory()[0] - before) / 20_000 <= MEMORY_BYTES_PER_SUBJECT
        del unbounded
        spilling = _fill(ConsentLedger(memory_subjects=5000), 0, 10_000)
        gc.collect()
        at_10k = tracemalloc.get_traced_memory()[0]
        _fill(spilling, 10_000, 40_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - at_10k
    finally:
        tracemalloc.stop()
    # 40k more subjects past the bound: what stays in Python memory does not grow with them (SQLite's
    # own page cache is bounded by CACHE_KIB and not traced here)
    assert grown / 40_000 < 5, grown
    assert spilling.store.in_memory <= 5000 and len(spilling) == 50_000
    spilling.close()
