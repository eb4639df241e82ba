"""The record of processing, generated from the schema annotations and the configuration.

`policy_report(registry, config)` states, for every raw event type and field, its category, its
purposes (in the privacy policy's own words), their legal bases, the minimisation rule with the
configured specifics, the minimised field(s) it becomes, and where it is kept and for how long. It
reads the same annotations and settings the processors and the expiry read, so it cannot drift from
what the code does.

The JSON form (``fmt="json"``) is a stable structure, versioned by its ``"format"`` key::

    {
      "format": "datamin.record-of-processing/1",
      "retention_cap_days": 365,
      "signals": {"do_not_track": {"honoured": bool, "effect": str},
                  "global_privacy_control": {"honoured": bool, "effect": str}},
      "unknown_fields": str,                       # what happens to fields no schema declares
      "pseudonyms": {"method": str, "key_rotation": str, "consent_validity_days": int},
      "small_groups": {"min_visitors": int, "effect": str},   # small-cell suppression of analyst views
      "purposes": {name: {"policy": str, "legal_basis": str, "consent": str | null}},
      "events": [{
        "event": str, "raw_schema": str, "minimised_schema": str | null,
        "stores": [{"store": "raw_topic" | "minimised_topic" | "warehouse_table", "name": str,
                    "retention": int, "unit": "hours" | "days", "compacted": bool}],
        "fields": [{
          "field": str, "category": str,
          "purposes": [{"name": str, "policy": str, "legal_basis": str, "consent": str | null}],
          "legal_basis": [str],                    # distinct bases of its purposes, in purpose order
          "rule": str, "minimisation": str,        # the rule and its human wording with specifics
          "becomes": [str],                        # minimised fields; empty when dropped
          "kept": [store, ...]                     # the stores above that hold it
        }]
      }]
    }

Keys are only ever added within a format version; a removal or change of meaning bumps it.
"""

from __future__ import annotations

import json
from typing import Any

from datamin.config import RETENTION_CAP_DAYS, Config
from datamin.topics import Topics
from schemas.annotations import METHODS, RULES, FieldPolicy
from schemas.registry import Registry

FORMAT = "datamin.record-of-processing/1"
FORMATS = ("markdown", "json")

_METHOD_WORDS = {
    "user_agent": "browser family and major version, OS family and major version, device class",
    "browser": "browser family and major version",
    "primary_language": "the primary language subtag",
    "country": "the ISO 3166-1 country code",
    "major_version": "the major version",
}
_BASIS_WORDS = {
    "consent": "consent",
    "legitimate_interest": "legitimate interest",
    "legal_obligation": "legal obligation",
    "vital_interests": "vital interests",
}
_STORE_WORDS = {"raw_topic": "raw topic", "minimised_topic": "minimised topic", "warehouse_table": "warehouse table"}
_HOUR_MS = 3600 * 1000


