"""The officer's door to people's rights: requests published to Kafka, carried out in the warehouse,
and recorded in the rights trail (``<root>/_rights/requests/``, see `warehouse.rights.trail`).

`rights_command` is what ``datamin rights access|erase|restrict|object|withdraw|lift --subject KEY``
runs; `status_report` is ``datamin rights status``. Each action:

1. records the request as received (keyed subject hash, kind, channel, time; deadline received + 30 days);
2. publishes a privacy_request event (raw schema) to the privacy-requests topic, keyed and valued by
   the subject's keyed hash (never the key; `publish_request`), acks=all, so every processor, which
   reads the whole topic and recognises the hash, stops keeping identifiers where it must;
3. carries it out in the warehouse: access writes an export; erase deletes the rows and publishes the
   keyed hash to the erased-subjects topic; restrict/object hide the rows from analysts; lift shows
   them again; withdraw strips the consent-only identifiers;
4. records it as done with what was done (counts, tables, files; never the key or a pseudonym).

If Kafka cannot be reached the request stays recorded as open (``datamin rights status`` shows it,
with its deadline) and the command fails with the fix; running it again is safe. Nothing here prints
or stores the subject key, except the export file handed to the person.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from datamin.clock import as_utc
from datamin.config import Config
from datamin.exceptions import BrokerError, ConfigError, DataminError
from datamin.kafka import send_and_wait
from datamin.topics import Topics
from schemas import default_registry, encode
from warehouse.layout import layout_of
from warehouse.locking import maintenance_lock
from warehouse.rights.erasure import withdraw_subject
from warehouse.rights.everywhere import SpoolEraser, erase_everywhere
from warehouse.rights.export import export_subject
from warehouse.rights.ledger import record_action
from warehouse.rights.preflight import check_stores, check_topics
from warehouse.rights.restriction import lift, restrict
from warehouse.rights.subjects import Subject, resolve_subject
from warehouse.rights.trail import read_requests, record_done, record_received

KINDS: Final = ("access", "erasure", "restriction", "objection", "withdrawal", "rectification", "lift")
CHANNELS: Final = ("officer", "self_service", "email")
ACTIONS: Final = {"access": "access", "erase": "erasure", "restrict": "restriction", "object": "objection",
                  "withdraw": "withdrawal", "lift": "lift"}
"""command-line action -> request kind"""
FORGET_KINDS: Final = ("erasure", "withdrawal", "restriction", "objection", "lift")
"""kinds recorded first in the forget ledger, which restores of backups re-apply (`warehouse.rights.ledger`)"""


def submit_request(config: Config, kind: str, subject_key: str | Subject, *, channel: str = "officer", now: datetime,
                   timeout: float = 15.0) -> str:
    """Publishes a privacy_request event (raw schema v1) for ``subject_key`` to the privacy-requests
    topic, keyed and valued by the subject's keyed hash, and waits for acks=all; returns the new
    request id (a UUID).
    Also records the request as received in the rights trail (before publishing, so a request that
    Kafka did not take is still on record, open). Raises ValueError for an unknown kind or channel or
    an empty key, BrokerError when Kafka does not take the event."""

    if kind not in KINDS:
        raise ValueError(f"request kind {kind!r} is unknown: use one of {', '.join(KINDS)}")
    if channel not in CHANNELS:
        raise ValueError(f"request channel {channel!r} is unknown: use one of {', '.join(CHANNELS)}")
    subject = resolve_subject(config, subject_key)
    received = as_utc(now)
    request_id = str(uuid.uuid4())
    record_received(layout_of(config), request_id=request_id, subject_hash=subject.hash,
                    kind=kind, channel=channel, received=received)
    publish_request(config, request_id=request_id, hashed=subject.hash, kind=kind, received=received,
                    channel=channel, timeout=timeout)
    return request_id


def publish_request(config: Config, *, request_id: str, hashed: str, kind: str, received: datetime, channel: str,
                    timeout: float = 15.0) -> None:
    """Publishes the record of a request to the privacy-requests topic: a privacy_request whose
    ``subject_key`` and Kafka key are the subject's keyed hash (``h1_…``), never the key. Idempotent
    for the processors (a request id applied twice changes nothing)."""
    schema = default_registry().latest("privacy_request", "raw")
    value = encode(schema, {"request_id": request_id, "subject_key": hashed, "kind": kind,
                            "received": as_utc(received), "channel": channel})
    send_and_wait(config, Topics(config).privacy_requests, key=hashed.encode("ascii"), value=value,
                  doing="publishing a privacy request", timeout=timeout)


def access(config: Config, subject: Subject, request_id: str, *, out_dir: Path, now: datetime,
           fmt: str = "json", **_: Any) -> tuple[str, dict[str, Any]]:
    """The right of access (and portability): an export of everything linked to ``subject``."""
    path = export_subject(config, subject, out_dir, fmt=fmt, now=now)
    return f"access {request_id}: export written ({path.name})", {"export_file": path.name}


def erase(config: Config, subject: Subject, request_id: str, *, now: datetime, spool_eraser: SpoolEraser | None = None,
          **_: Any) -> tuple[str, dict[str, Any]]:
    """The right to erasure: ``subject`` erased from every store (`warehouse.rights.everywhere`)."""
    # never beside a compaction that could merge a file being rewritten and bring rows back
    with maintenance_lock(layout_of(config)):
        return erase_everywhere(config, subject, now=now, request_id=request_id, spool_eraser=spool_eraser)


def withdraw(config: Config, subject: Subject, request_id: str, *, now: datetime,
             **_: Any) -> tuple[str, dict[str, Any]]:
    """Withdrawal of consent: the identifiers kept on consent alone are erased."""
    with maintenance_lock(layout_of(config)):
        receipt = withdraw_subject(config, subject, now=now, request_id=request_id)
    return receipt.summary(), receipt.to_dict()


def restriction(config: Config, subject: Subject, request_id: str, *, kind: str = "restriction",
                **_: Any) -> tuple[str, dict[str, Any]]:
    """Restriction of processing (and objection): ``subject``'s rows hidden from analysts until lifted."""
    added = restrict(config, subject)
    return (f"{kind} {request_id}: stored rows hidden from analysts ({added} pseudonym(s) added to the list)",
            {"pseudonyms_added": added})


