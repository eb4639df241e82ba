"""Bad input: every malformed event ends in DecodeError or ValidationError, with a message that says
what and where and never contains the submitted value; the decoder is fuzzed with hypothesis.

On huge declared lengths: fastavro checks a declared length against the bytes actually there and
BytesIO never reads past its end, so a varint length of 2**40 in a small message ends in EOFError
(-> DecodeError) without allocating; the tests below measure that with tracemalloc. decode() adds no
bound on the input's size; each field is bounded (schemas.limits) the same way in every path.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamin.exceptions import DecodeError, ValidationError
from schemas import decode, default_registry, encode, from_json
from schemas.encoding import HEADER_SIZE, _surely_fits
from schemas.limits import MAX_MAP_ENTRIES, MAX_STRING, oversized

REGISTRY = default_registry()
RAW = REGISTRY.latest("http_request")
SECRET = "secret-value-ola@example.no"


def zigzag(n: int) -> bytes:
    """Avro's long encoding."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def avro_string(raw: bytes) -> bytes:
    return zigzag(len(raw)) + raw


def usage_event(search: bytes) -> bytes:
    """Hand-built raw usage_event v1 bytes: event_id, time, then the optional fields (union index 1 = set)."""
    schema = REGISTRY.get("usage_event", "raw", 1)
    body = avro_string(b"e-1") + zigzag(1_795_600_800_000)
    for name in schema.field_names[2:]:
        body += (zigzag(1) + avro_string(search)) if name == "search_terms" else zigzag(0)
    return b"\xc3\x01" + schema.fingerprint + body


def valid() -> bytes:
    _, record = from_json({"event": "http_request", "event_id": "e", "time": "2026-11-25T10:00:00Z",
                           "client_ip": SECRET, "user_agent": SECRET, "status": 200}, REGISTRY)
    return encode(RAW, record)


def assert_clean(error: Exception, *values: str) -> None:
    for value in (SECRET, *values):
        assert value not in str(error)


def test_the_hand_built_event_decodes() -> None:
    schema, record = decode(usage_event(b"shoes"), REGISTRY)
    assert (schema.key, record["search_terms"]) == ("raw/usage_event/v1", "shoes")


def test_empty_bytes() -> None:
    with pytest.raises(DecodeError, match="0 bytes without the 10-byte C3 01 header"):
        decode(b"", REGISTRY)


def test_not_bytes() -> None:
    with pytest.raises(DecodeError, match="got NoneType"):
        decode(None, REGISTRY)  # type: ignore[arg-type]


def test_bytes_without_the_header() -> None:
    with pytest.raises(DecodeError, match="without the 10-byte C3 01 header") as caught:
        decode(SECRET.encode() * 3, REGISTRY)
    assert_clean(caught.value)


def test_bytes_of_an_unknown_schema() -> None:
    data = b"\xc3\x01" + bytes(8) + valid()[HEADER_SIZE:]
    with pytest.raises(DecodeError, match="unknown schema fingerprint 0000000000000000") as caught:
        decode(data, REGISTRY)
    assert_clean(caught.value)


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_bytes_name_the_field_and_offset(cut: int) -> None:
    data = valid()[:-cut]
    with pytest.raises(DecodeError, match=r"raw/http_request/v2\.\w+: truncated: the body ends before the record "
                                          r"does at byte \d+ of \d+") as caught:
        decode(data, REGISTRY)
    assert_clean(caught.value, SECRET[: len(SECRET) - cut])


def test_truncated_inside_a_known_field() -> None:
    data = usage_event(b"x" * 40)[:-15]
    with pytest.raises(DecodeError, match="raw/usage_event/v1.search_terms: truncated"):
        decode(data, REGISTRY)


def test_trailing_bytes() -> None:
    data = valid()
    with pytest.raises(DecodeError, match=rf"3 trailing bytes after the record \(it ends at byte {len(data)}"):
        decode(data + b"abc", REGISTRY)


def test_invalid_utf8_inside_a_string() -> None:
    secret = b"ola\xff\xfe@example.no"
    data = usage_event(secret)
    with pytest.raises(DecodeError, match=r"raw/usage_event/v1\.search_terms: a string is not valid UTF-8 at byte "
                                          r"\d+") as caught:
        decode(data, REGISTRY)
    assert "ola" not in str(caught.value) and "xff" not in str(caught.value)


def test_a_string_of_10_mb_in_json() -> None:
    big = "a" * (10 * 1024 * 1024)
    with pytest.raises(ValidationError, match=f"http_request.url: longer than {MAX_STRING} characters") as caught:
        from_json({"event": "http_request", "time": "2026-11-25T10:00:00Z", "url": big}, REGISTRY)
    assert len(str(caught.value)) < 200


