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
    backups                       kept until they expire; a restore erases the person       backups
                                  again first (the forget ledger, `warehouse.backup`)

Nothing here prints or stores the subject key or a pseudonym.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from datamin.clock import as_utc
from datamin.config import Config
from datamin.topics import Topics
from warehouse.layout import layout_of
from warehouse.rights.erasure import erase_subject
from warehouse.rights.quarantine import erase_quarantine
from warehouse.rights.subjects import Subject, resolve_subject

SpoolEraser = Callable[[str, str], tuple[int, int, int]]
"""(spool folder, canonical subject) -> (records removed, folders checked, folders in use): the producers'
`producers.spool_erasure.erase_subject_from_spool`, handed in by the command line (the warehouse may not
import the producers)"""


def erase_everywhere(config: Config, subject_key: str | Subject, *, now: datetime, request_id: str,
                     spool_eraser: SpoolEraser | None = None) -> tuple[str, dict[str, Any]]:
    """Erases ``subject_key`` from every store (see the module docstring); returns (one line for the
    trail, the receipt with a ``stores`` entry per store). Safe to run again: each step is idempotent.
    Without ``spool_eraser`` the receipt says that this machine's spool was not looked at."""
    from warehouse.rights.topic_erasure import tombstone_consent

    subject = resolve_subject(config, subject_key)
    at = as_utc(now)
    layout = layout_of(config)
    receipt = erase_subject(config, subject, now=at, request_id=request_id)
    quarantine = erase_quarantine(layout, subject.pseudonyms.values())
    tombstones = tombstone_consent(config, subject.key)
    removed, checked, in_use = (spool_eraser(config.producer.spool_dir, subject.key) if spool_eraser
                                else (0, 0, 0))
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
        "spool": (f"{removed} spooled event(s) removed from {checked} spool folder(s) under "
                  f"{config.producer.spool_dir} on this machine" if spool_eraser else
                  f"the spool under {config.producer.spool_dir} was not looked at (run `datamin rights erase`)")
                 + (f"; {in_use} folder(s) in use by a running producer were left: their events "
                    "are sent to Kafka as soon as it answers and are minimised without the subject's identifiers"
                    if in_use else "")
                 + "; spools on other web servers are emptied into Kafka within seconds of the broker answering",
        "minimised_topics": receipt.kafka_window,
        "privacy_requests": "the privacy-requests topic holds the record of this request keyed and valued by the "
                            "subject's keyed hash, never the key (the record of requests: a legal obligation)",
        "requests_in": f"a request posted to the collector waits on {Topics(config).requests_in} with the subject "
                       f"in clear until Kafka deletes it after {config.topics.raw_retention_hours} hour(s) (raw "
                       "retention); only the rights worker reads it",
        "backups": f"backups taken before now keep the subject's rows until they expire, at most "
                   f"{config.backup.retention_days} day(s) after each was taken (backup.retention_days); they are "
                   "isolated (owner-only files, encrypted when backup.key_file is set, never in the analysts' "
                   "catalog), and restoring one deletes these rows again before anything is queryable (the forget "
                   "ledger recorded this erasure first)",
    }
    out = receipt.to_dict()
    out["stores"] = stores
    out["quarantine_rows"] = quarantine.rows_removed
    out["consent_tombstones"] = tombstones
    out["spool_records"] = removed
    line = (f"{receipt.summary()}; quarantine: {quarantine.rows_removed} row(s); consent topic: {tombstones} "
            f"tombstone(s); spool: {removed} event(s)")
    return line, out
