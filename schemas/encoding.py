"""Avro single-object encoding: a 10-byte header (C3 01 and the schema's CRC-64-AVRO fingerprint,
little-endian) followed by the Avro binary body. The header names the exact schema version, so a
consumer decodes every version it knows and refuses, with DecodeError, bytes it does not.

Guarantees of `decode`: whatever the input, it returns a record or raises DecodeError (never another
exception); it allocates no more than the size of its input (fastavro reads declared lengths from the
input and stops at its end); messages name the schema version, the field where known and the byte
offset, never a value.

Speed: records go through readers and writers generated per schema (schemas.codec), which either give
exactly fastavro's result or raise; on any such refusal the call takes fastavro's path, which accepts,
or fails with the messages above. Both paths bound every declared length by the bytes present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema

from datamin.exceptions import DecodeError, ValidationError
from schemas.codec import Reader, Writer, compile_reader, compile_writer
from schemas.limits import MAX_MAP_ENTRIES, MAX_STRING, oversized
from schemas.registry import EventSchema, Registry

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10

_prefix_schemas: dict[bytes, list[Any]] = {}
_writers: dict[bytes, Writer | None] = {}
_readers: dict[tuple[bytes, bytes], _FastPlan | None] = {}

_FLAT_TYPES = frozenset({str, int, float, bool, type(None), bytes, datetime, date})
"""value types that hold no map: for these, `oversized` looks only at the length of strings"""


def _surely_fits(record: dict[str, Any]) -> bool:
    """True only when `oversized(record)` is None: no string over MAX_STRING, no map over
    MAX_MAP_ENTRIES or holding anything but such strings (a fast pre-check; False sends the record to
    `oversized` for the full check and its message)."""
    for value in record.values():
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING:
                return False
        elif kind is dict:  # a map of strings (client hints: every Chromium request has them)
            if len(value) > MAX_MAP_ENTRIES:
                return False
            for key, item in value.items():
                if type(key) is not str or type(item) is not str or len(key) > MAX_STRING or len(item) > MAX_STRING:
                    return False
        elif kind not in _FLAT_TYPES:
            return False
    return True


def encode(schema: EventSchema, record: dict[str, Any]) -> bytes:
    """Encodes a record; raises ValidationError naming the schema (and field) when it does not fit."""
    too_big = None if type(record) is dict and _surely_fits(record) else oversized(record)
    if too_big is not None:
        raise ValidationError(f"{schema.key}.{too_big}")
    try:
        fast = _writers[schema.fingerprint]
    except KeyError:
        fast = _writers[schema.fingerprint] = compile_writer(schema.definition)
    if fast is not None:
        try:
            return b"".join([MAGIC, schema.fingerprint, *fast(record)])
        except Exception:  # noqa: S110 - anything unusual is fastavro's to accept or refuse
            pass
    buf = BytesIO()
    buf.write(MAGIC)
    buf.write(schema.fingerprint)
    try:
        schemaless_writer(buf, schema.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # fastavro's messages can quote the offending value; keep only the kind of failure
        raise ValidationError(f"{schema.key}: record does not fit the schema ({type(exc).__name__}: "
                              f"{_field_hint(schema, record)})") from None
    return buf.getvalue()


def _field_hint(schema: EventSchema, record: dict[str, Any]) -> str:
    unknown = sorted(str(n) for n in set(record) - set(schema.field_names))
    if unknown:
        return f"unknown field(s) {', '.join(n[:64] for n in unknown[:5])}"
    for name in schema.field_names:
        if name not in record:
            continue
        try:
            schemaless_writer(BytesIO(), _field_schema(schema, name), {name: record[name]})
        except Exception:  # fastavro raises many kinds; any means this field is wrong
            return f"field {name} has the wrong type"
    return "a required field is missing"


def _field_schema(schema: EventSchema, name: str) -> Any:
    """A record schema holding only field ``name`` of ``schema`` (for locating a bad field)."""
    field = next(f for f in schema.definition["fields"] if f["name"] == name)
    return parse_schema({**schema.definition, "fields": [field]}, _write_hint=False)


def header_schema(data: bytes, registry: Registry) -> EventSchema:
    """The schema version named by the header of ``data``; DecodeError when there is none."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected the bytes of an event, got {type(data).__name__} (a tombstone has no value)")
    if len(data) < HEADER_SIZE or bytes(data[:2]) != MAGIC:
        raise DecodeError(f"not an Avro single-object encoded event: {len(data)} bytes without the "
                          "10-byte C3 01 header")
    writer = registry.by_fingerprint(bytes(data[2:HEADER_SIZE]))
    if writer is None:
        raise DecodeError(f"unknown schema fingerprint {bytes(data[2:HEADER_SIZE]).hex()}: "
                          "written with a schema this datamin does not know; upgrade the consumer")
    return writer


