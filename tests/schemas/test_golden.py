"""Golden vectors: the exact bytes of one fixed record per schema version, compared without a broker.

tests/schemas/golden/<kind>_<event>_v<N>.json holds a record in its JSON form (with "event" and
"version"); the .bin beside it holds its exact single-object encoding, header included. A published
schema version must never change what it writes: these tests fail when it does.

Regenerating (after adding a schema version, never to paper over a changed one):

    DATAMIN_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/schemas/test_schema_golden.py

writes the .bin of every .json, and a .json (a deterministic sample record) for every schema version
that has none; review the new files before committing them.

The header is also checked against an independent implementation, written here from the Avro
specification: the parsing canonical form and the CRC-64-AVRO (Rabin) fingerprint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from schemas import decode, default_registry, encode, from_json, to_json
from schemas.registry import EventSchema

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("DATAMIN_REGEN_GOLDEN") == "1"
REGISTRY = default_registry()
SCHEMAS = list(REGISTRY)

# --- an independent CRC-64-AVRO and parsing canonical form, from the specification --------------

EMPTY = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    return table


FP_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
ORDER = ("name", "type", "fields", "symbols", "items", "values", "size")


def canonical(schema: Any, namespace: str | None = None) -> str:
    """Parsing Canonical Form: [PRIMITIVES] [FULLNAMES] [STRIP] [ORDER] [STRINGS] [WHITESPACE]."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return json.dumps(schema)
        return json.dumps(schema if "." in schema or not namespace else f"{namespace}.{schema}")
    if isinstance(schema, list):
        return "[" + ",".join(canonical(s, namespace) for s in schema) + "]"
    kind = schema["type"]
    if kind in PRIMITIVES:
        return json.dumps(kind)
    parts = []
    if kind in ("record", "enum", "fixed"):
        name = schema["name"]
        if "." not in name:
            namespace = schema.get("namespace", namespace)
            name = f"{namespace}.{name}" if namespace else name
        else:
            namespace = name.rsplit(".", 1)[0]
        parts.append(f'"name":{json.dumps(name)}')
    parts.append(f'"type":{json.dumps(kind)}')
    if kind == "record":
        fields = ",".join('{"name":' + json.dumps(f["name"]) + ',"type":' + canonical(f["type"], namespace) + "}"
                          for f in schema["fields"])
        parts.append(f'"fields":[{fields}]')
    if kind == "enum":
        parts.append('"symbols":[' + ",".join(json.dumps(s) for s in schema["symbols"]) + "]")
    if kind == "array":
        parts.append('"items":' + canonical(schema["items"], namespace))
    if kind == "map":
        parts.append('"values":' + canonical(schema["values"], namespace))
    if kind == "fixed":
        parts.append(f'"size":{int(schema["size"])}')
    return "{" + ",".join(parts) + "}"


def test_crc64_avro_matches_the_specification_vectors() -> None:
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A
    assert crc64_avro(b"") == EMPTY


def test_canonical_form_of_a_logical_type_is_its_primitive() -> None:
    assert canonical({"type": "long", "logicalType": "timestamp-millis"}) == '"long"'
    assert canonical({"type": "record", "name": "R", "namespace": "a.b", "doc": "x",
                      "fields": [{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
                                 {"name": "f", "type": "E", "default": "A"}]}) == (
        '{"name":"a.b.R","type":"record","fields":[{"name":"e","type":{"name":"a.b.E","type":"enum",'
        '"symbols":["A"]}},{"name":"f","type":"a.b.E"}]}')


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.key)
def test_header_is_c3_01_and_the_little_endian_crc64_of_the_canonical_form(schema: EventSchema) -> None:
    expected = crc64_avro(canonical(dict(schema.definition)).encode("utf-8")).to_bytes(8, "little")
    assert schema.fingerprint == expected
    _, record = from_json(_golden_json(schema), REGISTRY, schema.kind)
    assert encode(schema, record)[:10] == b"\xc3\x01" + expected


# --- the golden vectors ---------------------------------------------------------------------------

