"""The spool's marker: the position up to which the broker acknowledged the spooled records, kept so
that moving it never needs free disk space.

The file ``position`` is created once (64 bytes) and from then on only overwritten in place, so a
commit works on a full disk, where a new file (temp file and rename) cannot be created: that is how a
restart on a full disk knows what Kafka already has and does not send it again. Two 32-byte slots are
written alternately, each ``u64 sequence | u64 segment | u64 offset | u32 CRC-32 of those | 4 zero
bytes``; a reader takes the valid slot with the higher sequence, so a write torn by a crash leaves the
previous position readable. (On a copy-on-write file system an overwrite can still need space.)

A spool written by an older datamin has a JSON ``committed`` file instead: it is read once and
converted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from datamin.files import replace_file, sync_dir

log = logging.getLogger(__name__)

MARKER_FILE = "position"
LEGACY_MARKER_FILE = "committed"
_SLOT = struct.Struct("<QQQI4x")
_FIELDS = struct.Struct("<QQQ")


def encode_slot(sequence: int, segment: int, offset: int) -> bytes:
    """One slot's 32 bytes."""
    fields = _FIELDS.pack(sequence, segment, offset)
    return _SLOT.pack(sequence, segment, offset, zlib.crc32(fields))


def decode_slot(data: bytes) -> tuple[int, int, int] | None:
    """(sequence, segment, offset) of a slot, or None when it is empty or damaged."""
    if len(data) != _SLOT.size:
        return None
    sequence, segment, offset, crc = _SLOT.unpack(data)
    if sequence == 0 or zlib.crc32(_FIELDS.pack(sequence, segment, offset)) != crc:
        return None
    return sequence, segment, offset


class Marker:
    """The position file of one spool folder; not thread-safe (the spool's owner uses it)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MARKER_FILE
        self._legacy = folder / LEGACY_MARKER_FILE
        self._fd: int | None = None
        self._sequence = 0

    def read(self) -> tuple[int, int] | None:
        """(segment, offset) last written, or None when there is none (or nothing readable)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return self._read_legacy()
        slots = [decode_slot(data[i:i + _SLOT.size]) for i in (0, _SLOT.size)]
        valid = [s for s in slots if s is not None]
        if not valid:
            if any(data):
                log.error("spool %s: unreadable marker; replaying the whole spool (duplicates possible, each keeps "
                          "its event_id: see the duplicate_events view)", self.path.parent)
            return None
        sequence, segment, offset = max(valid)
        self._sequence = sequence
        return segment, offset

    def _read_legacy(self) -> tuple[int, int] | None:
        try:
            data = json.loads(self._legacy.read_text(encoding="utf-8"))
            return int(data["segment"]), int(data["offset"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            log.error("spool %s: unreadable marker; replaying the whole spool (duplicates possible, each keeps "
                      "its event_id: see the duplicate_events view)", self.path.parent)
            return None

    def prepare(self) -> bool:
        """Creates the position file (mode 0600) if missing, while there is room; True when it is ready."""
        if self._fd is not None:
            return True
        try:
            if not self.path.exists():
                replace_file(self.path, _empty_slots)
            self._fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            log.error("spool %s: cannot create its marker (%s); until it can, a restart may send acknowledged "
                      "events again", self.path.parent, exc.strerror)
            return False
        return True

    def write(self, segment: int, offset: int) -> bool:
        """Records the position (in place, fsynced); False (logged) when it could not be."""
        if not self.prepare():
            return False
        assert self._fd is not None
        self._sequence += 1
        try:
            os.pwrite(self._fd, encode_slot(self._sequence, segment, offset), (self._sequence % 2) * _SLOT.size)
            os.fsync(self._fd)
        except OSError as exc:
            log.error("spool %s: cannot write its marker (%s); a restart may send acknowledged events again",
                      self.path.parent, exc.strerror)
            return False
        if self._legacy.exists():
            with contextlib.suppress(OSError):
                self._legacy.unlink()
                sync_dir(self.path.parent)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _empty_slots(f: BinaryIO) -> None:
    os.fchmod(f.fileno(), 0o600)
    f.write(bytes(2 * _SLOT.size))
