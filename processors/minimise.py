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
from datetime import UTC, date, datetime
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
)
from processors.transforms.ip import ip_truncator
from schemas.annotations import FieldPolicy
from schemas.registry import EventSchema, Registry

# purposes that stand even when a subject restricted processing or objected (records the law requires)
_SURVIVES_RESTRICTION = frozenset({"legal_obligation", "vital_interests"})
_MAJOR = re.compile(r"^\s*v?(\d{1,6})")
_MEMOISED = frozenset({"strip_query", "generalise", "coarsen"})
"""rules whose values repeat a lot (pages, referrers, languages): results remembered, boundedly"""
_MEMO_SIZE = 4096
_SHORT_TEXT = 256
"""free text up to this many characters (search terms, messages) is memoised when scrubbed: such
texts repeat; longer ones (crash dumps) rarely do and would make the memo large"""


def major_version(value: str | None) -> str | None:
    """'17.1.2' -> '17'; None when the value does not start with a number."""
    if not value:
        return None
    m = _MAJOR.match(value[:64])
    return m.group(1) if m else None


def _memoised(fn: Callable[[Any], Any], longest: int | None = None) -> Callable[[Any], Any]:
    """``fn`` with its last results remembered (at most _MEMO_SIZE, forgotten all at once when full);
    with ``longest``, only for strings of at most that many characters."""
    memo: dict[Any, Any] = {}
    missing = object()

    def call(value: Any) -> Any:
        if longest is not None and (type(value) is not str or len(value) > longest):
            return fn(value)
        result = memo.get(value, missing)
        if result is missing:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            result = memo[value] = fn(value)
        return result
    return call


@dataclass
class Minimised:
    """One minimised event: its schema, the record, and (when asked) what was done to each field."""

    schema: EventSchema
    record: dict[str, Any]
    explain: list[tuple[str, str, str]] = field(default_factory=list)
    """(raw field, rule, outcome) per field, when explain=True"""


