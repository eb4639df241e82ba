"""The consent ledger: what each subject consented to, restricted or erased, and when. Pure: no Kafka.

Built from decoded consent_record and privacy_request records (the compacted consent topic and the
privacy-requests topic), asked per event for the `ConsentState` in force at the *event's* time.

Guarantees:

- No known consent means no consent: an unknown subject, or an event before any consent, gets
  `NO_CONSENT`. A consent category that is null in a consent record counts as not granted.
- A consent counts for ``validity_days`` from the moment it was given, then as none until renewed.
- The answer depends on the set of records applied, not on their order or repetition: applying the
  same record twice is harmless (records are identified by event_id / request_id), and restoring the
  ledger by reading the consent partition before or after the privacy-request partition gives the
  same states.
- Privacy requests: restriction and objection restrict processing from their received time until a
  later lift; withdrawal withdraws every consent category from its received time; erasure erases the
  subject for every event up to the erasure and after it, and tombstones the consent given before it.
  Only a consent given *after* the erasure starts a new relationship (events after that consent).
- Sec-GPC / DNT, when the configuration honours them, count as an objection to marketing: "marketing"
  is removed from the granted categories of that event and put in its ``objected`` ones, as is
  "marketing" of the consent choice in force when it does not grant it (what a purpose on legitimate
  interest, ``minimise.marketing_basis``, is stopped by).
- Memory is bounded by the number of subjects: one small history each. Entries superseded more than
  ``validity_days`` before the subject's newest entry, or beyond `MAX_ENTRIES`, are dropped; an event
  older than what is kept is answered fail-closed (no consent; restricted if a dropped entry was).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from processors.consent_state import NO_CONSENT, ConsentState

CATEGORIES = ("necessary", "statistics", "marketing", "feedback")
"""consent categories a consent_record carries (schemas/purposes.json consent_categories)"""
MAX_ENTRIES = 32
"""most consent (and, separately, restriction) entries kept per subject"""
_RESTRICTING = frozenset({"restriction", "objection"})
_CONSENT, _WITHDRAWAL = 0, 1  # rank: at equal times a withdrawal wins over a consent
_NOT_MARKETING = frozenset({"marketing"})
_RESTRICTED = ConsentState(restricted=True)
_OBJECTED = ConsentState(objected=_NOT_MARKETING)

# (time, rank, id, value): sortable, value is the granted categories or the restricted flag
_ConsentEntry = tuple[datetime, int, str, frozenset[str]]
_RestrictEntry = tuple[datetime, int, str, bool]


@dataclass(slots=True)
class _History:
    consents: list[_ConsentEntry] = field(default_factory=list)
    restrictions: list[_RestrictEntry] = field(default_factory=list)
    erasure: datetime | None = None
    """time of the latest erasure request"""
    horizon: datetime | None = None
    """entries before this time were dropped; events before it are answered fail-closed"""
    restricted_before_horizon: bool = False

    def newest(self) -> datetime | None:
        times = [e[0] for e in self.consents[-1:]] + [e[0] for e in self.restrictions[-1:]]
        if self.erasure is not None:
            times.append(self.erasure)
        return max(times) if times else None


class ConsentLedger:
    """Consent, restriction and erasure per subject key, queried at an event's time."""

    def __init__(self, validity_days: int = 365, honour_gpc: bool = True, honour_dnt: bool = False) -> None:
        if validity_days <= 0:
            raise ValueError("validity_days must be more than 0; use the configured minimise.consent_validity_days")
        self.validity = timedelta(days=validity_days)
        self.honour_gpc = honour_gpc
        self.honour_dnt = honour_dnt
        self._subjects: dict[str, _History] = {}

    def __len__(self) -> int:
        """Number of subjects with a history."""
        return len(self._subjects)

    def subjects(self) -> Iterator[str]:
        return iter(self._subjects)

    # -- applying records ------------------------------------------------------------------------
    def apply_consent(self, subject_key: str | None, record: Mapping[str, Any]) -> None:
        """Applies one decoded consent_record (its "time" and category booleans)."""
        if not subject_key:
            return
        when = _aware(record.get("time"), "consent_record.time")
        granted = frozenset(c for c in CATEGORIES if record.get(c) is True)
        history = self._subjects.setdefault(subject_key, _History())
        if history.erasure is not None and when <= history.erasure:
            return  # tombstoned: given before the erasure
        self._add_consent(history, (when, _CONSENT, str(record.get("event_id") or ""), granted))

    def apply_request(self, subject_key: str | None, record: Mapping[str, Any]) -> None:
        """Applies one decoded privacy_request (its "kind" and "received"); access and rectification
        change nothing here."""
        kind = record.get("kind")
        if not subject_key or kind not in ("restriction", "objection", "lift", "withdrawal", "erasure"):
            return
        when = _aware(record.get("received"), "privacy_request.received")
        rid = str(record.get("request_id") or "")
        history = self._subjects.setdefault(subject_key, _History())
        if kind == "erasure":
            if history.erasure is None or when > history.erasure:
                history.erasure = when
                history.consents = [e for e in history.consents if e[0] > when]
        elif kind == "withdrawal":
            if history.erasure is None or when > history.erasure:
                self._add_consent(history, (when, _WITHDRAWAL, rid, frozenset()))
        else:
            restricting = kind in _RESTRICTING
            entry = (when, 1 if restricting else 0, rid, restricting)  # at equal times restriction wins
            if entry not in history.restrictions and not _before(history.horizon, when):
                _insert(history.restrictions, entry)
                self._prune(history)

    def _add_consent(self, history: _History, entry: _ConsentEntry) -> None:
        if entry in history.consents or _before(history.horizon, entry[0]):
            return
        _insert(history.consents, entry)
        self._prune(history)

    def _prune(self, history: _History) -> None:
        newest = history.newest()
        if newest is None:
            return
        cutoff = newest - self.validity
        consents, c_horizon = _trim(history.consents, cutoff)
        restrictions, r_horizon = _trim(history.restrictions, cutoff)
        if len(restrictions) != len(history.restrictions):
            dropped = history.restrictions[: len(history.restrictions) - len(restrictions)]
            history.restricted_before_horizon |= any(e[3] for e in dropped)
        history.consents, history.restrictions = consents, restrictions
        for h in (c_horizon, r_horizon):
            if h is not None and (history.horizon is None or h > history.horizon):
                history.horizon = h

    def forget_consents(self, subject_key: str) -> None:
        """Forgets the consent history of a subject (a tombstone on the compacted consent topic);
        restrictions and erasure stay."""
        history = self._subjects.get(subject_key)
        if history is not None:
            history.consents = []

    def expire(self, now: datetime) -> int:
        """Forgets subjects with nothing newer than ``validity_days`` before ``now`` and no restriction
        or erasure in force; returns how many. Call now and then with the wall clock."""
        cutoff = _aware(now, "now") - self.validity
        gone = [key for key, h in self._subjects.items()
                if h.erasure is None and not (h.restrictions and h.restrictions[-1][3])
                and _older(h.newest(), cutoff)]
        for key in gone:
            del self._subjects[key]
        return len(gone)

    # -- queries ---------------------------------------------------------------------------------
    def state(self, subject_key: str | None, at: datetime, *, gpc: bool | None = None,
              dnt: bool | None = None) -> ConsentState:
        """The consent in force for ``subject_key`` at ``at`` (the event's time), with the event's
        GPC / DNT signals honoured as configured."""
        history = self._subjects.get(subject_key) if subject_key else None
        signal = bool((gpc and self.honour_gpc) or (dnt and self.honour_dnt))
        if history is None:
            return _OBJECTED if signal else NO_CONSENT
        erasure = history.erasure
        if history.horizon is not None and at < history.horizon:
            if erasure is not None:
                return ConsentState(erased=True)
            # fail-closed: what was chosen before the horizon is forgotten, so count marketing as objected
            return _RESTRICTED if history.restricted_before_horizon or _restricted(history, at) else _OBJECTED
        granted: frozenset[str] = frozenset()
        refused: frozenset[str] = frozenset()
        for when, _rank, _id, categories in reversed(history.consents):
            if when <= at:
                if at - when < self.validity:
                    granted = categories
                refused = _NOT_MARKETING - categories  # a choice without marketing objects to it
                break
        if erasure is not None and (at < erasure or not any(erasure < e[0] <= at and e[1] == _CONSENT
                                                                 for e in history.consents)):
            return ConsentState(erased=True)
        if signal:
            granted, refused = granted - _NOT_MARKETING, refused | _NOT_MARKETING
        restricted = _restricted(history, at)
        if not granted and not restricted and not refused:
            return NO_CONSENT
        return ConsentState(granted=granted, restricted=restricted, objected=refused)


