"""`datamin schemas check`: every problem in the schema tree, as precise messages.

Loading a registry already refuses a malformed file or annotation (the first one found); this check
reports that too, and then what only a view across schemas can see:

- every raw event type has a minimised counterpart;
- every minimised field is produced by exactly one raw field's rule (its ``into``, by default its own
  name), and every output of a raw rule exists in the minimised schema with a compatible type
  (``keep``: the same type; any other rule: a nullable string);
- no identifier, network address or free text is kept in clear (rule ``keep``);
- no field is named ``event`` or ``version`` (the JSON form uses those names);
- each version of a schema is backward compatible with every earlier version: a reader with the new
  schema reads data written with the old (checked with the Apache ``avro`` package's
  ReaderWriterCompatibilityChecker, a test dependency; without it that check reports how to install it).

Raw version N is compared with minimised version N when both exist, and the latest raw version with
the latest minimised version (the pair the processor uses) always.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from datamin.exceptions import SchemaError
from schemas.registry import EventSchema, Registry, load_registry

_NEVER_IN_CLEAR = ("identifier", "network_address", "free_text")
_NULLABLE_STRING = ["null", "string"]
_RESERVED = ("event", "version")


def check_schemas(registry_root: Path | None = None) -> list[str]:
    """Every problem found in the schema tree under ``registry_root`` (default: the shipped one).

    An empty list means the tree is fine. Never raises for a problem in the tree: a schema that
    does not load is reported as that load's message (naming the schema and field)."""
    try:
        registry = load_registry(registry_root)
    except SchemaError as exc:
        return [str(exc)]
    problems: list[str] = []
    for schema in registry:
        for reserved in _RESERVED:
            if reserved in schema.field_names:
                problems.append(f"schema {schema.key}.{reserved}: the name is reserved by the JSON form of "
                                "events (it names the event type or version); rename the field")
    for name in registry.event_types("raw"):
        problems += _check_pairs(registry, name)
    problems += check_compatibility(registry)
    return problems


def _check_pairs(registry: Registry, name: str) -> list[str]:
    minimised = registry.versions(name, "minimised")
    if not minimised:
        return [f"schema raw/{name}: has no minimised counterpart; add schemas/avro/minimised/{name}/v1.avsc "
                "with the fields its rules produce"]
    by_version = {m.version: m for m in minimised}
    raws = registry.versions(name, "raw")
    pairs = [(r, by_version[r.version]) for r in raws if r.version in by_version]
    latest = (raws[-1], minimised[-1])
    if latest not in pairs:
        pairs.append(latest)
    problems: list[str] = []
    for raw, mini in pairs:
        problems += check_pair(raw, mini)
    return list(dict.fromkeys(problems))


def check_pair(raw: EventSchema, minimised: EventSchema) -> list[str]:
    """Problems between one raw schema version and the minimised version it is turned into."""
    problems: list[str] = []
    raw_types = raw.field_types()
    mini_types = minimised.field_types()
    producers: dict[str, list[str]] = {}
    for policy in raw.policies:
        if policy.category in _NEVER_IN_CLEAR and policy.rule == "keep":
            problems.append(f"schema {raw.key}.{policy.field}: {policy.category} must never be kept in clear; "
                            "use rule drop or " + ("truncate" if policy.category == "network_address"
                                                    else "scrub" if policy.category == "free_text"
                                                    else "pseudonymise"))
        for out in policy.into:
            producers.setdefault(out, []).append(policy.field)
            if out not in mini_types:
                problems.append(f"schema {raw.key}.{policy.field}: rule {policy.rule} produces {out!r}, which "
                                f"{minimised.key} lacks; add the field there or change \"into\"")
                continue
            if policy.rule == "keep":
                if _type_key(mini_types[out]) != _type_key(raw_types[policy.field]):
                    problems.append(f"schema {minimised.key}.{out}: type differs from {raw.key}.{policy.field}, "
                                    "which is kept as sent; give both the same type")
            elif mini_types[out] != _NULLABLE_STRING:
                problems.append(f"schema {minimised.key}.{out}: rule {policy.rule} of {raw.key}.{policy.field} "
                                "yields a string or nothing; make its type [\"null\", \"string\"] with default null")
    for out, sources in producers.items():
        if len(sources) > 1:
            problems.append(f"schema {minimised.key}.{out}: produced by {len(sources)} raw fields "
                            f"({', '.join(sources)}) of {raw.key}; each minimised field has exactly one source")
    for out in mini_types:
        if out not in producers:
            problems.append(f"schema {minimised.key}.{out}: no field of {raw.key} produces it; name it in a raw "
                            "field's \"into\" or remove it")
    return problems


def _type_key(avro_type: Any) -> str:
    """A comparable form of a field type that ignores docs, namespaces of enums and attribute order."""
    def strip(t: Any) -> Any:
        if isinstance(t, list):
            return [strip(x) for x in t]
        if isinstance(t, dict):
            keep = ("type", "logicalType", "symbols", "items", "values", "size", "fields")
            out = {k: strip(v) for k, v in t.items() if k in keep}
            if "name" in t:  # enums/fixed are compared by their short name, not the namespace
                out["name"] = str(t["name"]).rsplit(".", 1)[-1]
            return out
        return t
    return json.dumps(strip(avro_type), sort_keys=True)


def check_compatibility(registry: Registry) -> list[str]:
    """Each version of each schema read as a reader of every earlier version of it (backward
    compatibility). Reports, rather than raises, when the ``avro`` package is missing."""
    try:
        avro_schema: Any = importlib.import_module("avro.schema")
        compatibility: Any = importlib.import_module("avro.compatibility")
    except ImportError:
        return ["schema compatibility check needs the Apache avro package: pip install avro "
                "(or pip install -e '.[test]')"]
    problems: list[str] = []
    for kind in ("raw", "minimised"):
        for name in registry.event_types(kind):
            versions = registry.versions(name, kind)
            parsed: list[Any] = []
            for version in versions:
                try:
                    parsed.append(avro_schema.parse(json.dumps(version.definition)))
                except Exception as exc:  # the avro package raises several kinds
                    problems.append(f"schema {version.key}: the avro package cannot parse it "
                                    f"({type(exc).__name__}: {exc}); keep to the Avro specification")
                    parsed.append(None)
            for i, (new, new_parsed) in enumerate(zip(versions, parsed, strict=True)):
                for old, old_parsed in zip(versions[:i], parsed[:i], strict=True):
                    if new_parsed is None or old_parsed is None:
                        continue
                    result = compatibility.ReaderWriterCompatibilityChecker().get_compatibility(new_parsed, old_parsed)
                    if result.compatibility is not compatibility.SchemaCompatibilityType.compatible:
                        problems.append(f"schema {new.key}: cannot read data written with {old.key} "
                                        f"({_describe(result)}); give new fields a default and keep old types")
    return problems


def _describe(result: Any) -> str:
    kinds: Iterable[Any] = getattr(result, "incompatibilities", []) or []
    locations: Iterable[str] = getattr(result, "locations", []) or []
    names = sorted(str(getattr(k, "value", k)) for k in kinds)
    fields: Iterable[str] = getattr(result, "messages", []) or []
    about = f" ({', '.join(sorted(str(m) for m in fields))})" if fields else ""
    return f"{', '.join(names) or 'incompatible'}{about} at {', '.join(sorted(locations)) or '/'}"
