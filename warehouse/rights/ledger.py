"""The forget ledger (part of the rights trail): what an older copy of the warehouse must be made to forget.

A restored backup would bring back every person erased since it was taken, every restricted row and
every identifier a withdrawal removed. The rights trail keys requests by the subject's keyed hash,
which cannot find rows; rows carry pseudonyms. So every erasure, withdrawal, restriction, objection
and lift also records, *before* the warehouse is changed, the keyed hashes of the subject's
pseudonyms (HMAC-SHA-256 with the rights secret; never a pseudonym or key in clear):

    <root>/_rights/forget/<YYYYMMDDTHHMMSSffffffZ>-<uuid>.json
        {"action", "request_id", "at", "subject_hash", "pseudonym_hashes": [...]}

A restore hashes each distinct ``subject`` of the restored rows with the same secret and re-applies
the actions that match (`warehouse.backup.reapply`). Entries older than the oldest backup can be
pruned: the scheduler's backup expiry does so (`prune`).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from datamin.clock import as_utc
from datamin.config import Config
from datamin.exceptions import BackupError
from datamin.files import read_secret, replace_file
from datamin.keys import SECRET_FILE, load_secret
from warehouse.layout import Layout, layout_of
from warehouse.rights.subjects import Subject, resolve_subject

ACTIONS: Final = ("erasure", "withdrawal", "restriction", "objection", "lift")
LEDGER_DIR: Final = "forget"
PSEUDONYM_PREFIX: Final = "p1_"
SECRET_BYTES: Final = 32


@dataclass(frozen=True)
class ForgetAction:
    action: str
    request_id: str
    at: datetime
    subject_hash: str
    pseudonym_hashes: frozenset[str]
    recorded_ns: int = 0
    """when it was written (wall clock, ns): orders actions of the same instant"""


def ledger_dir(layout: Layout) -> Path:
    """``<root>/_rights/forget/``"""
    return layout.rights_dir / LEDGER_DIR


def pseudonym_hash(secret: bytes, pseudonym: str) -> str:
    """``"p1_"`` + HMAC-SHA-256(rights secret, ``pseudonym:`` + pseudonym): a pseudonym's keyed hash."""
    return PSEUDONYM_PREFIX + hmac.digest(secret, b"pseudonym:" + pseudonym.encode("utf-8"), "sha256").hex()


def rights_secret(config: Config, *, create: bool = True) -> bytes:
    """The rights secret the hashes are keyed with. With ``create=False`` (restores) a missing one is a
    BackupError: a new secret would match nobody, and every erased person would come back."""
    if create:
        return load_secret(Path(config.pseudonymise.key_dir))
    path = Path(config.pseudonymise.key_dir) / SECRET_FILE
    try:
        return read_secret(path, SECRET_BYTES)
    except OSError:
        raise BackupError(f"the rights secret {path} is missing or damaged, so subjects cannot be recognised by "
                          "their keyed hashes (a restore would not find the people erased since its backup): "
                          "restore pseudonymise.key_dir (kept apart from backups) first; nothing was changed") from None


def record_action(config: Config, action: str, request_id: str, subject: str | Subject, *, at: datetime) -> Path:
    """Records a rights action in the ledger (call it before the warehouse is changed)."""
    if action not in ACTIONS:
        raise ValueError(f"forget ledger action {action!r} is unknown: use one of {', '.join(ACTIONS)}")
    resolved = resolve_subject(config, subject)
    secret = rights_secret(config, create=False)  # rights commands never create the secret
    hashes = sorted({pseudonym_hash(secret, p) for p in resolved.pseudonyms.values()})
    when = as_utc(at)
    doc = {"action": action, "request_id": request_id, "at": when.isoformat(), "recorded_ns": time.time_ns(),
           "subject_hash": resolved.hash, "pseudonym_hashes": hashes}
    folder = ledger_dir(layout_of(config))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{when.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}.json"
    replace_file(path, lambda f: f.write(json.dumps(doc, sort_keys=True).encode("utf-8")))
    return path


def read_actions(layout: Layout) -> list[ForgetAction]:
    """Every recorded action, oldest first."""
    folder = ledger_dir(layout)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        out.append(ForgetAction(action=doc["action"], request_id=doc["request_id"],
                                at=datetime.fromisoformat(doc["at"]), subject_hash=doc["subject_hash"],
                                pseudonym_hashes=frozenset(doc["pseudonym_hashes"]),
                                recorded_ns=int(doc.get("recorded_ns", 0))))
    return sorted(out, key=lambda a: (a.at, a.recorded_ns, a.request_id))


def prune(layout: Layout, *, before: datetime) -> int:
    """Deletes entries recorded before ``before`` (no backup that old exists any more); returns how many."""
    folder = ledger_dir(layout)
    if not folder.is_dir():
        return 0
    cutoff = as_utc(before).strftime("%Y%m%dT%H%M%S%fZ")
    removed = 0
    for path in folder.glob("*.json"):
        if not path.name.startswith(".") and path.name[:len(cutoff)] < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
