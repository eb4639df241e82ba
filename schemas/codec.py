"""Avro binary readers and writers generated per schema: the fast path of `schemas.encoding`.

fastavro interprets a schema at every call; for the flat records datamin's schemas describe (primitives,
timestamp-millis, enums, maps of strings, unions of null and one type) a function written out for the
one schema, field by field, reads and writes the same bytes two to three times faster.

The contract is narrow on purpose: a generated function either returns exactly what fastavro would
(the same record, the same bytes) or raises. It raises on anything unusual (a type fastavro might coerce,
a non-canonical varint, a truncated body) and `schemas.encoding` then takes fastavro's path, which
accepts or refuses with its full error handling. Correctness therefore never rests on this module
alone; tests/schemas/test_codec_*.py compares both on generated records and on random bytes.
`compile_reader` / `compile_writer` return None for a schema using anything else (arrays, nested
records, fixed, bytes, other logical types), and fastavro serves it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]
"""(data, offset of the body) -> (record, offset after it)"""
Writer = Callable[[Mapping[str, Any]], list[bytes]]
"""record -> the body's parts (b"".join them)"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct("<d")
_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1
_LONG_MIN, _LONG_MAX = -(2 ** 63), 2 ** 63 - 1
_SMALL = tuple(bytes([n]) for n in range(128))
"""one-byte varints: _SMALL[n << 1] is the zig-zag encoding of 0 <= n < 64"""
_PRIMITIVES = frozenset({"string", "int", "long", "double", "boolean"})


class _Unsupported(Exception):
    """A schema construct this module does not generate code for."""


def _long_at(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint starting at ``pos`` (whose first byte has the high bit set); at most 10 bytes."""
    b = data[pos]
    n = b & 0x7F
    shift = 7
    pos += 1
    while b & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _zigzag(v: int) -> bytes:
    """The zig-zag varint of a long."""
    n = (v << 1) ^ (v >> 63)
    if n < 0x4000:
        return _SMALL[n] if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7))
    out = []
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _millis(value: datetime) -> int:
    """fastavro's timestamp-millis of an aware datetime (the same arithmetic, so the same rounding)."""
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)


def _kind(avro_type: Any) -> tuple[str, bool, tuple[str, ...]]:
    """(kind, nullable, enum symbols) of a field type; raises _Unsupported."""
    nullable = False
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type[0] != "null":
            raise _Unsupported("only unions of null and one type")
        nullable, avro_type = True, avro_type[1]
    if isinstance(avro_type, str):
        if avro_type in _PRIMITIVES:
            return avro_type, nullable, ()
        raise _Unsupported(avro_type)
    if isinstance(avro_type, Mapping):
        kind = avro_type.get("type")
        if kind == "long" and avro_type.get("logicalType") == "timestamp-millis":
            return "timestamp", nullable, ()
        if kind == "enum":
            return "enum", nullable, tuple(avro_type["symbols"])
        if kind == "map" and avro_type.get("values") == "string" and "logicalType" not in avro_type:
            return "map", nullable, ()
        if kind in _PRIMITIVES and "logicalType" not in avro_type:
            return kind, nullable, ()
    raise _Unsupported(str(avro_type))


# -- readers ------------------------------------------------------------------------------------------

def _read_varint(var: str) -> list[str]:
    return ["b = data[pos]",
            "if b < 0x80:",
            f"    {var} = (b >> 1) ^ -(b & 1); pos += 1",
            "else:",
            f"    {var}, pos = _long_at(data, pos)"]


def _read_string(target: str) -> list[str]:
    return [*_read_varint("n"),
            "end = pos + n",
            "if n < 0 or end > size: raise EOFError",
            f"{target} = data[pos:end].decode(); pos = end"]


def _read_value(kind: str, target: str, symbols_name: str) -> list[str]:
    if kind == "string":
        return _read_string(target)
    if kind == "int" or kind == "long":
        return [*_read_varint("v"), f"{target} = v"]
    if kind == "timestamp":
        return [*_read_varint("v"), f"{target} = _EPOCH + _timedelta(microseconds=v * 1000)"]
    if kind == "double":
        return ["if pos + 8 > size: raise EOFError",
                f"{target} = _unpack_double(data, pos)[0]; pos += 8"]
    if kind == "boolean":
        return [f"{target} = data[pos] != 0; pos += 1"]
    if kind == "enum":
        return [*_read_varint("v"),
                f"if v < 0 or v >= len({symbols_name}): raise ValueError('enum index')",
                f"{target} = {symbols_name}[v]"]
    # map of strings: blocks of (count, [byte size,] entries), ended by a count of 0
    return ["m = {}",
            "while True:",
            *("    " + line for line in _read_varint("count")),
            "    if count == 0: break",
            "    if count < 0:",
            *("        " + line for line in _read_varint("_size")),
            "        count = -count",
            "    for _ in range(count):",
            *("        " + line for line in _read_string("k")),
            *("        " + line for line in _read_string("m[k]")),
            f"{target} = m"]


