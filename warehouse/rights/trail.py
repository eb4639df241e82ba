"""The trail of privacy requests: each request, when it came, its one-month deadline, its state and
what was done. File I/O only.

    <root>/_rights/requests/<YYYYMMDDTHHMMSSffffffZ>-<uuid>.json     one event per file, never changed

An event is ``received`` (request id, keyed subject hash, kind, channel, received time) or ``done``
(request id, when, what was done, the receipt). Each file is written under a temporary dot-name,
fsynced and renamed into place, so concurrent writers never interleave and a reader never sees half
an event. The state of a request is derived: ``done`` once a done event exists, else ``overdue``
after its deadline (received + 30 days), else ``open``.

No subject key is stored: requests are found again by their keyed hash (`datamin.keys.subject_hash`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from datamin.clock import as_utc
from datamin.files import replace_file
from warehouse.layout import Layout

DEADLINE = timedelta(days=30)
"""One month to answer a request (GDPR art. 12(3)), counted as 30 days from its receipt."""


@dataclass(frozen=True)
class RequestState:
    """One request as the trail knows it."""

    request_id: str
    subject_hash: str
    kind: str
    channel: str
    received: datetime
    deadline: datetime
    state: str
    """open, done or overdue"""
    done_at: datetime | None = None
    outcome: str = ""
    receipt: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "channel": self.channel,
                "received": self.received.isoformat(), "deadline": self.deadline.isoformat(), "state": self.state,
                "done_at": self.done_at.isoformat() if self.done_at else None, "outcome": self.outcome,
                "receipt": self.receipt}


def requests_dir(layout: Layout) -> Path:
    return layout.rights_requests_dir


def record_received(layout: Layout, *, request_id: str, subject_hash: str, kind: str, channel: str,
                    received: datetime) -> Path:
    """Records that a request came in."""
    at = as_utc(received)
    return _append(layout, at, {"event": "received", "request_id": request_id, "subject_hash": subject_hash,
                                "kind": kind, "channel": channel, "received": at.isoformat()})


def record_done(layout: Layout, *, request_id: str, at: datetime, outcome: str,
                receipt: dict[str, Any] | None = None) -> Path:
    """Records what was done for a request (``outcome``: one line without personal data)."""
    when = as_utc(at)
    return _append(layout, when, {"event": "done", "request_id": request_id, "at": when.isoformat(),
                                  "outcome": outcome, "receipt": receipt or {}})


def read_requests(layout: Layout, *, now: datetime, subject_hash: str | None = None) -> list[RequestState]:
    """Every request (of one subject hash, else all), oldest first, with its state at ``now``."""
    folder = requests_dir(layout)
    if not folder.is_dir():
        return []
    received: dict[str, dict[str, Any]] = {}
    done: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        event = json.loads(path.read_text(encoding="utf-8"))
        if event.get("event") == "received":
            received.setdefault(event["request_id"], event)
        elif event.get("event") == "done":
            done[event["request_id"]] = event  # the latest done event wins
    at = as_utc(now)
    out = []
    for rid, event in received.items():
        if subject_hash is not None and event["subject_hash"] != subject_hash:
            continue
        got = datetime.fromisoformat(event["received"])
        deadline = got + DEADLINE
        finished = done.get(rid)
        state = "done" if finished else ("overdue" if at > deadline else "open")
        out.append(RequestState(
            request_id=rid, subject_hash=event["subject_hash"], kind=event["kind"], channel=event["channel"],
            received=got, deadline=deadline, state=state,
            done_at=datetime.fromisoformat(finished["at"]) if finished else None,
            outcome=finished["outcome"] if finished else "", receipt=finished["receipt"] if finished else {}))
    return sorted(out, key=lambda r: (r.received, r.request_id))


def _append(layout: Layout, at: datetime, event: dict[str, Any]) -> Path:
    folder = requests_dir(layout)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}.json"
    replace_file(path, lambda f: f.write(json.dumps(event, sort_keys=True).encode("utf-8")))
    return path
