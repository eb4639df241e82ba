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
      "marketing_basis": {"in_force": "consent" | "legitimate_interest", "effect": str, "setting": str},
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

and, describing the deployment as a whole::

      "policy_version": str,                       # the privacy policy this record describes (policy.version)
      "controller": {"name": str, "address": str, "contact": str},
      "recipients": [str],                         # categories of recipients (policy.recipients)
      "security_measures": [str],
      "stricter_than_policy": [{"practice": str, "policy_says": str, "datamin": str, "setting": str | null}],
      "subject_key_in_clear": [str],               # the stores that hold a subject key in clear, and for how long
      "inventory": [{"store": str, "kind": str, "location": str, "holds": str, "cap": str, "cap_days": float | null,
                     "enforced_by": str, "how": str}]    # every store datamin keeps (datamin retention)

Each event's store also has ``"max_age"`` (same unit): retention plus a topic's segment roll or a
table's day partition, the longest anything stays. Keys are only ever added within a format version;
a removal or change of meaning bumps it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from datamin.config import RETENTION_CAP_DAYS, Config
from datamin.retention import Store, cap_cells, inventory
from datamin.topics import Topics
from schemas.annotations import METHODS, RULES, FieldPolicy
from schemas.purposes import MARKETING_PURPOSE, Purpose, with_marketing_basis
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


