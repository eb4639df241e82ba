"""The consent ledger, as tables: consent in force at the event's time, requests, signals, idempotence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.consent_state import NO_CONSENT, ConsentState
from processors.ledger import ConsentLedger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = "user-42"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def consent(when: datetime, eid: str = "c1", **cats: bool | None) -> dict[str, Any]:
    record: dict[str, Any] = {"event_id": eid, "time": when, "necessary": True,
                              "statistics": None, "marketing": None, "feedback": None}
    record.update(cats)
    return record


def request(kind: str, when: datetime, rid: str = "r1") -> dict[str, Any]:
    return {"request_id": rid, "subject_key": S, "kind": kind, "received": when, "channel": "self_service"}


def granted(ledger: ConsentLedger, at: datetime, **kw: Any) -> frozenset[str]:
    return ledger.state(S, at, **kw).granted


@pytest.mark.parametrize(("consent_at", "event_at", "expected"), [
    (0, 1, {"necessary", "statistics"}),        # consent before the event
    (1, 0, set()),                              # consent after the event: not in force yet
    (0, 0, {"necessary", "statistics"}),        # same instant counts
    (0, 364.9, {"necessary", "statistics"}),    # still valid
    (0, 365, set()),                            # expired after validity_days
    (0, 400, set()),
])
def test_consent_in_force_at_event_time(consent_at: float, event_at: float, expected: set[str]) -> None:
    ledger = ConsentLedger(validity_days=365)
    ledger.apply_consent(S, consent(day(consent_at), statistics=True, marketing=False))
    assert granted(ledger, day(event_at)) == expected


def test_validity_is_configurable() -> None:
    ledger = ConsentLedger(validity_days=30)
    ledger.apply_consent(S, consent(day(0), statistics=True))
    assert "statistics" in granted(ledger, day(29))
    assert granted(ledger, day(30)) == frozenset()


def test_later_choice_replaces_earlier_and_arrival_order_does_not_matter() -> None:
    records = [consent(day(0), "a", statistics=True, marketing=True), consent(day(10), "b", statistics=False)]
    for order in itertools.permutations(records):
        ledger = ConsentLedger()
        for r in order:
            ledger.apply_consent(S, r)
        assert granted(ledger, day(11)) == {"necessary"}
        # only the current choice is kept: an event older than it fails closed, never a stale grant
        assert granted(ledger, day(5)) == frozenset()


def test_null_category_is_not_granted() -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=None, marketing=None, necessary=None))
    # nothing granted; a choice without marketing counts as objecting to it (minimise.marketing_basis)
    assert ledger.state(S, day(1)) == ConsentState(objected=frozenset({"marketing"}))


def test_unknown_and_missing_subject_have_no_consent() -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=True))
    assert ledger.state("someone-else", day(1)) is NO_CONSENT
    assert ledger.state(None, day(1)) is NO_CONSENT
    ledger.apply_consent(None, consent(day(0), statistics=True))  # ignored, no crash
    assert len(ledger) == 1


def test_withdrawal_withdraws_every_category_from_its_time() -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=True, marketing=True, feedback=True))
    assert granted(ledger, day(4)) == {"necessary", "statistics", "marketing", "feedback"}
    ledger.apply_request(S, request("withdrawal", day(5)))
    assert granted(ledger, day(4)) == frozenset()  # before the current choice: fail-closed
    assert granted(ledger, day(5)) == frozenset()
    assert granted(ledger, day(6)) == frozenset()
    ledger.apply_consent(S, consent(day(7), "c2", statistics=True))  # a new choice after it counts
    assert granted(ledger, day(8)) == {"necessary", "statistics"}


def test_withdrawal_wins_a_tie_with_a_consent() -> None:
    ledger = ConsentLedger()
    ledger.apply_request(S, request("withdrawal", day(1)))
    ledger.apply_consent(S, consent(day(1), statistics=True))
    assert granted(ledger, day(2)) == frozenset()


@pytest.mark.parametrize("kind", ["restriction", "objection"])
def test_restriction_and_lift(kind: str) -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=True))
    ledger.apply_request(S, request(kind, day(2), "r1"))
    assert ledger.state(S, day(1)).restricted is False
    ledger.apply_request(S, request("lift", day(4), "r2"))
    assert ledger.state(S, day(1)).restricted is True  # before the newest request, once restricted: fail-closed
    assert ledger.state(S, day(2)).restricted is True
    assert ledger.state(S, day(3)) == ConsentState(granted=frozenset({"necessary", "statistics"}), restricted=True,
                                                   objected=frozenset({"marketing"}))  # the choice left it out
    assert ledger.state(S, day(4)).restricted is False
    assert ledger.state(S, day(9)).restricted is False


def test_restriction_without_consent_is_still_restricted() -> None:
    ledger = ConsentLedger()
    ledger.apply_request(S, request("restriction", day(0)))
    assert ledger.state(S, day(1)) == ConsentState(restricted=True)


def test_access_and_rectification_change_nothing() -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=True))
    before = ledger.state(S, day(3))
    ledger.apply_request(S, request("access", day(1), "r1"))
    ledger.apply_request(S, request("rectification", day(2), "r2"))
    assert ledger.state(S, day(3)) == before


def test_erasure_erases_past_and_future_and_tombstones_consent() -> None:
    ledger = ConsentLedger()
    ledger.apply_consent(S, consent(day(0), statistics=True))
    ledger.apply_request(S, request("erasure", day(5)))
    for at in (day(1), day(5), day(6), day(300)):
        assert ledger.state(S, at) == ConsentState(erased=True)


@pytest.mark.parametrize("erasure_first", [True, False])
def test_erasure_is_order_independent_and_a_later_consent_starts_afresh(erasure_first: bool) -> None:
    ledger = ConsentLedger()
    records = [("c", consent(day(0), "old", statistics=True)), ("r", request("erasure", day(5))),
               ("c", consent(day(8), "new", marketing=True))]
    if erasure_first:
        records = [records[1], records[0], records[2]]
    for kind, r in records:
        (ledger.apply_consent if kind == "c" else ledger.apply_request)(S, r)
    assert ledger.state(S, day(3)).erased is True      # before the erasure: erased
    assert ledger.state(S, day(7)).erased is True      # after it, before the new consent
    after = ledger.state(S, day(9))
    assert after.erased is False
    assert after.granted == {"necessary", "marketing"}  # the old statistics consent is gone


def test_a_withdrawal_after_erasure_does_not_end_it() -> None:
    ledger = ConsentLedger()
    ledger.apply_request(S, request("erasure", day(1), "r1"))
    ledger.apply_request(S, request("withdrawal", day(2), "r2"))
    assert ledger.state(S, day(3)).erased is True


@pytest.mark.parametrize(("honour_gpc", "honour_dnt", "gpc", "dnt", "marketing"), [
    (True, False, True, None, False),
    (True, False, False, True, True),    # DNT not honoured by this config
    (True, True, None, True, False),
    (False, False, True, True, True),    # neither honoured
    (True, True, None, None, True),      # no signal sent
])
def test_gpc_and_dnt_object_to_marketing_per_config(honour_gpc: bool, honour_dnt: bool, gpc: bool | None,
                                                     dnt: bool | None, marketing: bool) -> None:
    ledger = ConsentLedger(honour_gpc=honour_gpc, honour_dnt=honour_dnt)
    ledger.apply_consent(S, consent(day(0), statistics=True, marketing=True))
    state = ledger.state(S, day(1), gpc=gpc, dnt=dnt)
    assert ("marketing" in state.granted) is marketing
    assert "statistics" in state.granted


def test_applying_twice_is_harmless() -> None:
    once, twice = ConsentLedger(), ConsentLedger()
    records = [("c", consent(day(0), "a", statistics=True)), ("r", request("restriction", day(2), "r1")),
               ("r", request("lift", day(3), "r2")), ("r", request("withdrawal", day(4), "r3")),
               ("c", consent(day(6), "b", marketing=True))]
    for kind, r in records:
        (once.apply_consent if kind == "c" else once.apply_request)(S, r)
    for kind, r in records + list(reversed(records)):
        (twice.apply_consent if kind == "c" else twice.apply_request)(S, r)
    for n in range(-1, 10):
        assert once.state(S, day(n)) == twice.state(S, day(n))


def test_one_small_entry_per_subject_and_old_events_fail_closed() -> None:
    ledger = ConsentLedger(validity_days=10)
    for n in range(200):
        ledger.apply_consent(S, consent(day(n), f"c{n}", statistics=True))
    assert type(ledger.store.get(S)) is int  # the current choice only, packed
    assert "statistics" in granted(ledger, day(199.5))
    # long dropped: no consent, never a stale grant (and marketing counted as objected, fail-closed)
    assert ledger.state(S, day(1)) == ConsentState(objected=frozenset({"marketing"}))


def test_old_restriction_is_remembered_when_dropped() -> None:
    ledger = ConsentLedger(validity_days=10)
    ledger.apply_request(S, request("restriction", day(0), "r0"))
    for n in range(1, 100):
        ledger.apply_request(S, request("lift" if n % 2 else "restriction", day(n), f"r{n}"))
    assert ledger.state(S, day(0.5)).restricted is True  # before the horizon: fail-closed


def test_expire_forgets_stale_subjects_but_not_erasures_or_restrictions() -> None:
    ledger = ConsentLedger(validity_days=30)
    ledger.apply_consent("stale", consent(day(0), statistics=True))
    ledger.apply_consent("fresh", consent(day(50), statistics=True))
    ledger.apply_request("erased", request("erasure", day(0)))
    ledger.apply_request("restricted", request("restriction", day(0)))
    assert ledger.expire(day(60)) == 1
    assert set(ledger.subjects()) == {"fresh", "erased", "restricted"}


def test_naive_times_are_refused() -> None:
    ledger = ConsentLedger()
    with pytest.raises(TypeError, match="zone"):
        ledger.apply_consent(S, consent(datetime(2026, 1, 1)))
