"""The log shipper behind ``datamin ship-logs PATH…``: tails access logs into http_request events.

For each path it keeps a state file in ``state_dir`` (inode and byte offset of the next line), written
atomically only after every event before that offset was handed to the EventProducer and the
producer's ``flush`` confirmed them acknowledged by Kafka or fsynced to its spool. So a restart
neither re-reads nor skips a line; a crash between the flush and the state write re-reads at most
the lines since the last checkpoint, and those carry the same ``event_id`` as the first time (derived
from host, path, inode and offset), so the warehouse's ``duplicate_events`` view shows them and
``count(DISTINCT event_id)`` counts them once.

The state also holds a fingerprint of the file: a SHA-256 of its first bytes (up to ``FINGERPRINT_BYTES``,
never past the offset). It tells the file read so far from another one that took its name or its inode.

Rotation: by rename (the path names a new inode) the old file is read to its end, then the new one
from its start. By copytruncate (the file shrinks below the offset, or its first bytes change) the
file is read again from 0 — after the rest of the copy: the lines written between the last read and
the copy are in ``access.log.1``, found beside the path by its fingerprint and read from the saved
offset first. Both are also noticed at start-up, when the rotation happened while the shipper was
stopped (the old inode, or a copy with the same first bytes, is looked for among ``access.log*``;
compressed copies cannot be read and are not found). What copytruncate itself loses is outside any
reader's reach: lines the server writes after the copy was taken and before the truncation are in
neither file (logrotate's documented race); prefer rename rotation with a reopen signal (nginx:
``kill -USR1``; logrotate's ``postrotate``) where losing a line matters.

Lines that are not access-log lines, binary garbage and lines longer than
``max_line`` bytes are counted and sent to the dead-letter topic as
``{"source", "line_number", "reason", "stage": "shipper"}`` — never the line itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from datamin.config import Config
from datamin.event_time import check_event_time
from datamin.exceptions import DecodeError, EventTimeError
from datamin.files import replace_file
from datamin.kafka import dead_letter_note
from datamin.topics import Topics
from producers.logformat import parse_line

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5b1f5d0e-7c1d-4d0c-9a57-1c0ffee0da7a")


@dataclass
class ShipProgress:
    path: str
    lines: int = 0
    """lines read from this path in this run"""
    events: int = 0
    bad_lines: int = 0
    bytes_read: int = 0
    offset: int = 0
    size: int = 0
    """size of the file being read"""
    started: float = field(default_factory=time.monotonic)
    name: str = ""
    """the file being read: the path's name, or a rotated copy's (``access.log.1``) while that is finished"""


@dataclass(frozen=True)
class ShipResult:
    lines: int
    events: int
    bad_lines: int
    bytes_read: int


def stderr_progress(interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                    stream: IO[str] | None = None) -> Callable[[ShipProgress], None]:
    """A progress printer for a terminal: one line naming every file with its lines, lines/s and % read,
    at most once per ``interval`` and only when something was read since the last line (idle: silent)."""
    last = [-1e18]
    latest: dict[str, ShipProgress] = {}
    shown: dict[str, int] = {}

    def show(p: ShipProgress) -> None:
        latest[p.path] = p
        now = clock()
        if now - last[0] < interval or all(shown.get(k, -1) == v.lines for k, v in latest.items()):
            return
        last[0] = now
        parts = []
        for q in latest.values():
            elapsed = max(now - q.started, 1e-9)
            pct = 100.0 * q.offset / q.size if q.size else 100.0
            parts.append(f"{q.name or Path(q.path).name}: {q.lines:,} lines ({q.lines / elapsed:,.0f}/s), "
                         f"{pct:5.1f}% of file, {q.bad_lines:,} unparsable")
            shown[q.path] = q.lines
        print("\r" + " | ".join(parts) + "\x1b[K", end="", file=stream or sys.stderr, flush=True)

    return show


FINGERPRINT_BYTES = 4096
"""How many of a log's first bytes its fingerprint covers."""


def fingerprint(fd: int, length: int) -> str:
    """SHA-256 (hex) of the first ``length`` bytes of the open file ``fd`` ("" when it is shorter)."""
    data = os.pread(fd, length, 0) if length > 0 else b""
    return hashlib.sha256(data).hexdigest() if len(data) == length else ""


