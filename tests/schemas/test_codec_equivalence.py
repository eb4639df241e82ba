"""The generated Avro readers and writers (schemas.codec) against fastavro: the same bytes out, the
same records back, on records hypothesis draws from every schema datamin has and on random bodies."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamin.exceptions import ValidationError
from schemas import decode, default_registry, encode
from schemas.codec import compile_reader, compile_writer
from schemas.encoding import HEADER_SIZE
from schemas.registry import EventSchema

REGISTRY = default_registry()
SCHEMAS = list(REGISTRY)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(max_size=80)
times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                     timezones=st.just(UTC))


def values(avro_type: Any) -> st.SearchStrategy[Any]:
    if isinstance(avro_type, list):
        return st.none() | values(avro_type[1])
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-millis":
            return times
        if avro_type["type"] == "enum":
            return st.sampled_from(avro_type["symbols"])
        if avro_type["type"] == "map":
            return st.dictionaries(text, text, max_size=5)
        return values(avro_type["type"])
    return {"string": text, "int": st.integers(-(2 ** 31), 2 ** 31 - 1),
            "long": st.integers(-(2 ** 63), 2 ** 63 - 1), "boolean": st.booleans(),
            "double": st.floats(allow_nan=False)}[avro_type]


def records(schema: EventSchema) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema.definition["fields"]})


def fastavro_bytes(schema: EventSchema, record: dict[str, Any]) -> bytes:
    buf = BytesIO()
    schemaless_writer(buf, schema.parsed, record, strict_allow_default=True)
    return buf.getvalue()


def fastavro_read(writer: EventSchema, body: bytes, reader: EventSchema | None = None) -> tuple[Any, int]:
    buf = BytesIO(body)
    record = schemaless_reader(buf, writer.parsed, reader.parsed if reader else None)
    return record, buf.tell()


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.key)
def test_every_datamin_schema_gets_a_generated_reader_and_writer(schema: EventSchema) -> None:
    assert compile_reader(schema.definition) is not None
    assert compile_writer(schema.definition) is not None


@PROPERTY
@given(st.sampled_from(SCHEMAS).flatmap(lambda s: st.tuples(st.just(s), records(s))))
def test_the_generated_writer_writes_fastavros_bytes_and_the_reader_reads_them_back(
        drawn: tuple[EventSchema, dict[str, Any]]) -> None:
    schema, record = drawn
    writer = compile_writer(schema.definition)
    reader = compile_reader(schema.definition)
    assert writer is not None and reader is not None
    body = b"".join(writer(record))
    assert body == fastavro_bytes(schema, record)
    assert reader(body, 0) == fastavro_read(schema, body)


@PROPERTY
@given(st.sampled_from(SCHEMAS).flatmap(lambda s: st.tuples(st.just(s), records(s))), st.data())
def test_the_generated_reader_agrees_with_fastavro_on_mutated_bodies(
        drawn: tuple[EventSchema, dict[str, Any]], data: st.DataObject) -> None:
    schema, record = drawn
    body = bytearray(fastavro_bytes(schema, record))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    mutated = bytes(body[:data.draw(st.integers(0, len(body)))]) + data.draw(st.binary(max_size=6))
    reader = compile_reader(schema.definition)
    assert reader is not None
    try:
        ours = reader(mutated, 0)
    except Exception:  # refusing is always allowed: fastavro's path then decides
        return
    theirs = fastavro_read(schema, mutated)
    assert _same(ours, theirs)


def _same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to NaN (a mutated double can become one)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@PROPERTY
@given(records(REGISTRY.get("http_request", "raw", 1)))
def test_an_older_version_is_resolved_to_the_newest_as_fastavro_does(record: dict[str, Any]) -> None:
    old, new = REGISTRY.get("http_request", "raw", 1), REGISTRY.latest("http_request")
    data = encode(old, record)
    schema, ours = decode(data, REGISTRY)
    assert schema is new
    assert ours == fastavro_read(old, data[HEADER_SIZE:], new)[0]
    assert ours["tls_version"] is None


@pytest.mark.parametrize("field, value", [
    ("status", True),  # a bool where an int belongs
    ("duration_ms", 12),  # an int where a double belongs
    ("time", datetime(2026, 11, 25, 8, 0)),  # a naive datetime
    ("time", 1_764_057_600_000),  # epoch milliseconds
])
def test_values_the_generated_writer_refuses_are_fastavros_to_accept_or_refuse(field: str, value: Any) -> None:
    schema = REGISTRY.latest("http_request")
    record: dict[str, Any] = {"event_id": "e1", "time": datetime(2026, 11, 25, tzinfo=UTC), field: value}
    writer = compile_writer(schema.definition)
    assert writer is not None
    with pytest.raises(TypeError):
        writer(record)
    try:
        expected = fastavro_bytes(schema, record)
    except (ValueError, TypeError):
        with pytest.raises(ValidationError, match=f"field {field} has the wrong type"):
            encode(schema, record)
    else:
        assert encode(schema, record)[HEADER_SIZE:] == expected


def test_millisecond_rounding_matches_fastavro_around_the_epoch() -> None:
    schema = REGISTRY.latest("http_request")
    writer = compile_writer(schema.definition)
    assert writer is not None
    for micros in (-1500, -999, -1, 0, 1, 999, 1000, 1501):
        record = {"event_id": "e", "time": datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)}
        assert b"".join(writer(record)) == fastavro_bytes(schema, record)
