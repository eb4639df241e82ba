"""One event through the ledger and the minimiser: the step the stream processor and `datamin minimise`
share, so that both treat every event exactly alike. Pure: no Kafka, no files.

- consent_record: applied to the ledger first, then minimised with the state it creates (a consent given
  after an erasure is recorded with the subject's pseudonym; one given before it is not).
- privacy_request: minimised with the state *before* it, then applied: the record of an erasure or
  restriction request still names (by pseudonym) whom it concerns, so that it can be acted on and
  documented (legal obligation); every later event of that subject is treated by it.
- any other event: minimised with the state in force at its own time, its GPC / DNT signals honoured.

The subject is the record's subject_key, else the Kafka key, made canonical by `datamin.identity`
(``user:<id>`` / ``visitor:<id>``, one normalisation rule; a bare key is a user id), so that the ledger,
the pseudonyms and every right agree on who a person is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datamin.config import Config
from datamin.identity import is_hashed, subject_of_raw
from processors.consent_state import NO_CONSENT
from processors.ledger import ConsentLedger
from processors.minimise import Minimised, Minimiser
from schemas.registry import EventSchema

CONSENT_EVENT = "consent_record"
REQUEST_EVENT = "privacy_request"


def new_ledger(config: Config) -> ConsentLedger:
    """A ledger with the configured validity and GPC / DNT handling."""
    m = config.minimise
    return ConsentLedger(m.consent_validity_days, m.honour_gpc, m.honour_dnt,
                         memory_subjects=config.processor.ledger_memory_subjects)


def subject_of(record: Mapping[str, Any], key: str | None) -> str | None:
    """The canonical subject of a raw record: its subject_key field, else the Kafka message key."""
    return subject_of_raw(record.get("subject_key")) or subject_of_raw(key)


def process_event(minimiser: Minimiser, ledger: ConsentLedger | None, schema: EventSchema,
                  record: Mapping[str, Any], key: str | None = None, *, explain: bool = False) -> Minimised:
    """Applies a consent or privacy request to ``ledger`` and returns the minimised event.

    ``ledger`` None means the consent of this subject is unknown here: no consent (fail-closed).
    Raises TypeError/ValueError only on a record that decode or from_json would not produce."""
    subject = subject_of(record, key)
    given = record.get("subject_key")
    if given is not None and given != subject:
        record = {**record, "subject_key": subject}  # the pseudonym is of the canonical subject
    if ledger is None:
        return minimiser.minimise(schema, record, NO_CONSENT, explain=explain)
    if schema.name == CONSENT_EVENT:
        ledger.apply_consent(subject, record)
        return minimiser.minimise(schema, record, ledger.state(subject, record["time"]), explain=explain)
    if schema.name == REQUEST_EVENT:
        result = minimiser.minimise(schema, record, ledger.state(subject, record["received"]), explain=explain)
        if not is_hashed(subject):  # a hashed request reaches the ledgers through HashedRequests
            ledger.apply_request(subject, record)
        return result
    state = ledger.state(subject, record["time"], gpc=record.get("global_privacy_control"),
                         dnt=record.get("do_not_track"))
    return minimiser.minimise(schema, record, state, explain=explain)
