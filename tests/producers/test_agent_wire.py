"""The producer-agent wire format: events and flushes survive the trip in any cutting of the stream, and
what is not datamin's protocol is refused."""

from __future__ import annotations

import pytest

from producers.agent_wire import (
    EVENTS,
    FLUSH,
    FLUSHED,
    FRAME_TARGET,
    FrameReader,
    WireError,
    events_frames,
    flush_frame,
    flushed_frame,
    read_events,
    read_flush,
    read_flushed,
)

MESSAGES = [("t.raw.usage_event", b"subject-1", b"\x00\x01avro"), ("t.raw.http_request", None, b""),
            ("t.dead-letter", "nøkkel".encode(), b"x" * 1000)]


def _frames(stream: bytes, step: int) -> list[tuple[bytes, bytes]]:
    reader = FrameReader()
    out = []
    for i in range(0, len(stream), step):
        out += [(kind, bytes(body)) for kind, body in reader.feed(stream[i:i + step])]
    assert reader.partial == 0
    return out


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_events_and_flushes_come_out_as_they_went_in_however_the_stream_is_cut(step: int) -> None:
    [(count, frame)] = list(events_frames(MESSAGES, {}))
    assert count == len(MESSAGES)
    stream = frame + flush_frame(7, 2500) + flushed_frame(7, True) + flushed_frame(8, False)
    frames = _frames(stream, step)
    assert [kind for kind, _ in frames] == [EVENTS, FLUSH, FLUSHED, FLUSHED]
    assert read_events(frames[0][1]) == MESSAGES
    assert read_flush(frames[1][1]) == (7, 2500)
    assert read_flushed(frames[2][1]) == (7, True)
    assert read_flushed(frames[3][1]) == (8, False)


def test_big_batches_are_cut_into_frames_that_keep_their_order() -> None:
    messages = [("t.raw.usage_event", None, i.to_bytes(4, "big") * 25_000) for i in range(30)]
    frames = list(events_frames(messages, {}))
    assert len(frames) > 1 and sum(count for count, _ in frames) == 30
    assert all(len(frame) < 2 * FRAME_TARGET for _, frame in frames)
    got = [m for kind, body in _frames(b"".join(f for _, f in frames), 65536) for m in read_events(body)]
    assert got == messages


def test_a_frame_cut_short_yields_nothing() -> None:
    [(_, frame)] = list(events_frames(MESSAGES, {}))
    reader = FrameReader()
    assert reader.feed(frame[:-1]) == []
    assert reader.partial == len(frame) - 1


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x00E", b"\xff\xff\xff\xffE"])
def test_a_stream_that_is_not_the_protocol_is_refused(garbage: bytes) -> None:
    with pytest.raises(WireError):
        FrameReader().feed(garbage)


def test_an_event_running_past_its_frame_is_refused() -> None:
    [(_, frame)] = list(events_frames(MESSAGES[:1], {}))
    body = frame[5:]
    with pytest.raises(WireError):
        read_events(body[:-3])
    with pytest.raises(WireError):
        read_events(b"\x05\x00\xfe\xff\xff\xff\x00\x00\x00\x00topic")  # key length -2


def test_a_flush_without_a_timeout_asks_for_the_longest_wait_the_frame_holds() -> None:
    [(kind, body)] = FrameReader().feed(flush_frame(3, 10**15))  # flush(None): a deadline 1e9 s away
    assert kind == FLUSH and read_flush(body) == (3, 0xFFFFFFFF)
