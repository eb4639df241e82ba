"""Erasure in the spool: a subject's records leave every folder no live producer holds; the rest stay in order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from producers.spool import Spool
from producers.spool_erasure import erase_from_spool, spooled_subject_matcher
from schemas import default_registry, encode

REGISTRY = default_registry()


def _event(subject: str | None, n: int, user_id: str | None = None) -> bytes:
    return encode(REGISTRY.latest("http_request", "raw"), {
        "event_id": f"e-{n}", "time": datetime(2026, 11, 25, tzinfo=UTC), "subject_key": subject,
        "client_ip": "198.51.100.7", "url": f"/{n}", "user_id": user_id})


def test_a_subjects_records_leave_the_spool(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20, segment_bytes=400)
    plan = [("user:ola", "user:ola", None), ("visitor:abc", "visitor:abc", None), ("USER:Ola ", None, None),
            (None, None, "ola"), ("user:kari", "user:kari", "kari")] * 4
    for n, (key, subject, user) in enumerate(plan):
        assert spool.append("t.raw.http_request", key.encode() if key else None, _event(subject, n, user))
    delivered = spool.peek(3)
    spool.commit(delivered[-1].end)  # the first three were delivered: still on disk until the segment ends
    spool.close()
    assert b"user:ola" in b"".join(p.read_bytes() for p in tmp_path.glob("p-*/seg-*"))

    result = erase_from_spool(tmp_path, spooled_subject_matcher("user:ola"))
    assert result.records_removed >= 12 and result.folders_checked == 1 and result.folders_in_use == 0
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("p-*/seg-*"))
    assert b"user:ola" not in on_disk.lower() and b"ola\x00" not in on_disk
    reopened = Spool.open(tmp_path, 1 << 20)
    left = [r.key for r in reopened.peek(100)]
    assert set(left) == {b"visitor:abc", b"user:kari"} and len(left) == 8 - 1  # one visitor record was delivered
    reopened.close()


def test_a_folder_held_by_a_live_producer_is_left_alone(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    spool.append("t", b"user:ola", _event("user:ola", 1))
    try:
        result = erase_from_spool(tmp_path, spooled_subject_matcher("user:ola"))
        assert result.folders_in_use == 1 and result.records_removed == 0
        assert [r.key for r in spool.peek(10)] == [b"user:ola"]
    finally:
        spool.close()
    assert erase_from_spool(tmp_path / "missing", spooled_subject_matcher("user:ola")).folders_checked == 0
