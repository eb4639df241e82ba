"""Privacy annotations: what kind of personal data a raw field is and what may be done with it.

Every field of every raw schema carries a ``privacy`` attribute::

    {"category": "network_address", "rule": "truncate", "purposes": ["security"], "into": "client_network"}

This is the one place a field's treatment is declared. The processors read their rules from here;
`datamin policy` prints the record of processing from here. A field without one is a schema error.
"""

from __future__ import annotations

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
    "keep": "kept as sent",
    "drop": "dropped",
    "truncate": "IP address truncated to a network prefix",
    "pseudonymise": "replaced by a keyed, rotating pseudonym, only where a purpose's basis allows; else dropped",
    "generalise": "reduced to a coarser value",
    "coarsen": "reduced to its major version",
    "strip_query": "query string, fragment and identifiers in the path removed",
    "scrub": "e-mail addresses, IP and MAC addresses, phone and card numbers, tokens and user names replaced",
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
_KNOWN_KEYS = {"category", "rule", "purposes", "into", "method", "origin_only"}


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
    return FieldPolicy(name, category, rule, tuple(field_purposes), into, method, origin_only)
