"""The JSON form of events (from_json / to_json) and schema evolution (http_request v1 -> v2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamin.exceptions import ValidationError
from schemas import decode, default_registry, encode, from_json, to_json

REGISTRY = default_registry()


def http(**fields: Any) -> dict[str, Any]:
    return {"event": "http_request", "time": "2026-11-25T10:00:00Z", "client_ip": "203.0.113.7", **fields}


def test_round_trip_json_record_bytes_record_json() -> None:
    obj = http(event_id="e-1", version=2, status=404, duration_ms=3.25, bytes_sent=2**40, do_not_track=True,
               client_hints={"Sec-CH-UA-Mobile": "?0"}, time="2026-11-25T10:00:00.123Z", tls_version="TLSv1.3")
    schema, record = from_json(obj, REGISTRY)
    again, decoded = decode(encode(schema, record), REGISTRY)
    assert again is schema
    assert decoded == record
    out = to_json(again, decoded)
    assert {k: v for k, v in out.items() if v is not None} == obj
    assert from_json(out, REGISTRY) == (schema, record)


def test_minimised_round_trip() -> None:
    obj = {"event": "usage_event", "version": 1, "event_id": "e-2", "time": "2026-01-01T00:00:00.000Z",
           "kind": "search", "search_terms": "[email]", "subject": None}
    schema, record = from_json(obj, REGISTRY, kind="minimised")
    assert schema.key == "minimised/usage_event/v1"
    assert decode(encode(schema, record), REGISTRY) == (schema, record)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T11:00:00+01:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T05:30:00-04:30", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    (1795600800000, datetime(2026, 11, 25, 10, tzinfo=UTC)),
])
def test_times_are_converted_to_utc(text: Any, expected: datetime) -> None:
    _, record = from_json(http(time=text), REGISTRY)
    assert record["time"] == expected
    assert record["time"].utcoffset() == timedelta(0)


def test_times_keep_milliseconds_only_and_exactly() -> None:
    _, record = from_json(http(time="2026-11-25T10:00:00.123999+00:00"), REGISTRY)
    assert record["time"].microsecond == 123000
    _, record = from_json(http(time=10_574_017_066_748), REGISTRY)
    assert record["time"].microsecond == 748000


def test_to_json_writes_utc_with_milliseconds() -> None:
    schema = REGISTRY.latest("http_request")
    when = datetime(2026, 11, 25, 11, 0, 0, 5000, tzinfo=timezone(timedelta(hours=1)))
    assert to_json(schema, {"time": when})["time"] == "2026-11-25T10:00:00.005Z"


@pytest.mark.parametrize("text", ["2026-11-25T10:00:00", "2026-11-25", "2026-11-25 10:00"])
def test_a_time_without_zone_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=r"http_request\.time: time needs a zone"):
        from_json(http(time=text), REGISTRY)


@pytest.mark.parametrize("value", ["yesterday", "x" * 100, True, 1.5, None, 10**20, -(10**20),
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_bad_time_is_refused_without_echo(value: Any) -> None:
    with pytest.raises(ValidationError, match=r"http_request\.time") as caught:
        from_json(http(time=value), REGISTRY)
    assert str(value) not in str(caught.value) or value is None


def test_unknown_fields_are_refused_by_name_only() -> None:
    secret = "ola.nordmann@example.no"
    name = "n" * 100
    with pytest.raises(ValidationError) as caught:
        from_json(http(email=secret, **{name: secret}), REGISTRY)
    message = str(caught.value)
    assert "unknown field(s) 'email'" in message
    assert "n" * 65 not in message and "not a field name" in message  # a 100-character name is not shown
    assert secret not in message


def test_event_id_is_generated_when_absent_and_kept_when_given() -> None:
    _, first = from_json(http(), REGISTRY)
    _, second = from_json(http(), REGISTRY)
    assert uuid.UUID(first["event_id"]).version == 4
    assert first["event_id"] != second["event_id"]
    assert from_json(http(event_id="given"), REGISTRY)[1]["event_id"] == "given"


def test_missing_optional_fields_are_null_and_a_missing_required_field_is_named() -> None:
    _, record = from_json(http(), REGISTRY)
    assert record["user_agent"] is None
    with pytest.raises(ValidationError, match=r"http_request\.time: required field is missing"):
        from_json({"event": "http_request"}, REGISTRY)


@pytest.mark.parametrize(("obj", "words"), [
    ([], "must be a JSON object"),
    ({"event": "nope"}, "\"event\" must name one of"),
    ({"event": 3}, "\"event\" must name one of"),
    (http(version=9), "\"version\" must be one of"),
    (http(version=True), "\"version\" must be one of"),
    (http(status="200"), "http_request.status: must be an integer"),
    (http(status=2**31), "http_request.status: must be an integer in the int range"),
    (http(status=True), "http_request.status: must be an integer"),
    (http(duration_ms=float("nan")), "http_request.duration_ms: must be a number"),
    (http(do_not_track="yes"), "http_request.do_not_track: must be true or false"),
    (http(client_hints=["a"]), "http_request.client_hints: must be an object"),
    (http(client_hints={"a": 1}), "http_request.client_hints: must be a string"),
    (http(client_ip=7), "http_request.client_ip: must be a string"),
    (http(event_id=None), "http_request.event_id: must be a string"),
    (http(url="/\ud800"), "http_request.url: holds a lone surrogate"),
    ({"event": "privacy_request", "kind": "forget", "request_id": "r", "received": 0}, "must be one of access"),
])
def test_wrong_values_are_named_never_echoed(obj: Any, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_json(obj, REGISTRY)
    assert words in str(caught.value)
    for value in ("203.0.113.7", "forget", "\ud800", "yes"):
        assert value not in str(caught.value)


# --- evolution: http_request v2 adds tls_version ---------------------------------------------------

def test_latest_is_v2_and_json_without_version_uses_it() -> None:
    assert REGISTRY.latest("http_request").version == 2
    assert REGISTRY.latest("http_request", kind="minimised").version == 2
    schema, record = from_json(http(tls_version="TLSv1.3"), REGISTRY)
    assert schema.key == "raw/http_request/v2"
    assert record["tls_version"] == "TLSv1.3"


def test_v1_json_is_refused_a_v2_field_and_written_as_v1() -> None:
    schema, _ = from_json(http(version=1), REGISTRY)
    assert schema.key == "raw/http_request/v1"
    with pytest.raises(ValidationError, match="unknown field.*tls_version"):
        from_json(http(version=1, tls_version="TLSv1.2"), REGISTRY)


@pytest.mark.parametrize("kind", ["raw", "minimised"])
def test_v1_bytes_decode_as_a_v2_record(kind: str) -> None:
    v1 = REGISTRY.get("http_request", kind, 1)
    v2 = REGISTRY.get("http_request", kind, 2)
    record = {"event_id": "e-3", "time": datetime(2026, 11, 25, tzinfo=UTC), "method": "GET"}
    data = encode(v1, record)
    reader, decoded = decode(data, REGISTRY)
    assert reader is v2
    assert set(decoded) == set(v2.field_names)
    assert decoded["tls_version"] is None
    assert decoded["method"] == "GET"
    assert decode(data, REGISTRY, as_latest=False)[0] is v1
    assert to_json(reader, decoded)["version"] == 2


def test_v2_tls_version_is_kept_for_security() -> None:
    policy = next(p for p in REGISTRY.latest("http_request").policies if p.field == "tls_version")
    assert (policy.category, policy.rule, policy.purposes, policy.into) == (
        "technical", "keep", ("security",), ("tls_version",))


text = st.text(max_size=50)


@settings(max_examples=200, deadline=None)
@given(url=st.none() | text, host=st.none() | text, status=st.none() | st.integers(-(2**31), 2**31 - 1),
       bytes_sent=st.none() | st.integers(-(2**63), 2**63 - 1),
       duration_ms=st.none() | st.floats(allow_nan=False),
       hints=st.none() | st.dictionaries(text, text, max_size=5),
       millis=st.integers(0, 253402300799999))
def test_property_json_round_trip(url: str | None, host: str | None, status: int | None, bytes_sent: int | None,
                                  duration_ms: float | None, hints: dict[str, str] | None, millis: int) -> None:
    obj = {"event": "http_request", "event_id": "e", "time": millis, "url": url, "host": host, "status": status,
           "bytes_sent": bytes_sent, "duration_ms": duration_ms, "client_hints": hints}
    try:
        schema, record = from_json(obj, REGISTRY)
    except ValidationError as exc:
        assert "lone surrogate" in str(exc)
        return
    assert decode(encode(schema, record), REGISTRY) == (schema, record)
    assert from_json(to_json(schema, record), REGISTRY) == (schema, record)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(s.name, s.kind) for s in REGISTRY]), st.data())
def test_property_whatever_from_json_accepts_encodes(event: tuple[str, str], data: st.DataObject) -> None:
    """Arbitrary JSON values in known fields: only ValidationError, and an accepted event always encodes."""
    name, kind = event
    schema = REGISTRY.latest(name, kind)
    fields = data.draw(st.dictionaries(st.sampled_from(schema.field_names), json_values, max_size=8))
    try:
        written, record = from_json({"event": name, **fields}, REGISTRY, kind)
    except ValidationError:
        return
    assert decode(encode(written, record), REGISTRY) == (written, record)


def test_unknown_field_names_that_could_be_values_are_not_echoed() -> None:
    with pytest.raises(ValidationError) as err:
        from_json({"event": "usage_event", "time": "2026-11-25T10:00:00Z", "kari@example.no": 1,
                   "page_title": "x"}, default_registry())
    message = str(err.value)
    assert "kari@example.no" not in message
    assert "'page_title'" in message and "not a field name" in message
