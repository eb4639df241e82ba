"""The JSON form of events, for the collector, the log shipper and `datamin minimise`.

An event is one JSON object naming its type under "event", its fields beside it::

    {"event": "http_request", "time": "2026-11-25T10:00:00Z", "client_ip": "203.0.113.7", ...}

Times are ISO 8601 strings with a zone (or epoch milliseconds). "event_id" may be left out: a
random one is given. Fields the schema does not have are refused, not ignored, so that new data
cannot slip in unnoticed. Errors name the event type and field, never the value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from datamin.exceptions import ValidationError
from schemas.limits import MAX_MAP_ENTRIES, MAX_STRING
from schemas.registry import EventSchema, Registry

__all__ = ["MAX_MAP_ENTRIES", "MAX_STRING", "from_json", "to_json"]

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_META = ("event", "version")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_json(obj: Any, registry: Registry, kind: str = "raw") -> tuple[EventSchema, dict[str, Any]]:
    """Validates a JSON object against its event type's schema and returns the Avro record."""
    if not isinstance(obj, Mapping):
        raise ValidationError("an event must be a JSON object")
    name = obj.get("event")
    if not isinstance(name, str) or name not in registry.event_types(kind):
        raise ValidationError(f"\"event\" must name one of: {', '.join(registry.event_types(kind))}")
    version = obj.get("version")
    if version is None:
        schema = registry.latest(name, kind)
    elif isinstance(version, int) and not isinstance(version, bool) and version in {
        s.version for s in registry.versions(name, kind)
    }:
        schema = registry.get(name, kind, version)
    else:
        raise ValidationError(f"{name}: \"version\" must be one of the known versions")
    types = schema.field_types()
    unknown = [k for k in obj if k not in types and k not in _META]
    if unknown:
        # a name is shown only when it looks like a field name: anything else could be a value
        shown = ", ".join(repr(k) if _FIELD_NAME.fullmatch(str(k)) else "(a name that is not a field name)"
                          for k in unknown[:5])
        raise ValidationError(f"{name}: unknown field(s) {shown}; the schema has: {', '.join(types)}")
    record: dict[str, Any] = {}
    for field_name, avro_type in types.items():
        if field_name in obj:
            record[field_name] = _convert(obj[field_name], avro_type, f"{name}.{field_name}")
        elif field_name == "event_id":
            record[field_name] = str(uuid.uuid4())
        elif _nullable(avro_type):
            record[field_name] = None
        else:
            raise ValidationError(f"{name}.{field_name}: required field is missing")
    return schema, record


def to_json(schema: EventSchema, record: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of a decoded record (times as ISO 8601 UTC strings, milliseconds), naming its
    event type and schema version, so that `from_json` of it gives back the same record."""
    out: dict[str, Any] = {"event": schema.name, "version": schema.version}
    for key, value in record.items():
        out[key] = _iso(value) if isinstance(value, datetime) else value
    return out


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def _convert(value: Any, avro_type: Any, where: str) -> Any:
    if isinstance(avro_type, list):
        if value is None:
            if "null" in avro_type:
                return None
            raise ValidationError(f"{where}: must not be null")
        branches = [t for t in avro_type if t != "null"]
        return _convert(value, branches[0], where)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if avro_type.get("logicalType") == "timestamp-millis":
            return _timestamp(value, where)
        if kind == "enum":
            if not isinstance(value, str) or value not in avro_type["symbols"]:
                raise ValidationError(f"{where}: must be one of {', '.join(avro_type['symbols'])}")
            return value
        if kind == "map":
            if not isinstance(value, Mapping) or len(value) > MAX_MAP_ENTRIES:
                raise ValidationError(f"{where}: must be an object of at most {MAX_MAP_ENTRIES} string values")
            return {_convert(k, "string", where): _convert(v, avro_type["values"], where) for k, v in value.items()}
        return _convert(value, kind, where)
    if avro_type == "string":
        if not isinstance(value, str):
            raise ValidationError(f"{where}: must be a string")
        if len(value) > MAX_STRING:
            raise ValidationError(f"{where}: longer than {MAX_STRING} characters")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(f"{where}: holds a lone surrogate, which UTF-8 cannot encode") from None
        return value
    if avro_type == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(f"{where}: must be true or false")
        return value
    if avro_type in _INT_RANGE:
        low, high = _INT_RANGE[avro_type]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError(f"{where}: must be an integer in the {avro_type} range")
        return value
    if avro_type in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise ValidationError(f"{where}: must be a number")
        return float(value)
    raise ValidationError(f"{where}: unsupported schema type")


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        try:  # exact integer arithmetic: value / 1000 as a float loses milliseconds far from 1970
            return _EPOCH + timedelta(milliseconds=value)
        except (OverflowError, OSError, ValueError):
            raise ValidationError(f"{where}: epoch milliseconds out of range") from None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                raise ValidationError(f"{where}: time needs a zone, e.g. 2026-11-25T10:00:00Z")
            # the schemas hold milliseconds: keep no more, so that a record survives encoding unchanged
            try:
                utc = parsed.astimezone(UTC)
            except OverflowError:
                raise ValidationError(f"{where}: time out of range in UTC") from None
            return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    raise ValidationError(f"{where}: must be an ISO 8601 time with a zone or epoch milliseconds")
