"""The minimiser: turns a raw event into what may be kept, by the rules the schema annotations name.

Pure: no Kafka, no files (but the pseudonym key directory). The stream processor, `datamin minimise`
and the tests all call `Minimiser.minimise`. Nothing about a field's treatment is decided here that
the annotation does not say; a field without a rule is dropped and counted (fail-closed).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datamin.config import MinimiseConfig
from processors.consent_state import NO_CONSENT, ConsentState
from processors.transforms import (
    KeyStore,
    country_code,
    parse_user_agent,
    primary_language,
    pseudonymise,
    referrer_origin,
    scrub_text,
    strip_url,
    truncate_ip,
)
from schemas.annotations import FieldPolicy
from schemas.registry import EventSchema, Registry

# purposes that stand even when a subject restricted processing or objected (records the law requires)
_SURVIVES_RESTRICTION = frozenset({"legal_obligation", "vital_interests"})
_MAJOR = re.compile(r"^\s*v?(\d{1,6})")


def major_version(value: str | None) -> str | None:
    """'17.1.2' -> '17'; None when the value does not start with a number."""
    if not value:
        return None
    m = _MAJOR.match(value[:64])
    return m.group(1) if m else None


@dataclass
class Minimised:
    """One minimised event: its schema, the record, and (when asked) what was done to each field."""

    schema: EventSchema
    record: dict[str, Any]
    explain: list[tuple[str, str, str]] = field(default_factory=list)
    """(raw field, rule, outcome) per field, when explain=True"""


Step = Callable[[dict[str, Any], dict[str, Any], ConsentState, datetime], str]


class Minimiser:
    """Applies the annotated rules of every raw event type. Build once; call per event."""

    def __init__(self, registry: Registry, config: MinimiseConfig, keys: KeyStore) -> None:
        self._registry = registry
        self._config = config
        self._keys = keys
        self._allow = tuple(config.query_allowlist)
        self.counters: Counter[str] = Counter()
        """fields dropped by rule, invalid values, unknown fields — for metrics"""
        self._plans: dict[str, tuple[EventSchema, list[tuple[FieldPolicy, Step]]]] = {}
        for name in registry.event_types("raw"):
            raw = registry.latest(name, "raw")
            out = registry.latest(name, "minimised")
            self._plans[name] = (out, [(p, self._step(name, p)) for p in raw.policies])

    def minimise(self, raw: EventSchema, record: Mapping[str, Any], consent: ConsentState = NO_CONSENT,
                 *, explain: bool = False) -> Minimised:
        """The minimised form of ``record`` (a raw event of ``raw``'s type) for a subject in ``consent``."""
        out_schema, steps = self._plans[raw.name]
        out: dict[str, Any] = dict.fromkeys(out_schema.field_names)
        when = record.get("time") or record.get("received")
        if not isinstance(when, datetime):
            raise TypeError("a raw record's time must be a datetime")  # decode guarantees it
        notes: list[tuple[str, str, str]] = []
        for policy, step in steps:
            outcome = step(record, out, consent, when)
            if explain:
                notes.append((policy.field, policy.rule, outcome))
        known = {p.field for p, _ in steps}
        for extra in record.keys() - known:
            self.counters["dropped.unknown_field"] += 1
            if explain:
                notes.append((extra, "(none)", "dropped: no annotation covers this field"))
        for key in list(out):
            if key not in out_schema.field_names:  # pragma: no cover - check_schemas forbids it
                del out[key]
        return Minimised(out_schema, out, notes)

    # -- one step per annotated field -------------------------------------------------------------
    def _step(self, event: str, p: FieldPolicy) -> Step:
        src = p.field
        counters = self.counters
        rule = p.rule

        if rule == "drop":
            def drop(rec: dict[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                if rec.get(src) is not None:
                    counters[f"dropped.{event}.{src}"] += 1
                return "dropped"
            return drop

        if rule == "keep":
            dst = p.into[0]

            def keep(rec: dict[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                out[dst] = rec.get(src)
                return "kept"
            return keep

        if rule == "pseudonymise":
            return self._pseudonymise_step(event, p)

        one = self._single_value_transform(p)
        if one is not None:
            fn, label = one
            dst = p.into[0]

            def transform(rec: dict[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                value = rec.get(src)
                if value is None:
                    return "absent"
                result = fn(value)
                out[dst] = result
                if result is None:
                    counters[f"invalid.{event}.{src}"] += 1
                    return f"{label}: not a valid value, dropped"
                return label
            return transform

        if p.method in ("user_agent", "browser"):
            names = p.into
            whole = p.method == "user_agent"

            def user_agent(rec: dict[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                value = rec.get(src)
                if value is None:
                    return "absent"
                info = parse_user_agent(value)
                values = ((info.browser_family, info.browser_major, info.os_family, info.os_major, info.device_class)
                          if whole else (info.browser_family, info.browser_major))
                for name, v in zip(names, values, strict=True):
                    out[name] = v
                return "reduced to " + ", ".join(names)
            return user_agent
        raise AssertionError(f"no step for rule {rule} method {p.method}")  # annotations forbid it

    def _single_value_transform(self, p: FieldPolicy) -> tuple[Callable[[Any], Any], str] | None:
        cfg = self._config
        allow = self._allow
        if p.rule == "truncate":
            v4, v6 = cfg.ipv4_prefix, cfg.ipv6_prefix
            return (lambda v: truncate_ip(v, v4, v6)), f"truncated to /{v4} (IPv4) or /{v6} (IPv6)"
        if p.rule == "strip_query":
            if p.origin_only:
                return referrer_origin, "reduced to its origin"
            return (lambda v: strip_url(v, allow)), "query string stripped (allow-list: " + ", ".join(allow) + ")"
        if p.rule == "scrub":
            return scrub_text, "scrubbed of e-mails, IPs, phone and card numbers, tokens, user names"
        if p.method == "primary_language":
            return primary_language, "reduced to its primary language"
        if p.method == "country":
            return country_code, "reduced to a country code"
        if p.method == "major_version":
            return major_version, "reduced to its major version"
        return None

    def _pseudonymise_step(self, event: str, p: FieldPolicy) -> Step:
        src, dst = p.field, p.into[0]
        purposes = [self._registry.purposes[name] for name in p.purposes]
        counters = self.counters
        keys = self._keys

        def allowed(c: ConsentState) -> str | None:
            """The purpose that allows keeping this identifier for subject c, or None."""
            if c.erased:
                return None
            for purpose in purposes:
                if c.restricted and purpose.basis not in _SURVIVES_RESTRICTION:
                    continue
                if purpose.consent is None or purpose.consent in c.granted:
                    return purpose.name
            return None

        needs = " or ".join(f"{q.name} ({'consent: ' + q.consent if q.consent else q.basis})" for q in purposes)

        def pseudo(rec: dict[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            value = rec.get(src)
            if value is None:
                return "absent"
            purpose = allowed(c)
            if purpose is None:
                counters[f"dropped.{event}.{src}"] += 1
                reason = "erased subject" if c.erased else ("restricted or objected" if c.restricted else
                                                            f"no consent for {needs}")
                return f"dropped: {reason}"
            out[dst] = pseudonymise(value, keys.key_for(keys.period_for(t)), dst)
            return f"pseudonymised (allowed by {purpose})"
        return pseudo
