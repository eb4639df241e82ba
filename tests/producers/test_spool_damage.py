"""The spool when the disk fails it: full disks (a small tmpfs when one can be mounted, injected write
failures always), flipped bytes, and replay that never re-sends what Kafka acknowledged."""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datamin.config import Config
from datamin.topics import Topics, provision
from producers import spool as spool_module
from producers.producer import EventProducer
from producers.spool import Spool, encode_record, scan_segment
from producers.spool_marker import MARKER_FILE, decode_slot, encode_slot
from schemas import decode, default_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer


def _values(spool: Spool) -> list[bytes]:
    return [r.value for r in spool.peek(100_000)]


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``; skips the test where mounting is not allowed."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode(errors='replace').strip()}); "
                    "the injected-failure tests cover the same code")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fills the file system of ``folder`` to the last byte."""
    with open(folder / f"filler-{uuid.uuid4().hex}", "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")


# -- a failed append is rolled back and refused ------------------------------------------------------


def test_an_append_the_disk_refuses_is_rolled_back_and_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    assert spool.append("t", None, b"before")
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:  # the disk takes half the record, then is full
        if len(data) > 20:
            real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", half_then_full)
    assert not spool.append("t", b"key", b"x" * 100)
    assert "No space left on device" in spool.refusal
    monkeypatch.setattr(spool_module.os, "write", real_write)
    assert spool.append("t", None, b"after")
    assert _values(spool) == [b"before", b"after"]
    spool.close()
    segment = next(spool.folder.glob("seg-*"))
    assert segment.read_bytes() == encode_record("t", None, b"before") + encode_record("t", None, b"after")
    reopened = Spool.open(tmp_path, 1 << 20)
    assert _values(reopened) == [b"before", b"after"] and reopened.damaged == 0
    reopened.close()


def test_a_full_small_filesystem_refuses_appends_and_keeps_every_accepted_record(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", "128k") as root:
        spool = Spool.open(root, 64 << 20)
        accepted = [spool.append("t", f"k{i}".encode(), f"value-{i}-".encode() + b"v" * 400) for i in range(1000)]
        assert 0 < sum(accepted) < 1000  # the disk, not the bound, refused the rest
        assert "cannot be written" in spool.refusal
        spool.sync()
        expected = [f"value-{i}-".encode() + b"v" * 400 for i, ok in enumerate(accepted) if ok]
        assert _values(spool) == expected
        spool.close()
        for segment in spool.folder.glob("seg-*"):
            records, end = scan_segment(segment.read_bytes())
            assert end == segment.stat().st_size  # nothing torn left behind
        reopened = Spool.open(root, 64 << 20)
        assert _values(reopened) == expected and reopened.damaged == 0
        reopened.close()


def test_the_producer_counts_what_a_full_disk_refused_as_dropped(tmp_path: Path, make_config: Callable[..., Config],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with small_filesystem(tmp_path / "small", "128k") as root:
        config = make_config(kafka="127.0.0.1:9", PRODUCER__SPOOL_DIR=f'"{root}"')
        producer = EventProducer(config, retry_interval=3600.0)
        try:
            for i in range(1000):
                producer.publish("http_request", {"event_id": f"e-{i}", "time": datetime.now(UTC),
                                                  "url": "/" + "p" * 300})
            producer.flush(60)
        finally:
            with caplog.at_level(logging.ERROR):
                producer.close(1)
        stats = producer.stats()
        assert stats.dropped > 0
        assert stats.spooled + stats.dropped == 1000
        spool = Spool.open(root, 1 << 30)
        assert len(_values(spool)) == stats.spooled  # every event counted as spooled is on disk
        spool.close()
    gc.collect()


# -- damaged records are skipped, not the rest of the segment ----------------------------------------


def test_a_flipped_byte_costs_one_record_not_the_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    for i in range(6):
        assert spool.append("t", None, f"value-{i}".encode())
    spool.close()
    segment = next(spool.folder.glob("seg-*"))
    data = bytearray(segment.read_bytes())
    record = len(encode_record("t", None, b"value-0"))
    data[2 * record + 12] ^= 0x01  # inside the third record's payload
    data[4 * record + 1] ^= 0xFF  # the fifth record's length
    segment.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR):
        reopened = Spool.open(tmp_path, 1 << 20)
    assert _values(reopened) == [b"value-0", b"value-1", b"value-3", b"value-5"]
    assert reopened.damaged == 2
    assert sum("damaged bytes" in r.getMessage() for r in caplog.records) == 2
    assert not any("value-" in r.getMessage() for r in caplog.records)  # never the content
    assert reopened.append("t", None, b"next")
    assert _values(reopened)[-1] == b"next"
    reopened.close()


def test_scan_resynchronises_after_garbage() -> None:
    one, two = encode_record("t", None, b"one"), encode_record("t", b"k", b"two")
    records, end = scan_segment(b"\x07" * 13 + one + b"\xff" * 9 + two)
    assert [(b - a) for a, b in records] == [len(one), len(two)] and end == 13 + len(one) + 9 + len(two)
    assert scan_segment(one + two[:-3]) == ([(0, len(one))], len(one))  # a torn tail is no record


# -- the marker moves in place: on a full disk and across restarts ----------------------------------


def test_commit_on_a_full_disk_is_kept_across_a_restart(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", "64k") as root:
        spool = Spool.open(root, 1 << 20)
        for i in range(10):
            assert spool.append("t", None, f"value-{i}".encode())
        spool.sync()
        fill(root)
        assert not spool.append("t", None, b"no room" * 2000)
        spool.commit(spool.peek(4)[-1].end)  # Kafka acknowledged four records
        spool.close()
        reopened = Spool.open(root, 1 << 20)
        assert _values(reopened) == [f"value-{i}".encode() for i in range(4, 10)]
        reopened.close()


def test_a_torn_marker_write_leaves_the_previous_position(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    for i in range(5):
        spool.append("t", None, f"value-{i}".encode())
    spool.commit(spool.peek(2)[-1].end)
    spool.close()
    marker = spool.folder / MARKER_FILE
    data = bytearray(marker.read_bytes())
    valid = [decode_slot(bytes(data[i:i + 32])) for i in (0, 32)]
    assert sum(v is not None for v in valid) == 1
    empty = 0 if valid[0] is None else 32
    torn = encode_slot(99, 0, 10_000)
    data[empty:empty + 32] = torn[:20] + bytes(12)  # a crash in the middle of the next write
    marker.write_bytes(bytes(data))
    reopened = Spool.open(tmp_path, 1 << 20)
    assert _values(reopened) == [b"value-2", b"value-3", b"value-4"]
    reopened.close()


def test_a_marker_of_an_older_datamin_is_read_and_converted(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, 1 << 20)
    for i in range(3):
        spool.append("t", None, f"value-{i}".encode())
    end = spool.peek(1)[0].end
    spool.close()
    (spool.folder / MARKER_FILE).unlink()
    (spool.folder / "committed").write_text(f'{{"segment": {end.segment}, "offset": {end.offset}}}')
    reopened = Spool.open(tmp_path, 1 << 20)
    assert _values(reopened) == [b"value-1", b"value-2"]
    reopened.commit(reopened.peek(1)[0].end)
    assert not (spool.folder / "committed").exists()
    reopened.close()
    assert _values(again := Spool.open(tmp_path, 1 << 20)) == [b"value-2"]
    again.close()


def test_spool_files_are_private(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool", 1 << 20)
    spool.append("t", None, b"203.0.113.7")
    spool.commit(spool.peek(1)[0].end)
    spool.append("t", None, b"198.51.100.1")
    spool.close()
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    assert spool.folder.stat().st_mode & 0o777 == 0o700
    for path in spool.folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_replay_on_a_full_disk_never_resends_what_kafka_acknowledged(
        tmp_path: Path, kafka_config: Config, make_config: Callable[..., Config]) -> None:
    with small_filesystem(tmp_path / "small", "256k") as root:
        provision(kafka_config)
        topic = Topics(kafka_config).raw("http_request")
        offline = make_config(kafka="127.0.0.1:9", PRODUCER__SPOOL_DIR=f'"{root}"',
                              TOPICS__PREFIX=f'"{kafka_config.topics.prefix}"')
        producer = EventProducer(offline, retry_interval=3600.0)
        for i in range(200):
            assert producer.publish("http_request", {"event_id": f"e-{i}", "time": datetime.now(UTC), "url": f"/{i}"})
        assert producer.flush(60)
        producer.close(1)
        assert producer.stats().spooled == 200
        fill(root)
        online = make_config(kafka=kafka_config.kafka.bootstrap_servers, PRODUCER__SPOOL_DIR=f'"{root}"',
                             TOPICS__PREFIX=f'"{kafka_config.topics.prefix}"')
        for _ in range(2):  # two restarts on the full disk
            restarted = EventProducer(online)
            assert restarted.close(120)
        consumer = KafkaConsumer(topic, **kafka_config.kafka.client_kwargs(), auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=10_000)
        try:
            ids = [decode(m.value, default_registry())[1]["event_id"] for m in consumer]
        finally:
            consumer.close()
        assert sorted(ids) == sorted(f"e-{i}" for i in range(200))  # each exactly once
    gc.collect()
