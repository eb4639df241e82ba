"""What producers and a `datamin agent` say to each other over the agent's Unix socket (pure: no I/O).

A stream of frames, little-endian::

    u32 length of what follows | u8 kind | body

    kind E (events):        repeated  u16 topic length | i32 key length (-1 = no key) | u32 value length
                                      | topic (UTF-8) | key | value
    kind F (flush request): u32 request id | u32 milliseconds the producer waits
    kind f (flush answer):  u32 request id | u8 1 when every event the agent took before it is
                            acknowledged by Kafka or in the agent's spool, else 0

A frame counts only when it came whole: one cut short (the producer timed out, the agent stopped)
is discarded by the agent, and the producer sends its events another way.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from producers.queue import Bytes, Message

EVENTS, FLUSH, FLUSHED = b"E", b"F", b"f"
MAX_FRAME = 64 * 1024 * 1024
"""longest frame a reader accepts; a longer length field means the stream is not datamin's"""
FRAME_TARGET = 1024 * 1024
"""producers start a new events frame once one holds this many bytes"""

_HEAD = struct.Struct("<IB")
_RECORD = struct.Struct("<HiI")
_FLUSH = struct.Struct("<II")
_FLUSHED = struct.Struct("<IB")


class WireError(ValueError):
    """The peer sent something that is not this protocol; the connection is closed."""


def events_frames(messages: list[Message], topic_bytes: dict[str, bytes]) -> Iterator[tuple[int, bytes]]:
    """The frames carrying ``messages`` in order, each with the number of messages it carries.
    ``topic_bytes`` caches the topics' UTF-8 forms between calls."""
    pack = _RECORD.pack
    parts: list[bytes] = []
    size = count = 0
    for topic, key, value in messages:
        t = topic_bytes.get(topic)
        if t is None:
            t = topic_bytes[topic] = topic.encode("utf-8")
        if key is None:
            parts += (pack(len(t), -1, len(value)), t, value)
            size += _RECORD.size + len(t) + len(value)
        else:
            parts += (pack(len(t), len(key), len(value)), t, key, value)
            size += _RECORD.size + len(t) + len(key) + len(value)
        count += 1
        if size >= FRAME_TARGET:
            yield count, _frame(EVENTS, b"".join(parts), size)
            parts, size, count = [], 0, 0
    if count:
        yield count, _frame(EVENTS, b"".join(parts), size)


def flush_frame(request: int, wait_ms: int) -> bytes:
    """A flush request; a wait past what a u32 holds (``flush()`` without a timeout) is sent as the most
    it holds, 49 days: the agent waits at most `producers.agent.FLUSH_WAIT_MAX_S` anyway."""
    return _frame(FLUSH, _FLUSH.pack(request, min(wait_ms, 0xFFFFFFFF)), _FLUSH.size)


def flushed_frame(request: int, ok: bool) -> bytes:
    return _frame(FLUSHED, _FLUSHED.pack(request, ok), _FLUSHED.size)


def _frame(kind: bytes, body: bytes, size: int) -> bytes:
    if size + 1 > MAX_FRAME:
        raise WireError(f"a frame of {size} bytes is over the {MAX_FRAME} a reader takes")
    return _HEAD.pack(size + 1, kind[0]) + body


def read_events(body: bytes | memoryview) -> list[Bytes]:
    """The messages of an events frame's body."""
    out: list[Bytes] = []
    view = memoryview(body)
    pos, end = 0, len(view)
    unpack = _RECORD.unpack_from
    try:
        while pos < end:
            t_len, k_len, v_len = unpack(view, pos)
            pos += _RECORD.size
            if k_len < -1 or pos + t_len + max(k_len, 0) + v_len > end:
                raise WireError("an event runs past the end of its frame")
            topic = str(view[pos:pos + t_len], "utf-8")
            pos += t_len
            key = None
            if k_len >= 0:
                key = bytes(view[pos:pos + k_len])
                pos += k_len
            value = bytes(view[pos:pos + v_len])
            pos += v_len
            out.append(Bytes(topic, key, value))
    except (struct.error, UnicodeDecodeError) as exc:
        raise WireError(f"an events frame does not parse ({exc})") from None
    return out


def read_flush(body: bytes | memoryview) -> tuple[int, int]:
    """(request id, milliseconds) of a flush request."""
    if len(body) != _FLUSH.size:
        raise WireError("a flush request of the wrong size")
    request, wait_ms = _FLUSH.unpack(body)
    return request, wait_ms


def read_flushed(body: bytes | memoryview) -> tuple[int, bool]:
    """(request id, ok) of a flush answer."""
    if len(body) != _FLUSHED.size:
        raise WireError("a flush answer of the wrong size")
    request, ok = _FLUSHED.unpack(body)
    return request, bool(ok)


class FrameReader:
    """Cuts a byte stream into frames: ``feed`` what ``recv`` gave, then take the whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = _HEAD.size
        """bytes the buffer must hold before another frame can be whole"""

    @property
    def partial(self) -> int:
        """bytes of a frame not yet whole"""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[bytes, memoryview]]:
        """Adds ``data``; the (kind, body) of every frame now whole, in order."""
        self._buf += data
        if len(self._buf) < self._need:  # a long frame arriving in pieces: do not re-read it each time
            return []
        frames: list[tuple[bytes, memoryview]] = []
        buf = bytes(self._buf)
        pos = 0
        while len(buf) - pos >= _HEAD.size:
            length, kind = _HEAD.unpack_from(buf, pos)
            if not 1 <= length <= MAX_FRAME:
                raise WireError(f"a frame length of {length} bytes: this is not a datamin producer")
            if len(buf) - pos - 4 < length:
                self._need = 4 + length
                break
            frames.append((bytes((kind,)), memoryview(buf)[pos + _HEAD.size:pos + 4 + length]))
            pos += 4 + length
        else:
            self._need = _HEAD.size
        del self._buf[:pos]
        return frames