def _file_fingerprint(path: Path, length: int) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return fingerprint(fd, length)
    finally:
        os.close(fd)


def _state_path(state_dir: Path, path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]
    return state_dir / f"{path.name[:40]}.{digest}.state"


def _load_state(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return {"dev": int(data["dev"]), "inode": int(data["inode"]), "offset": int(data["offset"]),
                "line_number": int(data["line_number"]), "fp_len": int(data.get("fp_len", 0)),
                "fp": str(data.get("fp", ""))}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        log.error("shipper state %s is unreadable; starting that log from its beginning", file)
        return None


def _save_state(file: Path, state: dict[str, Any]) -> None:
    replace_file(file, lambda f: f.write(json.dumps(state).encode("utf-8")))


class _Tail:
    """One log path: its open file, position and state."""

    def __init__(self, path: Path, state_dir: Path, sink: Any, topics: Topics, *, max_line: int,
                 flush_timeout: float, progress: Callable[[ShipProgress], None] | None,
                 check_time: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.check_time = check_time
        """raises EventTimeError for a line dated in the future or past its table's retention"""
        self.state_file = _state_path(state_dir, path)
        self.sink = sink
        self.dead_letter = topics.dead_letter
        self.max_line = max_line
        self.flush_timeout = flush_timeout
        self.progress = progress
        self.stats = ShipProgress(str(path))
        self.file: IO[bytes] | None = None
        self.dev = self.inode = self.offset = self.line_number = 0
        self.saved_offset = -1
        self.buffer = b""
        self.skipping = False
        self.skip_start = 0
        """while ``skipping``: the file offset where the over-long line began (what a checkpoint saves)"""
        self.host = socket.gethostname()
        self.fp_len = 0
        self.fp = ""
        """fingerprint of the first ``fp_len`` bytes of the file being read"""

    # -- opening and rotation --------------------------------------------------------------------

    def open(self) -> bool:
        """Opens the path, resuming from the saved state (finishing a rotated predecessor first)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        state = _load_state(self.state_file)
        if state is not None:
            same_inode = (state["dev"], state["inode"]) == (st.st_dev, st.st_ino)
            if same_inode and state["offset"] <= st.st_size and self._same_start(self.path, state):
                self._attach(self.path, state["offset"], state["line_number"], state)
                return True
            old = self._find_rotated(state)
            if old is not None:
                log.info("shipper: %s was rotated while stopped; reading the rest of %s first",
                         self.path.name, old.name)
                self._finish(old, state["offset"], state["line_number"])
            elif same_inode:
                log.warning("shipper: %s was truncated while stopped (copytruncate) and its copy was not found "
                            "beside it; reading it from the start", self.path.name)
        self._attach(self.path, 0, 0)
        return True

    def _same_start(self, path: Path, state: dict[str, Any]) -> bool:
        return not state["fp"] or _file_fingerprint(path, state["fp_len"]) == state["fp"]

    def _find_rotated(self, state: dict[str, Any]) -> Path | None:
        """The file the saved position belongs to, beside the path: its old inode (renamed away), else a
        copy with the same first bytes at least as long as the offset (copytruncate)."""
        copies: list[Path] = []
        for candidate in sorted(self.path.parent.glob(self.path.name + "?*")):
            try:
                st = candidate.stat()
            except OSError:
                continue
            if not candidate.is_file() or st.st_size < state["offset"] or not self._same_start(candidate, state):
                continue
            if (st.st_dev, st.st_ino) == (state["dev"], state["inode"]):
                return candidate
            if state["fp"]:
                copies.append(candidate)
        return copies[0] if copies else None

    def _finish(self, path: Path, offset: int, line_number: int) -> None:
        """Reads ``path`` from ``offset`` to its end (a rotated file: it will not grow any more)."""
        keep = self.dev, self.inode
        self._attach(path, offset, line_number)
        self.read_available(final=True)
        self.close()
        self.dev, self.inode = keep

    def _attach(self, path: Path, offset: int, line_number: int, state: dict[str, Any] | None = None) -> None:
        self.file = open(path, "rb")  # kept open while tailing
        st = os.fstat(self.file.fileno())
        self.dev, self.inode = st.st_dev, st.st_ino
        self.file.seek(offset)
        self.offset, self.line_number = offset, line_number
        self.buffer, self.skipping = b"", False
        self.stats.size = st.st_size
        self.fp_len, self.fp = (state["fp_len"], state["fp"]) if state and state["fp"] else (0, "")
        self.stats.name = path.name

    def _update_fingerprint(self) -> None:
        """Extends the fingerprint over newly read bytes until it covers FINGERPRINT_BYTES."""
        want = min(FINGERPRINT_BYTES, self.offset)
        if self.file is not None and want > self.fp_len:
            fp = fingerprint(self.file.fileno(), want)
            if fp:
                self.fp_len, self.fp = want, fp

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def check_rotation(self) -> None:
        """At the end of the file while following: switch to a renamed-in file or restart a truncated one."""
        if self.file is None:
            self.open()
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return  # renamed away and not yet re-created: keep the old one
        if (st.st_dev, st.st_ino) != (self.dev, self.inode):
            self.read_available(final=True)  # finish the old file (a last line without newline too)
            self.checkpoint()
            self.close()
            log.info("shipper: %s was rotated (rename); following the new file", self.path.name)
            self._attach(self.path, 0, 0)
            self.saved_offset = -1
            self.checkpoint(force=True)
        elif st.st_size < self.offset or (self.fp_len and fingerprint(self.file.fileno(), self.fp_len) != self.fp):
            log.warning("shipper: %s was truncated (copytruncate); reading the rest of its copy, then it from "
                        "the start", self.path.name)
            state = {"dev": self.dev, "inode": self.inode, "offset": self.offset, "fp_len": self.fp_len,
                     "fp": self.fp}
            copy = self._find_rotated(state) if self.fp else None
            if copy is not None and (copy.stat().st_dev, copy.stat().st_ino) != (self.dev, self.inode):
                file, self.file = self.file, None
                self._finish(copy, self.offset, self.line_number)
                self.file = file
                self.stats.name = self.path.name
            self.file.seek(0)
            self.offset, self.buffer, self.skipping = 0, b"", False
            self.fp_len, self.fp = 0, ""
            self.checkpoint(force=True)

    # -- reading ---------------------------------------------------------------------------------

    def read_available(self, *, final: bool = False, chunk: int = 1 << 20, checkpoint_lines: int = 50_000) -> int:
        """Reads and publishes every complete line available; returns the lines read. With ``final``
        a last line without a newline counts too (the file will not grow any more)."""
        if self.file is None:
            return 0
        total = 0
        since_checkpoint = 0
        while True:
            data = self.file.read(chunk)
            if not data:
                break
            self.stats.bytes_read += len(data)
            n = self._feed(data)
            total += n
            since_checkpoint += n
            if since_checkpoint >= checkpoint_lines:
                self.checkpoint()
                since_checkpoint = 0
            self._report()
        if final and (self.buffer or self.skipping):
            end = self.offset + len(self.buffer)
            self.stats.lines += 1
            if self.skipping:
                self._bad("line longer than the limit")
            else:
                self._line(self.buffer, end)
            self.offset, self.buffer, self.skipping = end, b"", False
            total += 1
        self._report()
        if self.fp_len < FINGERPRINT_BYTES:
            self._update_fingerprint()
        return total

    def _feed(self, data: bytes) -> int:
        lines = 0
        start = 0
        base = self.offset  # the file position of data[0]: the buffer holds the bytes from offset on
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                rest = data[start:]
                if self.skipping:
                    self.offset = base + len(data)
                elif len(rest) > self.max_line:
                    self.skipping = True
                    self.skip_start = base + start
                    self.offset = base + len(data)
                else:
                    self.buffer = rest
                    self.offset = base + start
                return lines
            end = base + nl + 1
            self.stats.lines += 1
            if self.skipping:
                self.skipping = False
                self.line_number += 1
                self._bad_numbered("line longer than the limit")
            elif nl - start > self.max_line:
                self.line_number += 1
                self._bad_numbered("line longer than the limit")
            else:
                self._line(data[start:nl], end)
            lines += 1
            self.offset = end
            start = nl + 1

    def _line(self, raw: bytes, end: int) -> None:
        self.line_number += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            record = parse_line(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self._bad_numbered("not UTF-8 text (binary data)")
            return
        except DecodeError as exc:
            self._bad_numbered(str(exc))
            return
        if self.check_time is not None:
            try:
                self.check_time(record)
            except EventTimeError as exc:
                self._bad_numbered(str(exc))
                return
        record["event_id"] = str(uuid.uuid5(_NAMESPACE, f"{self.host}:{self.path}:{self.dev}:{self.inode}:{end}"))
        if self.sink.publish("http_request", record, timeout=self.flush_timeout):  # wait for room, never drop
            self.stats.events += 1

    def _bad(self, reason: str) -> None:
        self.line_number += 1
        self._bad_numbered(reason)

    def _bad_numbered(self, reason: str) -> None:
        self.stats.bad_lines += 1
        note = dead_letter_note("shipper", self.path.name, reason, line_number=self.line_number)
        self.sink.publish_bytes(self.dead_letter, note, timeout=self.flush_timeout)

    def _report(self) -> None:
        self.stats.offset = self.offset
        if self.file is not None and self.offset > self.stats.size:
            self.stats.size = self.offset
        if self.progress is not None:
            self.progress(self.stats)

    def checkpoint(self, force: bool = False) -> bool:
        """Flushes the producer and, once it confirms, saves the position. False when not saved."""
        if self.offset == self.saved_offset and not force:
            return True
        if not self.sink.flush(self.flush_timeout):
            log.warning("shipper: the producer did not confirm within %.0f s; position of %s not saved yet",
                        self.flush_timeout, self.path.name)
            return False
        # in the middle of an over-long line, save where it began: a restart then reads it again and
        # dead-letters it, instead of losing it or taking its tail for a line of its own
        offset = self.skip_start if self.skipping else self.offset
        self._update_fingerprint()
        _save_state(self.state_file, {"dev": self.dev, "inode": self.inode, "offset": offset,
                                      "line_number": self.line_number, "fp_len": self.fp_len, "fp": self.fp})
        self.saved_offset = self.offset
        return True


def ship_logs(config: Config, paths: Iterable[str | os.PathLike[str]], *, state_dir: str | os.PathLike[str],
              follow: bool = False, stop: threading.Event | None = None,
              progress: Callable[[ShipProgress], None] | None = None, producer: Any = None,
              max_line: int = 64 * 1024, poll_interval: float = 0.5, flush_timeout: float = 30.0,
              clock: Callable[[], datetime] | None = None) -> ShipResult:
    """Ships the access logs at ``paths`` as http_request events (see the module docstring).

    Without ``follow`` it reads each file to its end and returns; with it, it keeps following until
    ``stop`` is set. ``producer`` defaults to a new EventProducer on ``config`` (closed at the end). A
    line dated beyond the clock skew in the future or older than the table's retention (at ``clock()``)
    is dead-lettered with the reason."""
    from producers.producer import EventProducer

    stop = stop or threading.Event()
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    own = producer is None
    sink = producer if producer is not None else EventProducer(config)
    topics = Topics(config)
    now = clock or (lambda: datetime.now(UTC))

    def check_time(record: dict[str, Any]) -> None:
        check_event_time(config, "http_request", record, now())

    tails = [_Tail(Path(p), state, sink, topics, max_line=max_line, flush_timeout=flush_timeout, progress=progress,
                   check_time=check_time) for p in paths]
    try:
        for tail in tails:
            if not tail.open():
                log.warning("shipper: %s does not exist%s", tail.path, "; waiting for it" if follow else "")
        while True:
            for tail in tails:
                tail.read_available(final=not follow)
                tail.checkpoint()
                if follow:
                    tail.check_rotation()
            if not follow or stop.wait(poll_interval):
                break
        for tail in tails:
            tail.checkpoint()
    finally:
        for tail in tails:
            tail.close()
        if own:
            sink.close(flush_timeout)
        if progress is not None:
            print(file=sys.stderr)
    return ShipResult(lines=sum(t.stats.lines for t in tails),
                      events=sum(t.stats.events for t in tails), bad_lines=sum(t.stats.bad_lines for t in tails),
                      bytes_read=sum(t.stats.bytes_read for t in tails))