def policy_report(registry: Registry, config: Config, fmt: str = "markdown") -> str:
    """The record of processing as Markdown tables (default) or as JSON (``fmt="json"``, the
    structure in this module's docstring). Raises ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    doc = policy_document(registry, config)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return _markdown(doc)


def policy_document(registry: Registry, config: Config) -> dict[str, Any]:
    """The record of processing as plain data (the JSON structure)."""
    m = config.minimise
    purposes = {
        p.name: {"policy": p.policy, "legal_basis": p.basis, "consent": p.consent}
        for p in registry.purposes.values()
    }
    return {
        "format": FORMAT,
        "retention_cap_days": RETENTION_CAP_DAYS,
        "signals": {
            "do_not_track": {
                "honoured": m.honour_dnt,
                "effect": ("DNT: 1 is treated as an objection to marketing" if m.honour_dnt
                           else "DNT: 1 is recorded but not acted on, as the policy states"),
            },
            "global_privacy_control": {
                "honoured": m.honour_gpc,
                "effect": ("Sec-GPC: 1 is treated as an objection to marketing" if m.honour_gpc
                           else "Sec-GPC: 1 is recorded but not acted on"),
            },
        },
        "unknown_fields": ("dropped: a field that no schema declares is refused at intake and never reaches "
                           "a topic or the warehouse; a new field needs a schema version with its annotation"),
        "pseudonyms": {
            "method": "HMAC-SHA-256 with a secret key kept outside the warehouse",
            "key_rotation": config.pseudonymise.rotation,
            "consent_validity_days": m.consent_validity_days,
        },
        "small_groups": {
            "min_visitors": config.warehouse.min_visitors,
            "effect": (f"analyst views and the report show a page, referrer, search term, country, browser, OS "
                       f"or device group only when at least {config.warehouse.min_visitors} distinct visitors "
                       "are in it; smaller groups are folded into one \"(other)\" row"),
        },
        "purposes": purposes,
        "events": [_event(registry, config, name) for name in registry.event_types("raw")],
    }


def _stores(config: Config, event: str) -> list[dict[str, Any]]:
    topics = Topics(config)
    specs = {s.name: s for s in topics.all()}
    out: list[dict[str, Any]] = []
    for store, name in (("raw_topic", topics.raw(event)), ("minimised_topic", topics.minimised(event))):
        spec = specs.get(name)
        if spec is None:
            continue
        hours = spec.retention_ms // _HOUR_MS
        if spec.role == "raw":  # configured in hours (topics.raw_retention_hours)
            out.append({"store": store, "name": name, "retention": hours, "unit": "hours",
                        "compacted": spec.compacted})
        else:
            out.append({"store": store, "name": name, "retention": hours // 24, "unit": "days",
                        "compacted": spec.compacted})
    days = config.warehouse.retention_days.get(event)
    if days is not None:
        out.append({"store": "warehouse_table", "name": event, "retention": days, "unit": "days",
                    "compacted": False})
    return out


def _event(registry: Registry, config: Config, name: str) -> dict[str, Any]:
    raw = registry.latest(name, "raw")
    minimised = registry.latest(name, "minimised") if name in registry.event_types("minimised") else None
    stores = _stores(config, name)
    fields = []
    for policy in raw.policies:
        kept = [s for s in stores if s["store"] == "raw_topic" or policy.into]
        purposes = [{"name": p, "policy": registry.purposes[p].policy, "legal_basis": registry.purposes[p].basis,
                     "consent": registry.purposes[p].consent} for p in policy.purposes]
        fields.append({
            "field": policy.field,
            "category": policy.category,
            "purposes": purposes,
            "legal_basis": list(dict.fromkeys(str(p["legal_basis"]) for p in purposes)),
            "rule": policy.rule,
            "minimisation": _minimisation(policy, registry, config),
            "becomes": list(policy.into),
            "kept": kept,
        })
    return {"event": name, "raw_schema": raw.key, "minimised_schema": minimised.key if minimised else None,
            "stores": stores, "fields": fields}


def _minimisation(policy: FieldPolicy, registry: Registry, config: Config) -> str:
    m = config.minimise
    words = RULES[policy.rule]
    if policy.rule == "truncate":
        return f"{words}: IPv4 to /{m.ipv4_prefix}, IPv6 to /{m.ipv6_prefix}"
    if policy.rule == "strip_query":
        if policy.origin_only:
            return "reduced to its origin (scheme and host); path, query string and fragment removed"
        allowed = ", ".join(m.query_allowlist) or "none"
        return f"{words}; query parameters kept: {allowed}"
    if policy.rule in ("generalise", "coarsen") and policy.method:
        return f"{words}: {_METHOD_WORDS.get(policy.method, ', '.join(METHODS[policy.method]))}"
    if policy.rule == "pseudonymise":
        conditions = []
        needs_consent = False
        for name in policy.purposes:
            purpose = registry.purposes[name]
            if purpose.consent is not None:
                conditions.append(f"for {name} only with consent to {purpose.consent}")
                needs_consent = True
            else:
                conditions.append(f"for {name} on the basis of {_BASIS_WORDS[purpose.basis]}")
        validity = f" (a consent choice counts for {m.consent_validity_days} days)" if needs_consent else ""
        return (f"replaced by a keyed pseudonym (HMAC-SHA-256, key rotating {config.pseudonymise.rotation}), "
                f"never kept in clear: {'; '.join(conditions)}{validity}; otherwise dropped")
    return words


def _cell(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _kept_words(stores: list[dict[str, Any]]) -> str:
    words = [f"{_STORE_WORDS[s['store']]} {s['retention']} {s['unit']}" for s in stores]
    if len(stores) == 1 and stores[0]["store"] == "raw_topic":
        return f"only in the {words[0]}"
    return "; ".join(words)


def _markdown(doc: dict[str, Any]) -> str:
    signals = doc["signals"]
    pseudonyms = doc["pseudonyms"]
    lines = [
        "# Record of processing",
        "",
        "Generated by datamin from the privacy annotations of its event schemas and its configuration: "
        "the same declarations the processors apply, so this record describes what the code does.",
        "",
        f"- **Retention cap:** nothing is kept longer than {doc['retention_cap_days']} days "
        "(\"no longer than one year\").",
        f"- **Do Not Track:** {'honoured' if signals['do_not_track']['honoured'] else 'not honoured'} "
        f"({signals['do_not_track']['effect']}).",
        f"- **Global Privacy Control:** "
        f"{'honoured' if signals['global_privacy_control']['honoured'] else 'not honoured'} "
        f"({signals['global_privacy_control']['effect']}).",
        f"- **Unknown fields:** {doc['unknown_fields']}.",
        f"- **Pseudonyms:** {pseudonyms['method']}; keys rotate {pseudonyms['key_rotation']}; a consent choice "
        f"counts for {pseudonyms['consent_validity_days']} days, then as none until renewed.",
        f"- **Small groups:** {doc['small_groups']['effect']}.",
        "",
        "## Purposes",
        "",
        "| Purpose | In the policy's words | Legal basis | Consent needed |",
        "| --- | --- | --- | --- |",
    ]
    for name, p in doc["purposes"].items():
        lines.append(f"| {_cell(name)} | {_cell(p['policy'])} | {_cell(_BASIS_WORDS[p['legal_basis']])} | "
                     f"{_cell(p['consent'] or '—')} |")
    for event in doc["events"]:
        lines += [
            "",
            f"## {event['event']}",
            "",
            f"Schemas: `{event['raw_schema']}` → `{event['minimised_schema'] or 'none'}`.",
            "",
            "| Kept in | Name | For |",
            "| --- | --- | --- |",
        ]
        for store in event["stores"]:
            compacted = " (compacted)" if store["compacted"] else ""
            lines.append(f"| {_STORE_WORDS[store['store']]} | `{_cell(store['name'])}` | "
                         f"{store['retention']} {store['unit']}{compacted} |")
        lines += [
            "",
            "| Field | Category | Purposes | Legal basis | Minimisation | Becomes | Kept where, how long |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for f in event["fields"]:
            purposes = ", ".join(p["name"] for p in f["purposes"]) or "—"
            bases = ", ".join(_BASIS_WORDS[b] for b in f["legal_basis"]) or "—"
            becomes = ", ".join(f"`{b}`" for b in f["becomes"]) or "— (dropped)"
            kept = _kept_words(f["kept"])
            lines.append(f"| `{_cell(f['field'])}` | {_cell(f['category'])} | {_cell(purposes)} | {_cell(bases)} | "
                         f"{_cell(f['minimisation'])} | {_cell(becomes)} | {_cell(kept)} |")
    return "\n".join(lines) + "\n"
