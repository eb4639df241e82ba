"""Erasure in the local producer spool: events of one subject still waiting on this machine's disk.

A spooled raw event holds the subject key (and a full IP address) in clear until the broker takes it.
`erase_from_spool` removes a subject's events from every spool folder under ``spool_dir`` that no
live producer holds:

- the folder's lock is taken first (``flock``, not blocking), so a running producer's folder is never
  rewritten under it; such folders are counted in ``folders_in_use`` (their events reach Kafka when the
  broker is back, where the processor treats them by the erasure, and leave the disk then);
- segments wholly behind the marker (producers.spool_marker) are deleted (already delivered);
- every other segment is rewritten (temp file, fsync, rename) without the subject's records, and
  without the delivered prefix of the marker's segment, whose marker then moves to its start.

Matching (``is_subject(topic, key, value)``) is the caller's: `spooled_subject_matcher` matches the
Kafka key or the record's ``subject_key`` / ``user_id`` by the canonical identity rule.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datamin.files import replace_file
from datamin.identity import USER, subject_of_raw
from producers.spool import _HEAD, _decode_payload, scan_segment
from producers.spool_marker import Marker

Matcher = Callable[[str, bytes | None, bytes], bool]


@dataclass(frozen=True)
class SpoolErasure:
    """What erasing one subject did to the spool. Holds no key."""

    records_removed: int = 0
    folders_checked: int = 0
    folders_in_use: int = 0
    """folders a live producer holds: not rewritten (see the module docstring)"""


def spooled_subject_matcher(subject: str) -> Matcher:
    """True for a spooled record of ``subject`` (canonical): its Kafka key or its decoded
    ``subject_key`` is the subject, or (for a user) its ``user_id`` is the user's id."""
    from schemas import decode, default_registry

    registry = default_registry()
    user_id = subject.split(":", 1)[1] if subject.startswith(f"{USER}:") else None

    def matches(topic: str, key: bytes | None, value: bytes) -> bool:
        if key is not None and subject_of_raw(key.decode("utf-8", "replace")) == subject:
            return True
        try:
            _, record = decode(value, registry)
        except Exception:  # noqa: BLE001 - an undecodable record cannot be checked: keep it (it is sent as is)
            return False
        if subject_of_raw(record.get("subject_key")) == subject:
            return True
        return user_id is not None and subject_of_raw(record.get("user_id")) == subject

    return matches


def erase_subject_from_spool(spool_dir: str, subject: str) -> tuple[int, int, int]:
    """What the rights commands are given (they may not import producers): (records removed, folders
    checked, folders in use) after erasing ``subject`` (canonical) from the spool under ``spool_dir``."""
    done = erase_from_spool(spool_dir, spooled_subject_matcher(subject))
    return done.records_removed, done.folders_checked, done.folders_in_use


def erase_from_spool(spool_dir: str | Path, is_subject: Matcher) -> SpoolErasure:
    """Removes the records ``is_subject`` picks from every spool folder not held by a live producer."""
    root = Path(spool_dir)
    removed = checked = in_use = 0
    if not root.is_dir():
        return SpoolErasure()
    for folder in sorted(p for p in root.glob("p-*") if p.is_dir()):
        lock_path = folder / "lock"
        if not lock_path.exists():
            continue
        with open(lock_path, "ab") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                in_use += 1
                continue
            try:
                removed += _erase_folder(folder, is_subject)
                checked += 1
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return SpoolErasure(records_removed=removed, folders_checked=checked, folders_in_use=in_use)


def _erase_folder(folder: Path, is_subject: Matcher) -> int:
    marker = Marker(folder)
    try:
        return _erase_segments(folder, marker, is_subject)
    finally:
        marker.close()


def _erase_segments(folder: Path, marker: Marker, is_subject: Matcher) -> int:
    segment, offset = marker.read() or (0, 0)
    removed = 0
    for path in sorted(folder.glob("seg-*.spool")):
        n = int(path.stem[4:])
        if n < segment:
            path.unlink(missing_ok=True)  # delivered already
            continue
        data = path.read_bytes()
        records, _ = scan_segment(data)
        start = offset if n == segment else 0
        kept: list[bytes] = []
        hits = 0
        for begin, end in records:
            topic, key, value = _decode_payload(data[begin + _HEAD.size:end])
            if is_subject(topic, key, value):
                hits += 1
            elif begin >= start:  # a delivered record is dropped with the rewrite
                kept.append(data[begin:end])
        if hits == 0:
            continue
        content = b"".join(kept)
        replace_file(path, lambda f: f.write(content))  # noqa: B023 - called at once
        if n == segment and offset:
            if not marker.write(n, 0):  # the delivered prefix is gone: the marker must say so
                raise OSError(f"spool {folder}: cannot move its marker after rewriting {path.name}; "
                              "free some disk space and run the erasure again")
            offset = 0
        removed += hits
    return removed