Step = Callable[[Mapping[str, Any], dict[str, Any], ConsentState, datetime], str]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What minimising one raw event type takes, worked out once (not per event)."""

    schema: EventSchema
    steps: list[tuple[FieldPolicy, Step]]
    out_fields: tuple[str, ...]
    out_set: frozenset[str]
    known: frozenset[str]
    """raw fields with an annotation"""
    keep_from: tuple[str, ...]
    """the raw field of every "keep" rule: copied in one C-level pass when not explaining"""
    keep_into: tuple[str, ...]
    """the minimised field of every "keep" rule, in the order of keep_from"""
    others: tuple[Step, ...]
    """the steps of every other rule"""


class Minimiser:
    """Applies the annotated rules of every raw event type. Build once; call per event."""

    def __init__(self, registry: Registry, config: MinimiseConfig, keys: KeyStore) -> None:
        self._registry = registry
        self._config = config
        self._keys = keys
        self._allow = tuple(config.query_allowlist)
        self.counters: Counter[str] = Counter()
        """fields dropped by rule, invalid values, unknown fields — for metrics"""
        self._plans: dict[str, _Plan] = {}
        for name in registry.event_types("raw"):
            raw = registry.latest(name, "raw")
            out = registry.latest(name, "minimised")
            steps = [(p, self._step(name, p)) for p in raw.policies]
            keeps = [p for p in raw.policies if p.rule == "keep"]
            others = tuple(step for p, step in steps if p.rule != "keep")
            self._plans[name] = _Plan(out, steps, out.field_names, frozenset(out.field_names),
                                      frozenset(p.field for p in raw.policies),
                                      tuple(p.field for p in keeps), tuple(p.into[0] for p in keeps), others)

    def minimise(self, raw: EventSchema, record: Mapping[str, Any], consent: ConsentState = NO_CONSENT,
                 *, explain: bool = False) -> Minimised:
        """The minimised form of ``record`` (a raw event of ``raw``'s type) for a subject in ``consent``."""
        plan = self._plans[raw.name]
        out_schema, steps = plan.schema, plan.steps
        out: dict[str, Any] = dict.fromkeys(plan.out_fields)
        when = record.get("time") or record.get("received")
        if not isinstance(when, datetime):
            raise TypeError("a raw record's time must be a datetime")  # decode guarantees it
        notes: list[tuple[str, str, str]] = []
        if explain:
            for policy, step in steps:
                notes.append((policy.field, policy.rule, step(record, out, consent, when)))
        else:  # the same steps, "keep" ones inlined: most fields are kept, and this is the hot path
            out.update(zip(plan.keep_into, map(record.get, plan.keep_from), strict=True))
            for step in plan.others:
                step(record, out, consent, when)
        if not record.keys() <= plan.known:
            for extra in record.keys() - plan.known:
                self.counters["dropped.unknown_field"] += 1
                if explain:
                    notes.append((extra, "(none)", "dropped: no annotation covers this field"))
        if len(out) != len(plan.out_fields):  # pragma: no cover - check_schemas forbids it
            for key in list(out):
                if key not in plan.out_set:
                    del out[key]
        return Minimised(out_schema, out, notes)

    # -- one step per annotated field -------------------------------------------------------------
    def _step(self, event: str, p: FieldPolicy) -> Step:
        src = p.field
        counters = self.counters
        rule = p.rule

        if rule == "drop":
            def drop(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                if rec.get(src) is not None:
                    counters[f"dropped.{event}.{src}"] += 1
                return "dropped"
            return drop

        if rule == "keep":
            dst = p.into[0]

            def keep(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
                out[dst] = rec.get(src)
                return "kept"
            return keep

        if rule == "pseudonymise":
            return self._pseudonymise_step(event, p)

        one = self._single_value_transform(p)
        if one is not None:
            fn, label = one
            dst = p.into[0]
            if rule in _MEMOISED:
                fn = _memoised(fn)
            elif rule == "scrub":
                fn = _memoised(fn, _SHORT_TEXT)

            def transform(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
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

            def user_agent(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
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
            return ip_truncator(v4, v6), f"truncated to /{v4} (IPv4) or /{v6} (IPv6)"
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

        periods: dict[date, str] = {}
        memo: dict[tuple[str, str], str | None] = {}  # (identifier, period) -> pseudonym: people repeat

        def period_of(t: datetime) -> str:
            """keys.period_for(t), remembered per UTC day (periods are days, weeks or months)"""
            day = (t if t.tzinfo is UTC else t.astimezone(UTC)).date()
            period = periods.get(day)
            if period is None:
                if len(periods) > 4096:
                    periods.clear()
                period = periods[day] = keys.period_for(t)
            return period

        verdicts: dict[ConsentState, str | None] = {}

        def allowed(c: ConsentState) -> str | None:
            """The purpose that allows keeping this identifier for subject c, or None (remembered per
            state: there are few distinct states)."""
            try:
                return verdicts[c]
            except KeyError:
                if len(verdicts) > 1024:
                    verdicts.clear()
                verdict = verdicts[c] = _allowed(c)
                return verdict

        def _allowed(c: ConsentState) -> str | None:
            if c.erased:
                return None
            for purpose in purposes:
                if c.restricted and purpose.basis not in _SURVIVES_RESTRICTION:
                    continue
                if purpose.consent is None or purpose.consent in c.granted:
                    return purpose.name
            return None

        needs = " or ".join(f"{q.name} ({'consent: ' + q.consent if q.consent else q.basis})" for q in purposes)

        def pseudo(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            value = rec.get(src)
            if value is None:
                return "absent"
            purpose = allowed(c)
            if purpose is None:
                counters[f"dropped.{event}.{src}"] += 1
                reason = "erased subject" if c.erased else ("restricted or objected" if c.restricted else
                                                            f"no consent for {needs}")
                return f"dropped: {reason}"
            period = period_of(t)
            pseudonym = memo.get((value, period))
            if pseudonym is None:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                pseudonym = memo[(value, period)] = pseudonymise(value, keys.key_for(period), dst)
            out[dst] = pseudonym
            return f"pseudonymised (allowed by {purpose})"
        return pseudo