def decode(data: bytes, registry: Registry, *, as_latest: bool = True) -> tuple[EventSchema, dict[str, Any]]:
    """Decodes an event. With ``as_latest`` the record is resolved to the newest known version of its
    event type (fields it lacks take their defaults). Raises DecodeError on anything else."""
    writer = header_schema(data, registry)
    reader = registry.latest(writer.name, writer.kind) if as_latest else writer
    plan = _fast_reader(writer, reader)
    record = _read_fast(plan, data) if plan is not None else None
    if record is None:
        record = _read_fastavro(writer, reader, data)
    elif plan is not None and len(data) - HEADER_SIZE <= MAX_STRING and not any(record[n] for n in plan.maps):
        return reader, record  # no string can be too long and there is no map to bound
    # a string of more than MAX_STRING characters takes more than MAX_STRING bytes of the input
    if len(data) - HEADER_SIZE > MAX_STRING or not _FLAT_TYPES.issuperset(map(type, record.values())):
        too_big = oversized(record)
        if too_big is not None:
            raise DecodeError(f"{writer.key}.{too_big}")
    return reader, record


def _read_fast(plan: _FastPlan, data: bytes) -> dict[str, Any] | None:
    """The record by the generated reader; None when it balks (a corrupt body, trailing bytes,
    anything unusual): fastavro's path then decides and describes."""
    try:
        record, end = plan.read(data if type(data) is bytes else bytes(data), HEADER_SIZE)
    except Exception:  # any failure goes to fastavro's path
        return None
    return record if end == len(data) else None


def _read_fastavro(writer: EventSchema, reader: EventSchema, data: bytes) -> dict[str, Any]:
    buf = BytesIO(data)
    buf.seek(HEADER_SIZE)
    try:
        if reader is writer:
            record = schemaless_reader(buf, writer.parsed, None)
        else:
            record = schemaless_reader(buf, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro raises many kinds on corrupt input
        raise DecodeError(_describe_failure(writer, bytes(data), exc)) from None
    if buf.tell() != len(data):
        raise DecodeError(f"{writer.key}: {len(data) - buf.tell()} trailing bytes after the record "
                          f"(it ends at byte {buf.tell()} of {len(data)})")
    if not isinstance(record, dict):
        raise DecodeError(f"{writer.key}: body is not a record")
    return record


@dataclass(frozen=True, slots=True)
class _FastPlan:
    read: Reader
    maps: tuple[str, ...]
    """the fields whose values can be maps (bounded by `oversized`)"""


def _fast_reader(writer: EventSchema, reader: EventSchema) -> _FastPlan | None:
    """The generated reader from ``writer`` to ``reader`` (None: fastavro's path). Resolution is
    generated only where the reader adds fields with defaults to the writer's, types unchanged."""
    key = (writer.fingerprint, reader.fingerprint)
    try:
        return _readers[key]
    except KeyError:
        pass
    fast: Reader | None = None
    if reader is writer:
        fast = compile_reader(writer.definition)
    else:
        written = {f["name"]: f["type"] for f in writer.definition["fields"]}
        read = {f["name"]: f for f in reader.definition["fields"]}
        added = {name: f.get("default") for name, f in read.items() if name not in written}
        if (all(name in read and read[name]["type"] == t for name, t in written.items())
                and all("default" in read[name] and read[name]["default"] is None for name in added)):
            fast = compile_reader(writer.definition, added)
    maps = tuple(f["name"] for f in reader.definition["fields"] if _is_map(f["type"]))
    plan = _readers[key] = _FastPlan(fast, maps) if fast is not None else None
    return plan


def _is_map(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(_is_map(branch) for branch in avro_type)
    return isinstance(avro_type, dict) and avro_type.get("type") == "map"


def _describe_failure(writer: EventSchema, data: bytes, exc: Exception) -> str:
    """What went wrong and where (field, byte offset), from the writer schema alone, never a value."""
    field, offset = _locate(writer, data)
    where = f".{field}" if field else ""
    at = f" at byte {offset} of {len(data)}" if offset is not None else ""
    if isinstance(exc, EOFError):
        what = "truncated: the body ends before the record does"
    elif isinstance(exc, UnicodeDecodeError):
        what = "a string is not valid UTF-8"
    else:
        what = f"corrupt body ({type(exc).__name__})"
    return f"{writer.key}{where}: {what}{at}"


def _locate(writer: EventSchema, data: bytes) -> tuple[str | None, int | None]:
    """The first field that cannot be read, and the offset where it starts, by reading ever longer
    prefixes of the record. Only runs on the error path."""
    prefixes = _prefix_schemas.get(writer.fingerprint)
    if prefixes is None:
        fields = list(writer.definition["fields"])
        prefixes = [parse_schema({**writer.definition, "fields": fields[:i + 1]}, _write_hint=False)
                    for i in range(len(fields))]
        _prefix_schemas[writer.fingerprint] = prefixes
    offset = HEADER_SIZE
    for name, prefix in zip(writer.field_names, prefixes, strict=True):
        buf = BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            schemaless_reader(buf, prefix, None)
        except Exception:  # any failure locates the field
            return name, offset
        offset = buf.tell()
    return None, None
