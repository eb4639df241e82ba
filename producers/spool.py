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
- Failed writes: an append the disk refuses (full, I/O error) is rolled back (the segment truncated
  to where it was) and refused like an append beyond the bound: the caller counts it as dropped.
- Crash recovery and damage: on open every segment is scanned. A damaged record (bad length, CRC or
  payload) is skipped: the scan resynchronises on the next intact record, so one flipped byte costs
  one record, not the rest of the segment; each damaged stretch is counted (``damaged``) and logged
  with its byte count (never the content). Torn bytes at the end of a segment, as a crash mid-append
  leaves, are truncated away.
- Replay at most once per acknowledgement: the marker (producers.spool_marker) only moves forward over
  records the caller says the broker acknowledged, so a record is never skipped; it is overwritten in
  place, so it moves on a full disk too and a restart does not send acknowledged records again. A
  crash between the broker's ack and the marker's fsync can send the records of that one replay batch
  again (see producers.producer).
- Age: a segment takes appends for at most ``SPOOL_SEGMENT_ROLL`` (an hour) after its first write, and
  a reopened spool never appends to a segment a previous process wrote: so a segment's oldest record
  is at most that much older than its last write, which is what the retention inventory ages it by
  (`datamin.retention`: deleted before its oldest record passes ``producer.spool_retention_days``).
- Permissions: the folders are 0700 and the files 0600 (they hold full IP addresses and identifiers).

