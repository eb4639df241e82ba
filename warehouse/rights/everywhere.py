"""Erasure that reaches every store datamin writes, and a receipt that lists each one.

`erase_everywhere` is what ``datamin rights erase`` and the rights worker run for an erasure:

    store                         what is done                                          receipt entry
    erased-subjects topic         the keyed hash published first (acks=all): processors   erased_subjects
                                  drop the person's identifiers from then on, replays too
    warehouse tables              every row of the person's pseudonyms deleted            warehouse
    restricted list, sweep list   pseudonyms off the restricted list; on the sweep list   warehouse
                                  until the minimised topics' window ends
    warehouse quarantine          rows deleted from readable files; unreadable dropped    quarantine
    consent topic + ledgers       a tombstone per key of the person (acks=all); ledgers   consent_topic
                                  forget the consent when they read it
    producer spool (this host)    spooled raw events of the person removed                spool
    minimised topics              kept until their retention; late rows swept             minimised_topics
    privacy-requests topic        the record of requests: keyed and valued by the         privacy_requests
                                  subject's keyed hash, never the key (nothing to erase)
    raw requests topic            self-service requests in clear, kept hours (raw          requests_in
                                  retention), read by the rights worker only

Nothing here prints or stores the subject key or a pseudonym.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from datamin.clock import as_utc
from datamin.config import Config
from datamin.keys import key_store, require_subject_key
from datamin.topics import Topics
from warehouse.layout import layout_of
from warehouse.rights.erasure import erase_subject
from warehouse.rights.quarantine import erase_quarantine
from warehouse.rights.subjects import subject_pseudonyms


def erase_everywhere(config: Config, subject_key: str, *, now: datetime, request_id: str) -> tuple[str, dict[str, Any]]:
    """Erases ``subject_key`` from every store (see the module docstring); returns (one line for the
    trail, the receipt with a ``stores`` entry per store). Safe to run again: each step is idempotent."""
    from producers.spool_erasure import erase_from_spool, spooled_subject_matcher
    from warehouse.rights.topic_erasure import tombstone_consent

    subject = require_subject_key(subject_key)
    at = as_utc(now)
    layout = layout_of(config)
    receipt = erase_subject(config, subject, now=at, request_id=request_id)
    pseudonyms = subject_pseudonyms(key_store(config), subject).values()
    quarantine = erase_quarantine(layout, pseudonyms)
    tombstones = tombstone_consent(config, subject)
    spool = erase_from_spool(config.producer.spool_dir, spooled_subject_matcher(subject))
    retention = config.topics.minimised_retention_days
    stores: dict[str, str] = {
        "erased_subjects": "the subject's keyed hash published to the compacted erased-subjects topic (never the "
                           "key): processors drop the subject's identifiers from every later or replayed event",
        "warehouse": f"{receipt.rows} row(s) deleted in {len(receipt.files)} file(s) "
                     f"({', '.join(f'{t}: {n}' for t, n in sorted(receipt.tables.items())) or 'none held'}); "
                     "pseudonyms taken off the restricted list and kept on the erasure sweep list until "
                     f"{(at + timedelta(days=retention)).isoformat()}",
        "quarantine": f"{quarantine.files_checked} quarantined file(s) checked: {quarantine.rows_removed} row(s) "
                      f"removed, {quarantine.files_rewritten} rewritten, {quarantine.files_deleted} deleted "
                      f"({quarantine.unreadable_deleted} unreadable)",
        "consent_topic": f"{tombstones} tombstone(s) written to the consent topic; each processor's consent ledger "
                         "forgets the subject's consent when it reads them, and Kafka removes the older records "
                         "at its next compaction",
        "spool": f"{spool.records_removed} spooled event(s) removed from {spool.folders_checked} spool folder(s) "
                 f"under {config.producer.spool_dir} on this machine"
                 + (f"; {spool.folders_in_use} folder(s) in use by a running producer were left: their events "
                    "are sent to Kafka as soon as it answers and are minimised without the subject's identifiers"
                    if spool.folders_in_use else "")
                 + "; spools on other web servers are emptied into Kafka within seconds of the broker answering",
        "minimised_topics": receipt.kafka_window,
        "privacy_requests": "the privacy-requests topic holds the record of this request keyed and valued by the "
                            "subject's keyed hash, never the key (the record of requests: a legal obligation)",
        "requests_in": f"a request posted to the collector waits on {Topics(config).requests_in} with the subject "
                       f"in clear until Kafka deletes it after {config.topics.raw_retention_hours} hour(s) (raw "
                       "retention); only the rights worker reads it",
    }
    out = receipt.to_dict()
    out["stores"] = stores
    out["quarantine_rows"] = quarantine.rows_removed
    out["consent_tombstones"] = tombstones
    out["spool_records"] = spool.records_removed
    line = (f"{receipt.summary()}; quarantine: {quarantine.rows_removed} row(s); consent topic: {tombstones} "
            f"tombstone(s); spool: {spool.records_removed} event(s)")
    return line, out