def _restricted(history: _History, at: datetime) -> bool:
    for when, _rank, _id, restricted in reversed(history.restrictions):
        if when <= at:
            return restricted
    return False


def _insert(entries: list[Any], entry: Any) -> None:
    """Inserts keeping the list sorted; appends in the common case of records in time order."""
    if not entries or entries[-1] <= entry:
        entries.append(entry)
        return
    i = len(entries)
    while i > 0 and entries[i - 1] > entry:
        i -= 1
    entries.insert(i, entry)


def _trim(entries: list[Any], cutoff: datetime) -> tuple[list[Any], datetime | None]:
    """Drops entries superseded before ``cutoff`` (keeping the one in force at the cutoff) and the
    oldest beyond MAX_ENTRIES; returns the kept entries and the new horizon, if any was dropped."""
    start = 0
    while start + 1 < len(entries) and entries[start + 1][0] <= cutoff:
        start += 1
    start = max(start, len(entries) - MAX_ENTRIES)
    if start == 0:
        return entries, None
    kept = entries[start:]
    return kept, kept[0][0]


def _older(when: datetime | None, cutoff: datetime) -> bool:
    return when is None or when < cutoff


def _before(horizon: datetime | None, when: datetime) -> bool:
    return horizon is not None and when < horizon


def _aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"{what} must be a datetime with a zone (a decoded record has one)")
    return value
