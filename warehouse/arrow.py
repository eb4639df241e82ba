"""Minimised Avro schemas as Arrow schemas, and decoded records as Arrow tables.

The mapping is fixed so that every Parquet file of a table has the same column types:

    string -> string        int -> int32        long -> int64       double -> float64
    float -> float32        boolean -> bool_    enum -> string      bytes -> binary
    long/timestamp-millis -> timestamp('ms', tz='UTC')              ["null", T] -> T, nullable

A field that is not a union with "null" is not nullable. Pure: no file or Kafka I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from datamin.exceptions import SchemaError
from schemas.registry import EventSchema

TIME_COLUMNS: Mapping[str, str] = {"privacy_request": "received"}
"""The column whose UTC day names a row's partition, where it is not ``time``."""

_PRIMITIVES: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
}
_LOGICAL: Mapping[str, pa.DataType] = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def id_column(event: str) -> str:
    """The column that identifies one event of ``event`` (a random UUID, no personal data)."""
    return "request_id" if event == "privacy_request" else "event_id"


def time_column(event: str) -> str:
    """The name of the column that decides a row's day partition for ``event``."""
    return TIME_COLUMNS.get(event, "time")


def arrow_type(avro_type: Any, *, where: str = "") -> tuple[pa.DataType, bool]:
    """(Arrow type, nullable) of one Avro field type. Raises SchemaError for a type with no mapping."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if len(branches) != 1:
            raise SchemaError(where or "(field)", "unions other than [\"null\", T] have no Arrow column type")
        inner, _ = arrow_type(branches[0], where=where)
        return inner, "null" in avro_type
    if isinstance(avro_type, str):
        if avro_type in _PRIMITIVES:
            return _PRIMITIVES[avro_type], False
        raise SchemaError(where or "(field)", f"Avro type {avro_type!r} has no Arrow column type")
    if isinstance(avro_type, Mapping):
        logical = avro_type.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL:
            return _LOGICAL[logical], False
        kind = avro_type.get("type")
        if kind == "enum":
            return pa.string(), False
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return _PRIMITIVES[kind], False
    raise SchemaError(where or "(field)", "nested or complex Avro types have no Arrow column type")


def arrow_schema(schema: EventSchema) -> pa.Schema:
    """The Arrow schema of a minimised event type; the columns in the .avsc order."""
    fields = []
    for name, avro_type in schema.field_types().items():
        dtype, nullable = arrow_type(avro_type, where=f"{schema.key}.{name}")
        fields.append(pa.field(name, dtype, nullable=nullable))
    return pa.schema(fields, metadata={"datamin.schema": schema.key})


def records_to_table(schema: EventSchema, records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Decoded records (as ``schemas.decode`` returns them) as one Arrow table.

    A missing key counts as null; keys that are not columns are ignored. Records that ``decode``
    accepted always fit; anything else may raise pyarrow's ArrowInvalid / ArrowTypeError."""
    target = arrow_schema(schema)
    # one pass in C++: each dict becomes a struct row and its values go straight into the columns'
    # builders (no per-cell Python code and no transposed tuples in between)
    rows: list[Mapping[str, Any]] = records if isinstance(records, list) else list(records)
    if not {dict}.issuperset(map(type, rows)):  # pyarrow takes only dicts (and tuples, by position)
        rows = [dict(r) for r in rows]
    struct = pa.array(rows, type=pa.struct(list(target)))
    return pa.Table.from_arrays(struct.flatten(), schema=target)
