"""Privacy annotations: what kind of personal data a raw field is and what may be done with it.

Every field of every raw schema carries a ``privacy`` attribute::

    {"category": "network_address", "rule": "truncate", "purposes": ["security"], "into": "client_network"}

This is the one place a field's treatment is declared. The processors read their rules from here;
`datamin policy` prints the record of processing from here. A field without one is a schema error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamin.exceptions import SchemaError

CATEGORIES = (
    "identifier",
    "network_address",
    "device",
    "location",
    "behaviour",
    "free_text",
    "technical",
    "time",
)

RULES = {
    "keep": "kept as sent (a string only when of its declared shape and free of personal data; else null)",
    "drop": "dropped",
    "truncate": "IP address truncated to a network prefix",
    "pseudonymise": "replaced by a keyed, rotating pseudonym, only where a purpose's basis allows; else dropped",
    "generalise": "reduced to a coarser value",
    "coarsen": "reduced to its major version",
    "strip_query": "query string, fragment and identifiers in the path removed",
    "scrub": "decoded; e-mail addresses, IP and MAC addresses, validated phone, card, national id, account and device "
             "numbers, GPS coordinates, secrets, user names and personal names replaced",
}

# generalise / coarsen methods and the number of output fields each yields (in this order)
METHODS: Mapping[str, tuple[str, ...]] = {
    "user_agent": ("browser_family", "browser_major", "os_family", "os_major", "device_class"),
    "browser": ("browser_family", "browser_major"),
    "primary_language": ("language",),
    "country": ("country",),
    "major_version": ("major",),
}
_RULES_WITH_METHOD = ("generalise", "coarsen")
_KNOWN_KEYS = {"category", "rule", "purposes", "into", "method", "origin_only", "shape"}
NAMED_SHAPES: Mapping[str, str] = {
    "site_host": "one of the configured site hosts (minimise.site_hosts), or any host name when none is configured",
}
"""shapes that depend on configuration, named instead of spelled out"""
SHAPE_MAX_LENGTH = 64
"""longest value any shape accepts"""


@dataclass(frozen=True, slots=True)
class Shape:
    """The declared shape of a string kept as sent: a value of any other shape is not stored."""

    pattern: str | None = None
    """a regular expression the whole value must match"""
    vocabulary: tuple[str, ...] = ()
    """the values allowed, exactly as written"""
    named: str | None = None
    """one of NAMED_SHAPES"""

    def describe(self) -> str:
        if self.named:
            return NAMED_SHAPES[self.named]
        if self.vocabulary:
            return "one of " + ", ".join(self.vocabulary)
        return f"matching {self.pattern}"


def _is_string_type(avro_type: Any) -> tuple[bool, bool]:
    """(whether the type is a string, whether it is nullable)"""
    if avro_type == "string":
        return True, False
    if isinstance(avro_type, list) and sorted(map(str, avro_type)) == ["null", "string"]:
        return True, True
    return False, False


def _parse_shape(schema: str, name: str, field: Mapping[str, Any], raw: Mapping[str, Any], rule: str) -> Shape | None:
    declared = raw.get("shape")
    is_string, nullable = _is_string_type(field.get("type"))
    if declared is None:
        if rule == "keep" and is_string and nullable:
            raise SchemaError(schema, "is a string kept as sent, so it must declare its \"shape\" (a \"pattern\" or a "
                              "\"vocabulary\", or \"site_host\"): values from the internet of any other shape are "
                              "dropped, not stored", name)
        return None
    if rule != "keep" or not (is_string and nullable):
        raise SchemaError(schema, "shape is only for nullable strings with rule keep", name)
    if isinstance(declared, str):
        if declared not in NAMED_SHAPES:
            raise SchemaError(schema, f"shape {declared!r} is not one of {sorted(NAMED_SHAPES)}", name)
        return Shape(named=declared)
    if not isinstance(declared, Mapping) or len(declared) != 1 or not {"pattern", "vocabulary"} & set(declared):
        raise SchemaError(schema, "shape must be {\"pattern\": REGEX} or {\"vocabulary\": [VALUES]} or a named shape",
                          name)
    if "pattern" in declared:
        pattern = declared["pattern"]
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise SchemaError(schema, f"shape pattern {pattern!r} is not a regular expression ({exc})", name) from None
        return Shape(pattern=pattern)
    vocabulary = declared["vocabulary"]
    if not isinstance(vocabulary, list) or not vocabulary or not all(isinstance(v, str) and v for v in vocabulary):
        raise SchemaError(schema, "shape vocabulary must be a non-empty list of strings", name)
    return Shape(vocabulary=tuple(vocabulary))


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """The parsed privacy annotation of one raw field."""

    field: str
    category: str
    rule: str
    purposes: tuple[str, ...]
    into: tuple[str, ...]
    """names of the minimised fields this field becomes (empty when dropped)"""
    method: str | None = None
    origin_only: bool = False
    shape: Shape | None = None
    """the declared shape of a string kept as sent (rule keep)"""


def parse_annotation(schema: str, field: Mapping[str, Any], purposes: Mapping[str, Any]) -> FieldPolicy:
    """Validates one field's ``privacy`` attribute; raises SchemaError naming schema and field."""
    name = str(field.get("name"))
    raw = field.get("privacy")
    if raw is None:
        raise SchemaError(schema, "has no privacy annotation; add a \"privacy\" attribute with "
                          "category, rule and purposes (see schemas/README.md)", name)
    if not isinstance(raw, Mapping):
        raise SchemaError(schema, "privacy annotation must be an object", name)
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise SchemaError(schema, f"unknown privacy attribute(s) {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}", name)
    category = raw.get("category")
    if category not in CATEGORIES:
        raise SchemaError(schema, f"category {category!r} is not one of {', '.join(CATEGORIES)}", name)
    rule = raw.get("rule")
    if rule not in RULES:
        raise SchemaError(schema, f"rule {rule!r} is not one of {', '.join(RULES)}", name)
    field_purposes = raw.get("purposes")
    if not isinstance(field_purposes, list) or not all(isinstance(p, str) for p in field_purposes):
        raise SchemaError(schema, "purposes must be a list of purpose names", name)
    for purpose in field_purposes:
        if purpose not in purposes:
            raise SchemaError(schema, f"purpose {purpose!r} is not in schemas/purposes.json", name)
    if rule != "drop" and not field_purposes:
        raise SchemaError(schema, f"rule {rule!r} keeps data, so it must name at least one purpose", name)
    if category == "identifier" and rule not in ("drop", "pseudonymise"):
        raise SchemaError(schema, f"an identifier may only be dropped or pseudonymised, not {rule!r}", name)
    if category == "network_address" and rule not in ("drop", "truncate"):
        raise SchemaError(schema, f"a network address may only be dropped or truncated, not {rule!r}", name)
    if category == "free_text" and rule not in ("drop", "scrub"):
        raise SchemaError(schema, f"free text may only be dropped or scrubbed, not {rule!r}", name)

    method = raw.get("method")
    if rule in _RULES_WITH_METHOD:
        if method not in METHODS:
            raise SchemaError(schema, f"rule {rule!r} needs a method, one of {', '.join(METHODS)}", name)
    elif method is not None:
        raise SchemaError(schema, f"method is only for rules {_RULES_WITH_METHOD}", name)

    into_raw = raw.get("into", name)
    into = tuple(into_raw) if isinstance(into_raw, list) else (into_raw,)
    if not all(isinstance(n, str) and n for n in into):
        raise SchemaError(schema, "into must be a field name or a list of field names", name)
    expected = len(METHODS[method]) if method else 1
    if rule == "drop":
        if "into" in raw:
            raise SchemaError(schema, "a dropped field produces nothing; remove \"into\"", name)
        into = ()
    elif len(into) != expected:
        raise SchemaError(schema, f"into names {len(into)} field(s) but method {method!r} yields {expected}", name)

    origin_only = raw.get("origin_only", False)
    if not isinstance(origin_only, bool) or (origin_only and rule != "strip_query"):
        raise SchemaError(schema, "origin_only is a boolean for rule strip_query only", name)
    shape = _parse_shape(schema, name, field, raw, rule)
    return FieldPolicy(name, category, rule, tuple(field_purposes), into, method, origin_only, shape)