Not thread-safe: one thread (the producer's sender) owns a Spool.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from datamin.retention import SPOOL_SEGMENT_ROLL
from producers.spool_marker import Marker

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")
_TOPIC_LEN = struct.Struct("<H")
_KEY_LEN = struct.Struct("<i")
MAX_RECORD = 64 * 1024 * 1024
"""largest payload a record may have; a longer length field is corruption"""
_MIN_PAYLOAD = _TOPIC_LEN.size + _KEY_LEN.size


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


def _record_at(data: bytes, pos: int) -> int | None:
    """The end of the intact record starting at ``pos``, else None."""
    if pos + _HEAD.size > len(data):
        return None
    length, crc = _HEAD.unpack_from(data, pos)
    start = pos + _HEAD.size
    end = start + length
    if length < _MIN_PAYLOAD or length > MAX_RECORD or end > len(data):
        return None
    (tlen,) = _TOPIC_LEN.unpack_from(data, start)
    if tlen > length - _MIN_PAYLOAD or zlib.crc32(data[start:end]) != crc:
        return None
    try:
        _decode_payload(data[start:end])
    except (struct.error, UnicodeDecodeError):
        return None
    return int(end)


def scan_segment(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) of every intact record in a segment's bytes, and the end of the last one.

    A damaged stretch is skipped: the scan resynchronises on the next offset where an intact record
    starts. Bytes after the last intact record (a torn append) are not part of any record."""
    records: list[tuple[int, int]] = []
    pos = 0
    while pos + _HEAD.size <= len(data):
        end = _record_at(data, pos)
        if end is None:
            pos += 1
            continue
        records.append((pos, end))
        pos = end
    return records, records[-1][1] if records else 0


def damaged_stretches(records: list[tuple[int, int]], start: int = 0) -> list[tuple[int, int]]:
    """The (start, end) of the bytes between intact records (damage skipped by `scan_segment`)."""
    gaps = []
    pos = start
    for begin, end in records:
        if begin > pos:
            gaps.append((pos, begin))
        pos = end
    return gaps


class Spool:
    """One process's spool folder. Open it with ``Spool.open(root, max_bytes)``."""

    def __init__(self, folder: Path, max_bytes: int, lock: IO[bytes], *, segment_bytes: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self._monotonic = monotonic
        self._opened_at = 0.0
        """when (``monotonic``) the segment being appended to got its first append of this process"""
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self._lock = lock
        self._sizes: dict[int, int] = {}
        self._writer: int | None = None
        self._committed = Position(0, 0)
        self._marker = Marker(folder)
        self.damaged = 0
        """damaged stretches of records skipped since the spool was opened (each logged)"""
        self.refusal = ""
        """why the last refused append was refused"""
        self._recover()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike[str], max_bytes: int, *, segment_bytes: int | None = None,
             monotonic: Callable[[], float] = time.monotonic) -> Spool:
        """Takes the first spool folder under ``root`` no live process holds (so a restarted process
        replays its predecessor's events), or makes a new one."""
        base = Path(root)
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = sorted(int(p.name[2:]) for p in base.glob("p-*") if p.name[2:].isdigit())
        for n in [*existing, (max(existing) + 1) if existing else 0]:
            folder = base / f"p-{n}"
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)  # also a folder an older datamin made world-readable
            lock = os.fdopen(os.open(folder / "lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            return cls(folder, max_bytes, lock, segment_bytes=segment_bytes, monotonic=monotonic)
        raise AssertionError("unreachable: a new spool folder is always free")  # pragma: no cover

    def _segment_path(self, n: int) -> Path:
        return self.folder / f"seg-{n:020d}.spool"

    def _recover(self) -> None:
        committed = self._marker.read()
        if committed is not None:
            self._committed = Position(*committed)
        for path in sorted(self.folder.glob("seg-*.spool")):
            n = int(path.stem[4:])
            if n < self._committed.segment:
                path.unlink()
                continue
            path.chmod(0o600)
            data = path.read_bytes()
            start = self._start_in(n)
            records, end_of_records = scan_segment(data[start:])
            intact = start + end_of_records
            for begin, end in damaged_stretches(records):
                self.damaged += 1
                log.error("spool %s: %d damaged bytes at offset %d of %s skipped (the records around them are "
                          "kept); the events in them are lost", self.folder, end - begin, start + begin, path.name)
            if intact < len(data):
                log.warning("spool %s: %d torn or corrupt bytes at the end of %s truncated (a crash "
                            "during a write leaves this)", self.folder, len(data) - intact, path.name)
                with open(path, "r+b") as f:
                    f.truncate(intact)
                    f.flush()
                    os.fsync(f.fileno())
            self._sizes[n] = intact
        self._marker.prepare()

    # -- writing ---------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """Appends a record; False (nothing written, ``refusal`` says why) when it would take the spool
        beyond max_bytes or the disk refuses the write (then what was written of it is rolled back)."""
        data = encode_record(topic, key, value)
        if self.size_bytes + len(data) > self.max_bytes:
            self.refusal = "the spool is full (producer.spool_max_bytes)"
            return False
        try:
            n, fd = self._current_writer(len(data))
        except OSError as exc:
            return self._refuse(exc)
        before = self._sizes[n]
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as exc:
            try:
                os.ftruncate(fd, before)
            except OSError:  # the tail stays; the scan skips it as damage
                self._sizes[n] = os.fstat(fd).st_size
            return self._refuse(exc)
        self._sizes[n] = before + len(data)
        return True

    def _refuse(self, exc: OSError) -> bool:
        self.refusal = f"the spool cannot be written ({exc.strerror or exc}: is the disk of producer.spool_dir full?)"
        return False

    def _current_writer(self, needed: int) -> tuple[int, int]:
        last = max(self._sizes) if self._sizes else None
        now = self._monotonic()
        if last is None or (self._sizes[last] > 0 and (
                self._writer is None  # written by an earlier process (or closed): never appended to again
                or self._sizes[last] + needed > self.segment_bytes
                or now - self._opened_at > SPOOL_SEGMENT_ROLL.total_seconds())):
            self._close_writer()
            last = (last + 1) if last is not None else max(self._committed.segment, 0)
        if self._writer is None:
            self._writer = os.open(self._segment_path(last), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._sizes.setdefault(last, 0)
            self._opened_at = now
        return last, self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            fd, self._writer = self._writer, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def sync(self) -> None:
        """fsyncs what was appended, so that it survives a power cut."""
        if self._writer is not None:
            os.fsync(self._writer)

    # -- reading and committing ------------------------------------------------------------------

    def empty(self) -> bool:
        """True when every record appended is committed."""
        return all(self._sizes[n] <= self._start_in(n) for n in self._sizes)

    def _start_in(self, n: int) -> int:
        return self._committed.offset if n == self._committed.segment else 0

    def peek(self, max_records: int) -> list[SpooledRecord]:
        """Up to ``max_records`` uncommitted records, oldest first, without consuming them."""
        out: list[SpooledRecord] = []
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
        if not self._marker.write(position.segment, position.offset):
            return  # keep the segments: after a restart they are replayed from the last marker written
        for n in [n for n in self._sizes if n < position.segment]:
            self._segment_path(n).unlink(missing_ok=True)
            del self._sizes[n]

    def close(self) -> None:
        """fsyncs and releases the folder for the next process."""
        self._close_writer()
        self._marker.close()
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        self._lock.close()
