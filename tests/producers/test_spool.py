"""The disk spool: order, bound, torn-record recovery, restart, one owner per folder."""

from __future__ import annotations

from pathlib import Path

from producers.spool import Spool, encode_record, scan_segment


def _values(spool: Spool, n: int = 10_000) -> list[bytes]:
    return [r.value for r in spool.peek(n)]


def test_append_and_peek_in_order_with_keys_and_topics(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    assert spool.empty()
    for i in range(5):
        assert spool.append(f"topic-{i % 2}", None if i == 3 else f"k{i}".encode(), f"v{i}".encode())
    records = spool.peek(100)
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(5)]
    assert [r.topic for r in records] == ["topic-0", "topic-1", "topic-0", "topic-1", "topic-0"]
    assert records[3].key is None and records[0].key == b"k0"
    assert not spool.empty()
    spool.close()


def test_commit_moves_forward_and_frees_segments(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20, segment_bytes=200)
    for i in range(40):
        assert spool.append("t", None, b"x" * 20 + str(i).encode())
    segments_before = len(list(spool.folder.glob("seg-*")))
    assert segments_before > 3
    records = spool.peek(25)
    spool.commit(records[-1].end)
    rest = _values(spool)
    assert rest == [b"x" * 20 + str(i).encode() for i in range(25, 40)]
    assert len(list(spool.folder.glob("seg-*"))) < segments_before
    spool.commit(spool.peek(100)[-1].end)
    assert spool.empty() and spool.size_bytes == 0
    assert list(spool.folder.glob("seg-*")) == []
    # appends after a full drain still work and come back in order
    spool.append("t", None, b"after")
    assert _values(spool) == [b"after"]
    spool.close()


def test_bounded_full_spool_refuses(tmp_path: Path) -> None:
    record_size = len(encode_record("t", None, b"v" * 100))
    spool = Spool.open(tmp_path, record_size * 3)
    assert [spool.append("t", None, b"v" * 100) for _ in range(4)] == [True, True, True, False]
    assert spool.size_bytes <= record_size * 3
    spool.commit(spool.peek(1)[0].end)  # the segment is still on disk, so the bound still holds it
    spool.commit(spool.peek(2)[-1].end)
    assert spool.append("t", None, b"v" * 100)
    spool.close()


def test_restart_replays_what_the_predecessor_left(tmp_path: Path) -> None:
    first = Spool.open(tmp_path, 1 << 20)
    for i in range(4):
        first.append("t", b"k", str(i).encode())
    first.commit(first.peek(1)[0].end)
    first.sync()
    first.close()
    second = Spool.open(tmp_path, 1 << 20)
    assert second.folder == first.folder
    assert _values(second) == [b"1", b"2", b"3"]
    second.close()


def test_torn_last_record_is_truncated(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    for i in range(3):
        spool.append("t", None, f"value-{i}".encode())
    spool.close()
    segment = next(spool.folder.glob("seg-*"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + encode_record("t", None, b"torn-record")[:-4])  # a crash mid-write
    reopened = Spool.open(tmp_path, 1 << 20)
    assert _values(reopened) == [b"value-0", b"value-1", b"value-2"]
    assert segment.read_bytes() == whole
    reopened.append("t", None, b"next")
    assert _values(reopened)[-1] == b"next"
    reopened.close()


def test_corrupt_crc_stops_the_scan() -> None:
    good = encode_record("t", None, b"one") + encode_record("t", None, b"two")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    records, intact = scan_segment(bytes(bad))
    assert len(records) == 1 and intact == len(encode_record("t", None, b"one"))
    assert scan_segment(b"\xff" * 50)[0] == []


def test_two_live_processes_get_separate_folders(tmp_path: Path) -> None:
    a = Spool.open(tmp_path, 1 << 20)
    b = Spool.open(tmp_path, 1 << 20)
    assert a.folder != b.folder
    a.append("t", None, b"a")
    assert b.empty()
    a.close()
    b.close()
