"""The local disk spool: where events wait, in order, while Kafka cannot be reached.

Layout: one folder per producer process, ``<spool_dir>/p-<n>/``, held with an exclusive ``flock`` on
its ``lock`` file, so that several worker processes on one machine each own a spool and a process that
restarts takes over (and replays) the folder its predecessor left. Inside, append-only segment files
``seg-<20 digits>.spool`` and a ``committed`` marker naming the position (segment, offset) up to which
records are known to be acknowledged by the broker.

Record format, little-endian::

    u32 payload length | u32 CRC-32 of payload | payload
    payload = u16 topic length | topic (UTF-8) | i32 key length (-1 = no key) | key | value

Guarantees:

- Order: ``peek`` returns records in the order they were appended, starting at the marker.
- Bound: the sum of the segment files never exceeds ``max_bytes``; an append that would is refused
  (``append`` returns False) and the caller counts and reports the drop.
- Durability (fsync policy): ``append`` writes through to the operating system at once (a process
  crash loses nothing appended); ``sync()`` fsyncs the open segment and is called by the producer once
  per batch it spools and before it reports a flush as done, so a power cut can lose at most the batch
  being spooled. The marker is replaced atomically (write, fsync, rename, fsync of the folder).
- Crash recovery: on open every segment is scanned; a torn or corrupt record (bad length or CRC), as
  a crash mid-append leaves, is truncated away together with anything after it in that segment, and
  logged with the byte count (never the content).
- Replay at most once per acknowledgement: the marker only moves forward over records the caller says
  the broker acknowledged, so a record is never skipped; a crash between the broker's ack and the
  marker's fsync can send the records of that one replay batch again (see producers.producer).

Not thread-safe: one thread (the producer's sender) owns a Spool.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from datamin.files import replace_file

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")
_TOPIC_LEN = struct.Struct("<H")
_KEY_LEN = struct.Struct("<i")
MAX_RECORD = 64 * 1024 * 1024
"""largest payload a record may have; a longer length field is corruption"""
_MARKER = "committed"


@dataclass(frozen=True, order=True)
class Position:
    """A place in the spool: a segment number and a byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True)
class SpooledRecord:
    topic: str
    key: bytes | None
    value: bytes
    end: Position
    """position just after this record: commit it to mark the record as delivered"""


def encode_record(topic: str, key: bytes | None, value: bytes) -> bytes:
    """One record in the spool's on-disk format (header, CRC, payload)."""
    t = topic.encode("utf-8")
    parts = [_TOPIC_LEN.pack(len(t)), t]
    if key is None:
        parts.append(_KEY_LEN.pack(-1))
    else:
        parts += [_KEY_LEN.pack(len(key)), key]
    parts.append(value)
    payload = b"".join(parts)
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> tuple[str, bytes | None, bytes]:
    (tlen,) = _TOPIC_LEN.unpack_from(payload, 0)
    pos = _TOPIC_LEN.size
    topic = payload[pos:pos + tlen].decode("utf-8")
    pos += tlen
    (klen,) = _KEY_LEN.unpack_from(payload, pos)
    pos += _KEY_LEN.size
    key: bytes | None = None
    if klen >= 0:
        key = payload[pos:pos + klen]
        pos += klen
    return topic, key, payload[pos:]


def scan_segment(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) of every intact record in a segment's bytes and the length of the intact prefix."""
    records: list[tuple[int, int]] = []
    pos = 0
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        start = pos + _HEAD.size
        end = start + length
        if length > MAX_RECORD or end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            _decode_payload(data[start:end])
        except (struct.error, UnicodeDecodeError):
            break
        records.append((pos, end))
        pos = end
    return records, pos