def compile_reader(definition: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> Reader | None:
    """A reader of records written with ``definition``; with ``defaults``, every name there missing from
    the written fields is added with its value (schema resolution to a newer reader version that only
    added fields). None when the schema uses a construct not generated here."""
    lines = ["def read(data, pos):", "    size = len(data)", "    out = {}"]
    env: dict[str, Any] = {"_long_at": _long_at, "_EPOCH": _EPOCH, "_timedelta": timedelta,
                           "_unpack_double": _DOUBLE.unpack_from}
    try:
        for i, f in enumerate(definition["fields"]):
            kind, nullable, symbols = _kind(f["type"])
            symbols_name = f"_symbols{i}"
            env[symbols_name] = symbols
            target = f"out[{f['name']!r}]"
            body = _read_value(kind, target, symbols_name)
            if nullable:
                lines += ["    b = data[pos]; pos += 1",
                          f"    if b == 0: {target} = None",
                          "    elif b == 2:",
                          *("        " + line for line in body),
                          "    else: raise ValueError('union index')"]
            else:
                lines += ["    " + line for line in body]
    except _Unsupported:
        return None
    for i, (name, value) in enumerate((defaults or {}).items()):
        env[f"_default{i}"] = value
        lines.append(f"    out[{name!r}] = _default{i}")
    lines.append("    return out, pos")
    exec("\n".join(lines), env)  # noqa: S102 - the source is built above from a schema's field types
    reader: Reader = env["read"]
    return reader


# -- writers ------------------------------------------------------------------------------------------

def _write_value(kind: str, value: str, symbols_name: str) -> list[str]:
    """Lines appending the encoding of ``value`` (a local name) to ``parts``; raise on a wrong type."""
    if kind == "string":
        return [f"if type({value}) is not str: raise TypeError",
                f"s = {value}.encode()",
                "n = len(s)",
                "append(_SMALL[n << 1] if n < 64 else _zigzag(n)); append(s)"]
    if kind == "int" or kind == "long":
        low, high = ("_INT_MIN", "_INT_MAX") if kind == "int" else ("_LONG_MIN", "_LONG_MAX")
        return [f"if type({value}) is not int or not {low} <= {value} <= {high}: raise TypeError",
                f"append(_SMALL[{value} << 1] if 0 <= {value} < 64 else _zigzag({value}))"]
    if kind == "timestamp":
        return [f"if type({value}) is not datetime or {value}.tzinfo is None: raise TypeError",
                f"ms = _millis({value})",
                "if not _LONG_MIN <= ms <= _LONG_MAX: raise TypeError",
                "append(_zigzag(ms))"]
    if kind == "double":
        return [f"if type({value}) is not float: raise TypeError",
                f"append(_pack_double({value}))"]
    if kind == "boolean":
        return [f"if type({value}) is not bool: raise TypeError",
                f"append(b'\\x01' if {value} else b'\\x00')"]
    if kind == "enum":
        return [f"i = {symbols_name}.get({value}) if type({value}) is str else None",
                "if i is None: raise TypeError",
                "append(_SMALL[i << 1] if i < 64 else _zigzag(i))"]
    return [f"if type({value}) is not dict: raise TypeError",
            f"if {value}:",
            f"    n = len({value})",
            "    append(_SMALL[n << 1] if n < 64 else _zigzag(n))",
            f"    for k, x in {value}.items():",
            "        if type(k) is not str or type(x) is not str: raise TypeError",
            "        s = k.encode(); n = len(s)",
            "        append(_SMALL[n << 1] if n < 64 else _zigzag(n)); append(s)",
            "        s = x.encode(); n = len(s)",
            "        append(_SMALL[n << 1] if n < 64 else _zigzag(n)); append(s)",
            "append(b'\\x00')"]


def compile_writer(definition: Mapping[str, Any]) -> Writer | None:
    """A writer of records of ``definition``, with fastavro's strict_allow_default semantics for the
    fields (an unknown field, or a missing one without a default, raises). None when the schema uses a
    construct not generated here."""
    fields = list(definition["fields"])
    names = frozenset(f["name"] for f in fields)
    lines = ["def write(record):",
             "    if not record.keys() <= _names: raise KeyError('unknown field')",
             "    parts = []", "    append = parts.append", "    get = record.get"]
    env: dict[str, Any] = {"_names": names, "_SMALL": _SMALL, "_zigzag": _zigzag, "_millis": _millis,
                           "_pack_double": _DOUBLE.pack, "datetime": datetime, "_INT_MIN": _INT_MIN,
                           "_INT_MAX": _INT_MAX, "_LONG_MIN": _LONG_MIN, "_LONG_MAX": _LONG_MAX}
    try:
        for i, f in enumerate(fields):
            kind, nullable, symbols = _kind(f["type"])
            symbols_name = f"_symbols{i}"
            env[symbols_name] = {symbol: index for index, symbol in enumerate(symbols)}
            name = f["name"]
            if "default" in f:  # a missing field takes its default, as fastavro's strict_allow_default does
                env[f"_default{i}"] = f["default"]
                lines.append(f"    v = get({name!r}, _default{i})")
            else:
                lines += [f"    if {name!r} not in record: raise KeyError({name!r})",
                          f"    v = record[{name!r}]"]
            body = _write_value(kind, "v", symbols_name)
            if nullable:
                lines += ["    if v is None: append(b'\\x00')",
                          "    else:",
                          "        append(b'\\x02')",
                          *("        " + line for line in body)]
            else:
                lines += ["    " + line for line in body]
    except _Unsupported:
        return None
    lines.append("    return parts")
    exec("\n".join(lines), env)  # noqa: S102 - the source is built above from a schema's field types
    writer: Writer = env["write"]
    return writer
