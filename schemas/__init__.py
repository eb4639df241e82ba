"""Privacy-annotated Avro schemas of every raw and minimised event: loading, validation, encoding."""

from schemas.annotations import CATEGORIES, METHODS, RULES, FieldPolicy
from schemas.check import check_schemas
from schemas.encoding import decode, encode
from schemas.jsonform import from_json, to_json
from schemas.policy import policy_report
from schemas.purposes import Purpose
from schemas.registry import EventSchema, Registry, default_registry, load_registry

__all__ = [
    "CATEGORIES",
    "METHODS",
    "RULES",
    "EventSchema",
    "FieldPolicy",
    "Purpose",
    "Registry",
    "check_schemas",
    "decode",
    "default_registry",
    "encode",
    "from_json",
    "load_registry",
    "policy_report",
    "to_json",
]