class Spool:
    """One process's spool folder. Open it with ``Spool.open(root, max_bytes)``."""

    def __init__(self, folder: Path, max_bytes: int, lock: IO[bytes], *, segment_bytes: int | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self._lock = lock
        self._sizes: dict[int, int] = {}
        self._writer: IO[bytes] | None = None
        self._committed = Position(0, 0)
        self._recover()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike[str], max_bytes: int, *, segment_bytes: int | None = None) -> Spool:
        """Takes the first spool folder under ``root`` no live process holds (so a restarted process
        replays its predecessor's events), or makes a new one."""
        base = Path(root)
        base.mkdir(parents=True, exist_ok=True)
        existing = sorted(int(p.name[2:]) for p in base.glob("p-*") if p.name[2:].isdigit())
        for n in [*existing, (max(existing) + 1) if existing else 0]:
            folder = base / f"p-{n}"
            folder.mkdir(exist_ok=True)
            lock = open(folder / "lock", "ab")  # held for the spool's lifetime
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            return cls(folder, max_bytes, lock, segment_bytes=segment_bytes)
        raise AssertionError("unreachable: a new spool folder is always free")  # pragma: no cover

    def _segment_path(self, n: int) -> Path:
        return self.folder / f"seg-{n:020d}.spool"

    def _recover(self) -> None:
        marker = self.folder / _MARKER
        if marker.exists():
            try:
                data = json.loads(marker.read_text(encoding="utf-8"))
                self._committed = Position(int(data["segment"]), int(data["offset"]))
            except (ValueError, KeyError, TypeError):
                log.error("spool %s: unreadable marker; replaying the whole spool (duplicates possible, "
                          "each keeps its event_id: see the duplicate_events view)", self.folder)
        for path in sorted(self.folder.glob("seg-*.spool")):
            n = int(path.stem[4:])
            data = path.read_bytes()
            _, intact = scan_segment(data)
            if intact < len(data):
                log.warning("spool %s: %d torn or corrupt bytes at the end of %s truncated (a crash "
                            "during a write leaves this)", self.folder, len(data) - intact, path.name)
                with open(path, "r+b") as f:
                    f.truncate(intact)
                    f.flush()
                    os.fsync(f.fileno())
            if n < self._committed.segment:
                path.unlink()
                continue
            self._sizes[n] = intact

    # -- writing ---------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """Appends a record; False (nothing written) when it would take the spool beyond max_bytes."""
        data = encode_record(topic, key, value)
        if self.size_bytes + len(data) > self.max_bytes:
            return False
        writer = self._current_writer(len(data))
        writer.write(data)
        writer.flush()
        last = max(self._sizes)
        self._sizes[last] += len(data)
        return True

    def _current_writer(self, needed: int) -> IO[bytes]:
        last = max(self._sizes) if self._sizes else None
        if last is None or (self._sizes[last] > 0 and self._sizes[last] + needed > self.segment_bytes):
            self._close_writer()
            last = (last + 1) if last is not None else max(self._committed.segment, 0)
            self._sizes[last] = 0
        if self._writer is None:
            self._writer = open(self._segment_path(last), "ab")
        return self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
            self._writer = None

    def sync(self) -> None:
        """fsyncs what was appended, so that it survives a power cut."""
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())

    # -- reading and committing ------------------------------------------------------------------

    def empty(self) -> bool:
        """True when every record appended is committed."""
        return all(self._sizes[n] <= self._start_in(n) for n in self._sizes)

    def _start_in(self, n: int) -> int:
        return self._committed.offset if n == self._committed.segment else 0

    def peek(self, max_records: int) -> list[SpooledRecord]:
        """Up to ``max_records`` uncommitted records, oldest first, without consuming them."""
        out: list[SpooledRecord] = []
        if self._writer is not None:
            self._writer.flush()
        for n in sorted(self._sizes):
            if n < self._committed.segment:
                continue
            start = self._start_in(n)
            if self._sizes[n] <= start:
                continue
            with open(self._segment_path(n), "rb") as f:
                f.seek(start)
                data = f.read(self._sizes[n] - start)
            records, _ = scan_segment(data)
            for begin, end in records:
                topic, key, value = _decode_payload(data[begin + _HEAD.size:end])
                out.append(SpooledRecord(topic, key, value, Position(n, start + end)))
                if len(out) >= max_records:
                    return out
        return out

    def commit(self, position: Position) -> None:
        """Marks every record up to ``position`` as delivered; deletes segments wholly behind it."""
        if position <= self._committed:
            return
        last = max(self._sizes) if self._sizes else None
        if last is not None and last == position.segment and self._sizes[last] <= position.offset:
            # everything delivered: the next append starts a fresh segment and the disk is freed
            self._close_writer()
            position = Position(last + 1, 0)
        self._committed = position
        marker = json.dumps({"segment": position.segment, "offset": position.offset}).encode("utf-8")
        replace_file(self.folder / _MARKER, lambda f: f.write(marker))
        for n in [n for n in self._sizes if n < position.segment]:
            self._segment_path(n).unlink(missing_ok=True)
            del self._sizes[n]

    def close(self) -> None:
        """fsyncs and releases the folder for the next process."""
        self._close_writer()
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        self._lock.close()