def policy_report(registry: Registry, config: Config, fmt: str = "markdown",
                  stores: Sequence[Store] | None = None) -> str:
    """The record of processing as Markdown tables (default) or as JSON (``fmt="json"``, the
    structure in this module's docstring). ``stores`` is the retention inventory (default: the stores
    registered so far; the command line passes the whole one). Raises ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    doc = policy_document(registry, config, stores)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return _markdown(doc)


def policy_document(registry: Registry, config: Config, stores: Sequence[Store] | None = None) -> dict[str, Any]:
    """The record of processing as plain data (the JSON structure)."""
    stores = inventory(config) if stores is None else stores
    m = config.minimise
    purposes = {
        p.name: {"policy": p.policy, "legal_basis": p.basis, "consent": p.consent}
        for p in _purposes(registry, config).values()
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
        "marketing_basis": {
            "in_force": m.marketing_basis,
            "effect": ("a pseudonym is kept for marketing effectiveness only with consent to marketing (stricter "
                       "than the policy, which names legitimate interest)" if m.marketing_basis == "consent"
                       else "marketing effectiveness rests on legitimate interest, as the policy says: a pseudonym "
                            "is kept for it unless the person objected (declined marketing, withdrew consent, "
                            "Global Privacy Control when honoured, restriction or objection)"),
            "setting": "minimise.marketing_basis",
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
        "policy_version": config.policy.version,
        "controller": {"name": config.policy.controller, "address": config.policy.address,
                       "contact": config.policy.contact},
        "recipients": list(config.policy.recipients),
        "security_measures": _security_measures(config),
        "stricter_than_policy": _stricter(registry, config),
        "subject_key_in_clear": _clear_subject_keys(config),
        "inventory": [{"store": s.name, "kind": s.kind, "location": s.location, "holds": s.holds, **cap_cells(s),
                       "enforced_by": s.enforced_by, "how": s.how} for s in stores],
    }


def _security_measures(config: Config) -> list[str]:
    k = config.kafka
    transport = ("Kafka connections use TLS" if k.security_protocol in ("SSL", "SASL_SSL")
                 else "Kafka connections are NOT encrypted (kafka.security_protocol = "
                      f"{k.security_protocol}); use SASL_SSL beyond one machine")
    if k.security_protocol.startswith("SASL_"):
        transport += f" and authenticate with SASL {k.sasl_mechanism}"
    return [
        transport,
        f"IP addresses truncated before anything is kept (IPv4 /{config.minimise.ipv4_prefix}, "
        f"IPv6 /{config.minimise.ipv6_prefix}); identifiers kept only as keyed pseudonyms (HMAC-SHA-256)",
        f"pseudonymisation keys in {config.pseudonymise.key_dir}, outside the warehouse, files 0600 in a 0700 "
        f"folder, rotating {config.pseudonymise.rotation}, deleted once no retention needs them",
        "free text scrubbed of e-mail addresses, IP addresses, phone numbers, tokens and user names in paths",
        "raw topics (data in clear) kept hours, at most a week; every other store capped within a year "
        "and expired by code (see the inventory)",
        "a daily leak scan searches the warehouse for full IP addresses, e-mail addresses, phone and card "
        "numbers and clear identifiers, and records the result in the audit trail",
        "the rights trail and the erased-subjects topic hold keyed hashes of subject keys, never the keys",
        "every expiry, compaction, erasure and leak scan is recorded in the audit trail",
        "analysts open the DuckDB catalog read-only",
    ]


def _purposes(registry: Registry, config: Config) -> dict[str, Purpose]:
    """The purpose catalogue as this deployment applies it (marketing on ``minimise.marketing_basis``)."""
    return with_marketing_basis(registry.purposes, config.minimise.marketing_basis)


def _stricter(registry: Registry, config: Config) -> list[dict[str, Any]]:
    """Where datamin's defaults (or settings) are stricter than the policy's words, said as such."""
    m = config.minimise
    out: list[dict[str, Any]] = []
    if m.honour_gpc:
        out.append({
            "practice": "Global Privacy Control (Sec-GPC: 1) is honoured as an objection to marketing",
            "policy_says": "section 9: 'we do not respond to DNT browser signals or any other mechanism that "
                           "automatically conveys your choice not to be tracked online'",
            "datamin": "honours GPC by default; DNT is recorded but not acted on, as the policy says",
            "setting": "minimise.honour_gpc (false gives the policy's practice)",
        })
    marketing = registry.purposes.get(MARKETING_PURPOSE)
    if marketing is not None and marketing.consent is not None and m.marketing_basis == "consent":
        out.append({
            "practice": "marketing effectiveness uses identifiers only with consent to marketing",
            "policy_says": "section 3 names legitimate interest for 'Support our marketing activities'",
            "datamin": "asks for consent (the marketing cookie category) before keeping a pseudonym for it",
            "setting": 'minimise.marketing_basis ("legitimate_interest" gives the policy\'s practice)',
        })
    out.append({
        "practice": "shorter retention than the year the policy allows",
        "policy_says": "'No purpose in this statement will require us to keep your personal information for "
                       "longer than one year'",
        "datamin": "tables: " + ", ".join(f"{t} {d} days" for t, d in sorted(config.warehouse.retention_days.items()))
                   + f"; raw topics {config.topics.raw_retention_hours} hours; minimised topics "
                     f"{config.topics.minimised_retention_days} days",
        "setting": "warehouse.retention_days, topics.* (each capped within the year)",
    })
    out.append({
        "practice": "IP addresses are never kept whole",
        "policy_says": "section 1: 'information ... such as your IP address ... is collected automatically'",
        "datamin": f"keeps only a network prefix (IPv4 /{m.ipv4_prefix}, IPv6 /{m.ipv6_prefix}) and the country",
        "setting": "minimise.ipv4_prefix, minimise.ipv6_prefix (at most /24 and /48)",
    })
    return out


def _clear_subject_keys(config: Config) -> list[str]:
    """Where a subject key (logged-in user id or consent-cookie id) is held in clear, and for how long."""
    t = Topics(config)
    raw = config.topics.raw_retention_hours
    year = next(s for s in t.all() if s.name == t.consent).max_age_ms // (24 * _HOUR_MS)
    return [
        f"the raw topics (self-service privacy requests on {t.requests_in} included), as the message key and "
        f"the subject_key field: at most {raw + 1} hours",
        f"the consent topic {t.consent}, as its message key and subject_key field: at most {year} days, so that "
        "a restarted processor knows every subject's consent (the privacy-requests topic holds only keyed hashes)",
        f"the producer spool while Kafka is away: at most {config.producer.spool_retention_days} days",
        "an access export, written where the officer says and handed to the person; datamin keeps no copy",
    ]


def _stores(config: Config, event: str) -> list[dict[str, Any]]:
    topics = Topics(config)
    specs = {s.name: s for s in topics.all()}
    out: list[dict[str, Any]] = []
    for store, name in (("raw_topic", topics.raw(event)), ("minimised_topic", topics.minimised(event))):
        spec = specs.get(name)
        if spec is None:
            continue
        hours = spec.retention_ms // _HOUR_MS
        most = spec.max_age_ms // _HOUR_MS
        if spec.role == "raw":  # configured in hours (topics.raw_retention_hours)
            out.append({"store": store, "name": name, "retention": hours, "unit": "hours",
                        "compacted": spec.compacted, "max_age": most})
        else:
            out.append({"store": store, "name": name, "retention": hours // 24, "unit": "days",
                        "compacted": spec.compacted, "max_age": most // 24})
    days = config.warehouse.retention_days.get(event)
    if days is not None:
        out.append({"store": "warehouse_table", "name": event, "retention": days, "unit": "days",
                    "compacted": False, "max_age": days + 1})
    return out


def _event(registry: Registry, config: Config, name: str) -> dict[str, Any]:
    raw = registry.latest(name, "raw")
    minimised = registry.latest(name, "minimised") if name in registry.event_types("minimised") else None
    stores = _stores(config, name)
    fields = []
    for policy in raw.policies:
        kept = [s for s in stores if s["store"] == "raw_topic" or policy.into]
        catalogue = _purposes(registry, config)
        purposes = [{"name": p, "policy": catalogue[p].policy, "legal_basis": catalogue[p].basis,
                     "consent": catalogue[p].consent} for p in policy.purposes]
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
            purpose = _purposes(registry, config)[name]
            if purpose.objection is not None:
                conditions.append(f"for {name} on the basis of {_BASIS_WORDS[purpose.basis]}, unless the person "
                                  f"objected to {purpose.objection}")
            elif purpose.consent is not None:
                conditions.append(f"for {name} only with consent to {purpose.consent}")
                needs_consent = True
            else:
                conditions.append(f"for {name} on the basis of {_BASIS_WORDS[purpose.basis]}")
        validity = f" (a consent choice counts for {m.consent_validity_days} days)" if needs_consent else ""
        return (f"replaced by a keyed pseudonym (HMAC-SHA-256, key rotating {config.pseudonymise.rotation}), "
                f"never in clear in a minimised topic or the warehouse: {'; '.join(conditions)}{validity}; "
                "otherwise dropped")
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
        f"- **Marketing effectiveness:** on {_BASIS_WORDS[doc['marketing_basis']['in_force']]} "
        f"({doc['marketing_basis']['effect']}; setting {doc['marketing_basis']['setting']}).",
        f"- **Unknown fields:** {doc['unknown_fields']}.",
        f"- **Pseudonyms:** {pseudonyms['method']}; keys rotate {pseudonyms['key_rotation']}; a consent choice "
        f"counts for {pseudonyms['consent_validity_days']} days, then as none until renewed.",
        f"- **Small groups:** {doc['small_groups']['effect']}.",
        "",
        f"- **Controller:** {doc['controller']['name']}, {doc['controller']['address']}; contact "
        f"{doc['controller']['contact']}.",
        f"- **Privacy policy described:** version {doc['policy_version']}.",
        f"- **Recipients:** {', '.join(doc['recipients']) or 'none'}.",
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
    lines += _deployment_markdown(doc)
    return "\n".join(lines) + "\n"


def _deployment_markdown(doc: dict[str, Any]) -> list[str]:
    lines = ["", "## Every store and its cap", "",
             "Everything datamin keeps, the longest anything stays in it, and what deletes it "
             "(`datamin retention` shows the oldest item in each now).", "",
             "| Store | Holds | At most | Enforced by |", "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(s['store'])} | {_cell(s['holds'])} | {_cell(s['cap'])} | {_cell(s['how'])} |"
              for s in doc["inventory"]]
    lines += ["", "## Where a subject key is held in clear", ""]
    lines += [f"- {item}" for item in doc["subject_key_in_clear"]]
    lines += ["", "## Security measures", ""]
    lines += [f"- {item}" for item in doc["security_measures"]]
    lines += ["", "## Where datamin is stricter than the policy's words", "",
              "| Practice | The policy says | datamin | Setting |", "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(x['practice'])} | {_cell(x['policy_says'])} | {_cell(x['datamin'])} | "
              f"{_cell(x['setting'] or 'none: change the purpose in schemas/purposes.json')} |"
              for x in doc["stricter_than_policy"]]
    return lines