SAMPLES: dict[str, Any] = {
    "event_id": "0b7c6a52-3f0e-4d8e-9a51-2f6d1c0e9b11",
    "request_id": "5d3b1f0a-8c2e-4b7d-a9e6-1c4f2e8d7b30",
    "time": "2026-11-25T10:00:00.123Z",
    "received": "2026-11-25T10:05:00.000Z",
    "subject_key": "user-1234",
    "subject": "ps1:Zm9vYmFyYmF6",
    "client_ip": "203.0.113.7",
    "client_network": "203.0.0.0/16",
    "url": "/search?q=shoes&utm_source=newsletter",
    "referrer": "https://example.org/page?id=42",
    "referrer_origin": "https://example.org",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "accept_language": "nb-NO,nb;q=0.9,en;q=0.8",
    "client_hints": {"Sec-CH-UA-Platform": "\"Linux\""},
    "method": "GET",
    "host": "techpros.no",
    "status": 200,
    "bytes_sent": 5120,
    "duration_ms": 12.5,
    "tls_version": "TLSv1.3",
    "search_terms": "reset password for ola@example.no",
    "message": "disk full at /home/ola/app.log",
    "crash_dump": "Traceback (most recent call last): ...",
    "mac_address": "00:1a:2b:3c:4d:5e",
    "latitude": 59.9139,
    "longitude": 10.7522,
    "policy_version": "2023-12-01",
}


def _sample_value(schema: EventSchema, name: str, avro_type: Any) -> Any:
    branches = [t for t in avro_type if t != "null"] if isinstance(avro_type, list) else [avro_type]
    branch = branches[0]
    kind = str(branch.get("type") if isinstance(branch, dict) else branch)
    if isinstance(branch, dict) and branch.get("logicalType") == "timestamp-millis":
        return SAMPLES.get(name, "2026-11-25T10:00:00.000Z")
    python_type: type | None = {"string": str, "double": float, "long": int, "int": int, "map": dict}.get(kind)
    if name in SAMPLES and python_type is not None and type(SAMPLES[name]) is python_type:
        return SAMPLES[name]
    if kind == "enum":
        return branch["symbols"][-1]
    if kind == "map":
        return {"k": "v"}
    return {"string": f"{name}-sample", "boolean": True, "int": 7, "long": 7, "double": 1.5,
            "float": 1.5}[kind]


def _sample_json(schema: EventSchema) -> dict[str, Any]:
    obj: dict[str, Any] = {"event": schema.name, "version": schema.version}
    for name, avro_type in schema.field_types().items():
        obj[name] = _sample_value(schema, name, avro_type)
    return obj


def _paths(schema: EventSchema) -> tuple[Path, Path]:
    stem = GOLDEN / f"{schema.kind}_{schema.name}_v{schema.version}"
    return stem.with_suffix(".json"), stem.with_suffix(".bin")


def _golden_json(schema: EventSchema) -> dict[str, Any]:
    json_path, _ = _paths(schema)
    if REGEN and not json_path.exists():
        GOLDEN.mkdir(exist_ok=True)
        json_path.write_text(json.dumps(_sample_json(schema), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not json_path.exists():
        pytest.fail(f"no golden vector for {schema.key}: run DATAMIN_REGEN_GOLDEN=1 pytest {__file__}")
    obj: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return obj


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.key)
def test_encoding_the_golden_json_gives_the_golden_bytes(schema: EventSchema) -> None:
    obj = _golden_json(schema)
    written, record = from_json(obj, REGISTRY, schema.kind)
    assert written is schema
    data = encode(schema, record)
    _, bin_path = _paths(schema)
    if REGEN:
        bin_path.write_bytes(data)
    assert data == bin_path.read_bytes()


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.key)
def test_decoding_the_golden_bytes_gives_the_golden_record(schema: EventSchema) -> None:
    obj = _golden_json(schema)
    _, bin_path = _paths(schema)
    reader, record = decode(bin_path.read_bytes(), REGISTRY, as_latest=False)
    assert reader is schema
    assert to_json(reader, record) == obj


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.key)
def test_golden_bytes_decode_as_the_latest_version(schema: EventSchema) -> None:
    _, bin_path = _paths(schema)
    reader, record = decode(bin_path.read_bytes(), REGISTRY)
    assert reader is REGISTRY.latest(schema.name, schema.kind)
    assert set(record) == set(reader.field_names)
    old = to_json(schema, decode(bin_path.read_bytes(), REGISTRY, as_latest=False)[1])
    for name in schema.field_names:
        assert to_json(reader, record)[name] == old[name]


def test_every_golden_file_belongs_to_a_schema_version() -> None:
    known = {p.name for s in SCHEMAS for p in _paths(s)}
    stray = sorted(p.name for p in GOLDEN.iterdir() if p.name not in known)
    assert stray == []