def test_a_string_of_10_mb_in_avro() -> None:
    with pytest.raises(DecodeError, match=f"raw/usage_event/v1.search_terms: longer than {MAX_STRING}") as caught:
        decode(usage_event(b"a" * (10 * 1024 * 1024)), REGISTRY)
    assert len(str(caught.value)) < 200


def test_a_string_of_10_mb_to_encode() -> None:
    with pytest.raises(ValidationError, match=f"raw/http_request/v2.url: longer than {MAX_STRING}"):
        encode(RAW, {"event_id": "e", "time": datetime.now(UTC), "url": "a" * (10 * 1024 * 1024)})


def test_too_many_map_entries_in_avro() -> None:
    record = {"event_id": "e", "time": datetime.now(UTC), "client_hints": {f"k{i}": "v" for i in range(100)}}
    with pytest.raises(ValidationError, match=f"client_hints: more than {MAX_MAP_ENTRIES} entries"):
        encode(RAW, record)


def test_an_over_long_map_entry_in_avro() -> None:
    record = {"event_id": "e", "time": datetime.now(UTC), "client_hints": {"sec-ch-ua": "v" * (MAX_STRING + 1)}}
    with pytest.raises(ValidationError, match=f"client_hints: an entry is longer than {MAX_STRING} characters"):
        encode(RAW, record)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4),
                    st.sampled_from(["a" * MAX_STRING, "a" * (MAX_STRING + 1)]),
                    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()),
                                    st.one_of(st.text(max_size=3), st.none(), st.just("b" * (MAX_STRING + 1))),
                                    max_size=MAX_MAP_ENTRIES + 2))


@given(st.dictionaries(st.text(max_size=3), _VALUES, max_size=4))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_size_check_never_passes_what_the_full_one_refuses(record: dict[str, Any]) -> None:
    if _surely_fits(record):
        assert oversized(record) is None


@pytest.mark.parametrize("record", [
    {"event_id": "e", "time": datetime.now(UTC), "status": SECRET},
    {"event_id": "e", "time": SECRET},
    {"event_id": "e", "time": datetime.now(UTC), "url": 5},
])
def test_encode_names_the_wrong_field_never_the_value(record: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"raw/http_request/v2: record does not fit.*field \w+ has the wrong "
                                              "type") as caught:
        encode(RAW, record)
    assert_clean(caught.value)


def test_encode_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(ValidationError, match="unknown field.*email"):
        encode(RAW, {"event_id": "e", "time": datetime.now(UTC), "email": SECRET})
    with pytest.raises(ValidationError, match="a required field is missing"):
        encode(RAW, {"event_id": "e"})


@pytest.mark.parametrize("length", [2**40, 2**62, -(2**40), -1])
def test_a_huge_or_negative_declared_length_allocates_nothing(length: int) -> None:
    schema = REGISTRY.get("usage_event", "raw", 1)
    data = b"\xc3\x01" + schema.fingerprint + zigzag(length) + b"abc"
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="raw/usage_event/v1.event_id"):
            decode(data, REGISTRY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


def test_a_huge_map_block_count_allocates_nothing() -> None:
    body = avro_string(b"e") + zigzag(0)
    fields = RAW.field_names
    for name in fields[2:]:
        body += (zigzag(1) + zigzag(2**40) + b"\x02k") if name == "client_hints" else zigzag(0)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="raw/http_request/v2.client_hints"):
            decode(b"\xc3\x01" + RAW.fingerprint + body, REGISTRY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADERS = [b"\xc3\x01" + s.fingerprint for s in REGISTRY]


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        decode(data, REGISTRY)
    except DecodeError:
        pass


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=300))
def test_fuzz_a_known_header_then_arbitrary_bytes(header: bytes, body: bytes) -> None:
    try:
        schema, record = decode(header + body, REGISTRY)
    except DecodeError:
        return
    assert set(record) == set(schema.field_names)


@FUZZ
@given(st.data())
def test_fuzz_mutated_and_truncated_valid_events(data: st.DataObject) -> None:
    original = bytearray(valid())
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(HEADER_SIZE, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(HEADER_SIZE, len(original)))
    inserted = data.draw(st.binary(max_size=8))
    mutated = bytes(original[:cut]) + inserted
    try:
        decode(mutated, REGISTRY)
    except DecodeError as exc:
        assert SECRET not in str(exc)
