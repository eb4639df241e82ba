"""The consent ledger: each subject's current choice, restriction and erasure. Pure: no Kafka.

Built from decoded consent_record and privacy_request records (the compacted consent topic and the
privacy-requests topic), asked per event for the `ConsentState` in force at the *event's* time.

It keeps only what decides the next event: per subject, the newest choice (its time and which of
the 16 possible sets of categories it granted, or that it was a withdrawal), the newest
restriction-or-lift and whether any restriction was ever seen, and the newest erasure. Guarantees:

- No known consent means no consent: an unknown subject, or an event before the subject's current
  choice, gets no consent (the choice it replaced is not kept: fail-closed). A consent category that
  is null in a consent record counts as not granted.
- A consent counts for ``validity_days`` from the moment it was given, then as none until renewed.
- The answer depends on the set of records applied, not on their order or repetition: the newest
  record wins (at equal times a withdrawal over a consent, the narrower consent over the wider, a
  restriction over a lift), so restoring in any order gives the same states.
- Privacy requests: restriction and objection restrict processing from their received time until a
  later lift (an event before the newest of these is restricted if any older one restricted);
  withdrawal withdraws every consent category from its received time; erasure erases the subject for
  every event up to the erasure and after it, and tombstones the consent given before it. Only a
  consent given *after* the erasure starts a new relationship (events after that consent).
- Sec-GPC / DNT, when the configuration honours them, count as an objection to marketing: "marketing"
  is removed from the granted categories of that event and put in its ``objected`` ones, as is
  "marketing" of the choice in force when it leaves it out (what a purpose on legitimate interest,
  ``minimise.marketing_basis``, is stopped by).
- Memory is bounded: `expire` forgets subjects whose every record is older than ``validity_days``
  (none of them can change an answer any more) unless a restriction or an erasure is in force; and
  past ``memory_subjects`` subjects the least recently used spill to SQLite (`SubjectStore`). A
  subject with only a choice costs one dict slot, its key and one int: about 160 bytes for a
  43-character key, at most ``MEMORY_BYTES_PER_SUBJECT`` (held by tests/processors).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.consent_state import NO_CONSENT, ConsentState
from processors.ledger_store import Entry, SubjectStore

CATEGORIES = ("necessary", "statistics", "marketing", "feedback")
"""consent categories a consent_record carries (schemas/purposes.json consent_categories)"""
MEMORY_BYTES_PER_SUBJECT = 180
"""what one subject with a consent choice costs in memory (43-character key), before spilling"""
_BITS = {name: 1 << i for i, name in enumerate(CATEGORIES)}
_MARKETING = _BITS["marketing"]
_GRANTED = tuple(frozenset(c for c in CATEGORIES if mask & _BITS[c]) for mask in range(16))
"""the 16 possible granted sets, interned: a state never builds a set"""
_STATES = tuple((ConsentState(granted=g) if g else NO_CONSENT, ConsentState(granted=g, restricted=True))
                for g in _GRANTED)
_NOT_MARKETING = frozenset({"marketing"})
_OBJECTING = tuple((ConsentState(granted=g, objected=_NOT_MARKETING),
                    ConsentState(granted=g, restricted=True, objected=_NOT_MARKETING)) for g in _GRANTED)
"""the same states with marketing objected to (what a purpose on legitimate interest is stopped by)"""
_ERASED = ConsentState(erased=True)
_WITHDRAWAL = 16
_RESTRICTING = frozenset({"restriction", "objection"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# A choice is packed as (time_ms << 5) | (withdrawal << 4) | (15 - granted mask), so that the newest
# choice is the largest int, and at equal times a withdrawal, then the narrower consent, wins.
# A restriction is packed as (time_ms << 1) | restricting: at equal times a restriction wins.


class ConsentLedger:
    """Consent, restriction and erasure per subject key, queried at an event's time."""

    def __init__(self, validity_days: int = 365, honour_gpc: bool = True, honour_dnt: bool = False, *,
                 memory_subjects: int | None = None) -> None:
        if validity_days <= 0:
            raise ValueError("validity_days must be more than 0; use the configured minimise.consent_validity_days")
        self.validity = timedelta(days=validity_days)
        self._validity_ms = validity_days * 86_400_000
        self.honour_gpc = honour_gpc
        self.honour_dnt = honour_dnt
        self._store = SubjectStore(memory_subjects)

    def __len__(self) -> int:
        """Number of subjects known (in memory and spilled)."""
        return len(self._store)

    @property
    def store(self) -> SubjectStore:
        return self._store

    def subjects(self) -> Iterator[str]:
        return self._store.keys()

    def close(self) -> None:
        """Frees the spill database, if any; the ledger must not be used afterwards."""
        self._store.close()

    # -- applying records ------------------------------------------------------------------------
    def apply_consent(self, subject_key: str | None, record: Mapping[str, Any]) -> None:
        """Applies one decoded consent_record (its "time" and category booleans)."""
        if not subject_key:
            return
        when = _ms(_aware(record.get("time"), "consent_record.time"))
        mask = 0
        for name, bit in _BITS.items():
            if record.get(name) is True:
                mask |= bit
        choice, restriction, ever, erasure = _unpack(self._store.get(subject_key))
        if erasure is not None and when <= erasure:
            return  # tombstoned: given before the erasure
        packed = (when << 5) | (15 - mask)
        if choice is None or packed > choice:
            self._store.put(subject_key, _pack(packed, restriction, ever, erasure))

    def apply_request(self, subject_key: str | None, record: Mapping[str, Any]) -> None:
        """Applies one decoded privacy_request (its "kind" and "received"); access and rectification
        change nothing here."""
        kind = record.get("kind")
        if not subject_key or kind not in ("restriction", "objection", "lift", "withdrawal", "erasure"):
            return
        when = _ms(_aware(record.get("received"), "privacy_request.received"))
        old = self._store.get(subject_key)
        choice, restriction, ever, erasure = _unpack(old)
        if kind == "erasure":
            if erasure is None or when > erasure:
                erasure = when
                if choice is not None and choice >> 5 <= when:
                    choice = None
        elif kind == "withdrawal":
            packed = (when << 5) | _WITHDRAWAL | 15
            if (erasure is None or when > erasure) and (choice is None or packed > choice):
                choice = packed
        else:
            # ``ever``: whether a restricting record older than the newest one was seen (the answer for
            # events before the newest): the OR over every record but the newest, in any order
            packed = (when << 1) | (kind in _RESTRICTING)
            if restriction is None or packed > restriction:
                ever = ever or (restriction is not None and restriction & 1 == 1)
                restriction = packed
            elif packed < restriction:
                ever = ever or packed & 1 == 1
        new = _pack(choice, restriction, ever, erasure)
        if new != old:
            self._store.put(subject_key, new)

    def forget_consents(self, subject_key: str) -> None:
        """Forgets the consent choice of a subject (a tombstone on the compacted consent topic);
        restrictions and erasure stay."""
        old = self._store.get(subject_key)
        if old is not None:
            _choice, restriction, ever, erasure = _unpack(old)
            self._store.put(subject_key, _pack(None, restriction, ever, erasure))

    def expire(self, now: datetime) -> int:
        """Forgets subjects with nothing newer than ``validity_days`` before ``now`` and no restriction
        or erasure in force; returns how many. The processor calls it on a schedule."""
        cutoff = _ms(_aware(now, "now")) - self._validity_ms

        def keep(entry: Entry) -> bool:
            if type(entry) is int:
                return entry >> 5 >= cutoff
            assert isinstance(entry, tuple)
            choice, restriction, _ever, erasure = entry
            return (erasure is not None or (restriction is not None and restriction & 1 == 1)
                    or (choice is not None and choice >> 5 >= cutoff)
                    or (restriction is not None and restriction >> 1 >= cutoff))

        return self._store.remove_where(
            keep, "erasure IS NULL AND (restriction IS NULL OR (restriction & 1 = 0 AND restriction >> 1 < ?)) "
                  "AND (choice IS NULL OR choice >> 5 < ?)", (cutoff, cutoff))

    # -- queries ---------------------------------------------------------------------------------
    def state(self, subject_key: str | None, at: datetime, *, gpc: bool | None = None,
              dnt: bool | None = None) -> ConsentState:
        """The consent in force for ``subject_key`` at ``at`` (the event's time), with the event's
        GPC / DNT signals honoured as configured."""
        entry = self._store.get(subject_key) if subject_key else None
        signal = bool((gpc and self.honour_gpc) or (dnt and self.honour_dnt))
        if entry is None:
            return _OBJECTING[0][0] if signal else _STATES[0][0]
        at_ms = _ms(at)
        choice: int | None
        if type(entry) is int:
            choice, restricted = entry, False
        else:
            assert isinstance(entry, tuple)
            choice, restriction, ever, erasure = entry
            if erasure is not None and (at_ms < erasure or choice is None or choice & _WITHDRAWAL
                                        or not erasure < choice >> 5 <= at_ms):
                return _ERASED
            restricted = False if restriction is None else (
                bool(restriction & 1) if restriction >> 1 <= at_ms else ever)
        mask = 0
        objected = signal
        if choice is not None:
            since = at_ms - (choice >> 5)
            if 0 <= since < self._validity_ms:
                mask = 15 - (choice & 15)
            # a choice (or withdrawal) that leaves marketing out objects to it; before the current choice
            # the one it replaced is not kept, so fail-closed: objected
            objected = objected or since < 0 or bool(choice & _WITHDRAWAL) or not (15 - (choice & 15)) & _MARKETING
        if signal:
            mask &= ~_MARKETING
        return (_OBJECTING if objected else _STATES)[mask][restricted]


def _unpack(entry: Entry | None) -> tuple[int | None, int | None, bool, int | None]:
    if entry is None:
        return None, None, False, None
    if type(entry) is int:
        return entry, None, False, None
    assert isinstance(entry, tuple)
    return entry


def _pack(choice: int | None, restriction: int | None, ever: bool, erasure: int | None) -> Entry | None:
    if restriction is None and erasure is None and not ever:
        return choice
    return (choice, restriction, ever, erasure)


def _ms(when: datetime) -> int:
    return (when - _EPOCH) // _MS


def _aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"{what} must be a datetime with a zone (a decoded record has one)")
    return value