def lift_restriction(config: Config, subject: Subject, request_id: str, **_: Any) -> tuple[str, dict[str, Any]]:
    """The end of a restriction or objection: ``subject``'s rows visible again."""
    removed = lift(config, subject)
    return (f"lift {request_id}: stored rows visible again ({removed} pseudonym(s) taken off the list)",
            {"pseudonyms_removed": removed})


RIGHTS: Final[dict[str, Callable[..., tuple[str, dict[str, Any]]]]] = {
    "access": access, "erasure": erase, "withdrawal": withdraw, "restriction": restriction,
    "objection": restriction, "lift": lift_restriction}
"""request kind -> its one entry: ``(config, subject, request_id, *, out_dir, now, fmt, kind)`` -> (line, receipt)"""


def carry_out(config: Config, kind: str, subject: str | Subject, request_id: str, *, out_dir: Path,
              now: datetime, fmt: str = "json", spool_eraser: SpoolEraser | None = None) -> tuple[str, dict[str, Any]]:
    """Does what ``kind`` asks in the warehouse through its entry in `RIGHTS`; returns (one line for the
    trail, receipt). No Kafka except erasure's erased-subjects record."""
    entry = RIGHTS.get(kind)
    if entry is None:
        raise ValueError(f"request kind {kind!r} has no warehouse action here (rectification is done by hand)")
    resolved = resolve_subject(config, subject)
    if kind in FORGET_KINDS:  # first, so that no backup restored later brings back what this removes or hides
        record_action(config, kind, request_id, resolved, at=now)
    return entry(config, resolved, request_id, out_dir=out_dir, now=now, fmt=fmt, kind=kind,
                 spool_eraser=spool_eraser)


def rights_command(config: Config, action: str, subject: str, *, out_dir: str | Path = ".", now: datetime,
                   fmt: str = "json", stdout: TextIO | None = None, stderr: TextIO | None = None,
                   spool_eraser: SpoolEraser | None = None) -> int:
    """``datamin rights <action> --subject KEY``: submit, carry out, record; prints one line without
    personal data (the export's path for access). Returns 0, or 1 with the problem and fix on stderr,
    2 for an unknown action."""

    out, err = stdout or sys.stdout, stderr or sys.stderr
    kind = ACTIONS.get(action)
    if kind is None:
        print(f"error: unknown rights action {action!r}; use one of {', '.join(ACTIONS)}", file=err)
        return 2
    try:
        check_stores(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 2
    topics = Topics(config)
    try:
        check_topics(config, [topics.privacy_requests, topics.erased_subjects, topics.consent],
                     doing=f"datamin rights {action}")
    except BrokerError as exc:
        print(f"error: {exc}", file=err)
        return 1
    try:
        resolved = Subject(config, subject)  # once per command: the key checked, its pseudonyms and hash
        request_id = submit_request(config, kind, resolved, now=now)
        line, receipt = carry_out(config, kind, resolved, request_id, out_dir=Path(out_dir), now=now, fmt=fmt,
                                  spool_eraser=spool_eraser)
        record_done(layout_of(config), request_id=request_id, at=now, outcome=line, receipt=receipt)
    except (DataminError, ValueError, OSError) as exc:
        print(f"error: {kind} request failed: {exc}. It is recorded as open in the rights trail; "
              "fix the cause and run the command again.", file=err)
        return 1
    print(line, file=out)
    if kind == "access":
        print(str(Path(out_dir) / receipt["export_file"]), file=out)
    elif kind == "erasure":
        for store, what in receipt.get("stores", {}).items():  # the receipt: one line per store
            print(f"  {store}: {what}", file=out)
    return 0


def status_report(config: Config, now: datetime) -> str:
    """``datamin rights status``: every request with its received time, deadline, state, channel and
    outcome, overdue first then open then done, and a count per state. No subject key or hash is shown.
    Raises ConfigError when the warehouse or key folder is missing (see `preflight.check_stores`)."""
    check_stores(config)
    requests = read_requests(layout_of(config), now=now)
    if not requests:
        return "no privacy requests on record"
    order = {"overdue": 0, "open": 1, "done": 2}
    counts = {s: sum(r.state == s for r in requests) for s in order}
    lines = [f"privacy requests: {counts['overdue']} overdue, {counts['open']} open, {counts['done']} done",
             f"{'state':8} {'kind':12} {'channel':12} {'received (UTC)':20} {'deadline (UTC)':20} request / outcome"]
    for r in sorted(requests, key=lambda r: (order[r.state], r.deadline)):
        waiting = "" if r.outcome or r.channel != "self_service" else " (queued for the officer)"
        lines.append(f"{r.state:8} {r.kind:12} {r.channel:12} {r.received:%Y-%m-%d %H:%M}     "
                     f"{r.deadline:%Y-%m-%d %H:%M}     {r.outcome or r.request_id}{waiting}")
    return "\n".join(lines)
