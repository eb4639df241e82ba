"""Loading and validating the versioned Avro schemas under schemas/avro/<kind>/<event>/v<N>.avsc."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro.schema import SchemaParseException, fingerprint, parse_schema, to_parsing_canonical_form

from datamin.exceptions import SchemaError
from schemas.annotations import FieldPolicy, parse_annotation
from schemas.purposes import Purpose, load_purposes

SCHEMA_ROOT = Path(__file__).parent
KINDS = ("raw", "minimised")


@dataclass(frozen=True)
class EventSchema:
    """One version of one event type's schema."""

    name: str
    """event type, e.g. http_request"""
    kind: str
    """raw or minimised"""
    version: int
    definition: Mapping[str, Any] = field(repr=False)
    """the .avsc document as written"""
    parsed: Any = field(repr=False)
    """the fastavro-parsed schema (fastavro.parse_schema's result)"""
    fingerprint: bytes = field(repr=False)
    """CRC-64-AVRO of the parsing canonical form, little-endian, as in the single-object header"""
    policies: tuple[FieldPolicy, ...] = field(repr=False, default=())
    """privacy annotations of every field (raw schemas only)"""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}/v{self.version}"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.definition["fields"])

    def field_types(self) -> dict[str, Any]:
        return {f["name"]: f["type"] for f in self.definition["fields"]}


class Registry:
    """Every schema version datamin knows, looked up by name or by the fingerprint in a header."""

    def __init__(self, schemas: list[EventSchema], purposes: Mapping[str, Purpose]) -> None:
        self.purposes = dict(purposes)
        self._by_key = {(s.kind, s.name, s.version): s for s in schemas}
        self._by_fingerprint = {s.fingerprint: s for s in schemas}
        self._latest: dict[tuple[str, str], EventSchema] = {}
        for s in sorted(schemas, key=lambda s: s.version):
            self._latest[(s.kind, s.name)] = s

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(sorted(self._by_key.values(), key=lambda s: (s.kind, s.name, s.version)))

    def event_types(self, kind: str = "raw") -> list[str]:
        return sorted(name for k, name in self._latest if k == kind)

    def latest(self, name: str, kind: str = "raw") -> EventSchema:
        try:
            return self._latest[(kind, name)]
        except KeyError:
            known = ", ".join(self.event_types(kind))
            raise SchemaError(f"{kind}/{name}", f"no such event type; known {kind} types: {known}") from None

    def get(self, name: str, kind: str, version: int) -> EventSchema:
        try:
            return self._by_key[(kind, name, version)]
        except KeyError:
            raise SchemaError(f"{kind}/{name}/v{version}", "no such schema version") from None

    def versions(self, name: str, kind: str = "raw") -> list[EventSchema]:
        return sorted((s for s in self._by_key.values() if s.kind == kind and s.name == name),
                      key=lambda s: s.version)

    def by_fingerprint(self, fp: bytes) -> EventSchema | None:
        return self._by_fingerprint.get(fp)


def _load_one(path: Path, kind: str, purposes: Mapping[str, Purpose]) -> EventSchema:
    name = path.parent.name
    label = f"{kind}/{name}/{path.name}"
    if not (path.stem.startswith("v") and path.stem[1:].isdigit()):
        raise SchemaError(label, "schema files are named v<N>.avsc")
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
        parsed = parse_schema(definition, _write_hint=False)
    except (OSError, ValueError, SchemaParseException) as exc:
        raise SchemaError(label, f"is not a valid Avro schema: {exc}") from exc
    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise SchemaError(label, "must be a record")
    policies: tuple[FieldPolicy, ...] = ()
    if kind == "raw":
        policies = tuple(parse_annotation(label, f, purposes) for f in definition["fields"])
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    # parsed again with fastavro's "already parsed" hint, so that reading and writing do not
    # re-parse the schema on every event (measured: 56 µs -> 20 µs per decode)
    return EventSchema(name, kind, int(path.stem[1:]), definition, parse_schema(definition), fp, policies)


def load_registry(root: Path | None = None) -> Registry:
    """Loads and validates every schema under ``root`` (default: this package). Raises SchemaError."""
    root = root or SCHEMA_ROOT
    purposes = load_purposes(root / "purposes.json")
    schemas = [
        _load_one(path, kind, purposes)
        for kind in KINDS
        for path in sorted((root / "avro" / kind).glob("*/*.avsc"))
    ]
    if not schemas:
        raise SchemaError(str(root), "holds no schemas under avro/raw or avro/minimised")
    seen: dict[bytes, EventSchema] = {}
    for schema in schemas:
        twin = seen.setdefault(schema.fingerprint, schema)
        if twin is not schema:
            raise SchemaError(schema.key, f"has the same parsing canonical form as {twin.key}, so the event header "
                              "cannot tell them apart; a new version must change what is written (fields, types, "
                              "names), not only docs, defaults or annotations")
    return Registry(schemas, purposes)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of the schemas shipped with datamin, loaded once per process."""
    return load_registry()
