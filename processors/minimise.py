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
from processors.detect import PLACEHOLDER, set_default_region
from processors.shapes import shape_checker
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
from schemas.purposes import Purpose, with_marketing_basis
from schemas.registry import EventSchema, Registry

# purposes that stand even when a subject restricted processing or objected (records the law requires)
_SURVIVES_RESTRICTION = frozenset({"legal_obligation", "vital_interests"})
_MAJOR = re.compile(r"^\s*v?([1-9][0-9]{0,2}|0)(?![0-9])")
_MEMOISED = frozenset({"strip_query", "generalise", "coarsen"})
"""rules whose values repeat a lot (pages, referrers, languages): results remembered, boundedly"""
_PLACEHOLDERS = frozenset({"scrub", "strip_query"})
"""rules whose outputs carry detector placeholders ([email], {user} ...), counted per rule"""
_MEMO_SIZE = 4096
_MISSING: Any = object()
_SHORT_TEXT = 256
"""free text up to this many characters (search terms, messages) is memoised when scrubbed: such
texts repeat; longer ones (crash dumps) rarely do and would make the memo large"""


def major_version(value: str | None) -> str | None:
    """'17.1.2' -> '17'; None unless the value starts with a plausible major version (0 to 999, no leading
    zero): '01019012345' (a birth date and more) gives None, not '010190'."""
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
"""One annotated field's treatment, explaining itself: (raw record, output, consent, event time) -> note"""


class _Pseudonymiser:
    """One pseudonymised field: which purposes allow keeping it, and its pseudonyms, remembered."""

    __slots__ = ("src", "dst", "dropped", "purposes", "needs", "_keys", "_memo", "_verdicts")

    def __init__(self, event: str, p: FieldPolicy, purposes: Mapping[str, Purpose], keys: KeyStore) -> None:
        self.src, self.dst = p.field, p.into[0]
        self.dropped = f"dropped.{event}.{p.field}"
        """the counter of values dropped for want of a purpose"""
        self.purposes = [purposes[name] for name in p.purposes]
        self.needs = " or ".join(f"{q.name} ({'consent: ' + q.consent if q.consent else q.basis})"
                                 for q in self.purposes)
        self._keys = keys
        self._memo: dict[tuple[str, str], str] = {}  # (identifier, period) -> pseudonym: people repeat
        self._verdicts: dict[ConsentState, str | None] = {}

    def allowed(self, c: ConsentState) -> str | None:
        """The purpose that allows keeping this identifier for subject c, or None (remembered per
        state: there are few distinct states)."""
        try:
            return self._verdicts[c]
        except KeyError:
            if len(self._verdicts) > 1024:
                self._verdicts.clear()
            verdict = self._verdicts[c] = self._allowed(c)
            return verdict

    def _allowed(self, c: ConsentState) -> str | None:
        if c.erased:
            return None
        for purpose in self.purposes:
            if c.restricted and purpose.basis not in _SURVIVES_RESTRICTION:
                continue
            if purpose.objection is not None:  # a legitimate interest, until the person objects
                if purpose.objection not in c.objected:
                    return purpose.name
            elif purpose.consent is None or purpose.consent in c.granted:
                return purpose.name
        return None

    def pseudonym(self, value: str, period: str) -> str:
        pseudonym = self._memo.get((value, period))
        if pseudonym is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            made = pseudonymise(value, self._keys.key_for(period), self.dst)
            if made is None:  # pragma: no cover - only for a value that is not a string
                raise TypeError("an identifier must be a string")
            pseudonym = self._memo[(value, period)] = made
        return pseudonym


@dataclass(frozen=True, slots=True)
class _Plan:
    """What minimising one raw event type takes, worked out once (not per event). ``steps`` serve
    --explain; the other members are the same treatments laid out for the hot path, which
    tests/processors/test_proc_minimise_props.py holds to the same output."""

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
    drops: tuple[tuple[str, str], ...]
    """(raw field, counter) of every "drop" rule"""
    values: tuple[tuple[str, str, Callable[[Any], Any], str, bool], ...]
    """(raw field, minimised field, transform, counter of invalid values, whether its placeholders are
    counted) of every one-value rule (and of every "keep" with a declared shape)"""
    agents: tuple[tuple[str, tuple[str, ...], bool], ...]
    """(raw field, minimised fields, whole) of every user-agent reduction"""
    pseudos: tuple[_Pseudonymiser, ...]
    shaped: tuple[tuple[str, str, dict[str, str | None], Callable[[Any], str | None], str], ...] = ()
    """(raw field, minimised field, remembered verdicts, shape check, counter of invalid values) of every
    "keep" with a declared shape: values repeat (hosts, methods, versions), so verdicts are remembered"""


class Minimiser:
    """Applies the annotated rules of every raw event type. Build once; call per event."""

    def __init__(self, registry: Registry, config: MinimiseConfig, keys: KeyStore) -> None:
        self._registry = registry
        self._config = config
        self._keys = keys
        self._allow = tuple(config.query_allowlist)
        self._purposes = with_marketing_basis(registry.purposes, config.marketing_basis)
        set_default_region(config.phone_region)
        self.counters: Counter[str] = Counter()
        """fields dropped by rule, invalid values, unknown fields, placeholders written per rule
        (``placeholder.<rule>``) — for metrics"""
        self._periods: dict[date, str] = {}
        self._plans: dict[str, _Plan] = {}
        for name in registry.event_types("raw"):
            self._plans[name] = self._plan(name, registry.latest(name, "raw"), registry.latest(name, "minimised"))

    def _plan(self, name: str, raw: EventSchema, out: EventSchema) -> _Plan:
        steps: list[tuple[FieldPolicy, Step]] = []
        keeps: list[FieldPolicy] = []
        drops: list[tuple[str, str]] = []
        values: list[tuple[str, str, Callable[[Any], Any], str, bool]] = []
        shaped: list[tuple[str, str, dict[str, str | None], Callable[[Any], str | None], str]] = []
        agents: list[tuple[str, tuple[str, ...], bool]] = []
        pseudos: list[_Pseudonymiser] = []
        for p in raw.policies:
            if p.rule == "keep" and p.shape is not None:
                check = shape_checker(p.shape, self._config.site_hosts)
                shaped.append((p.field, p.into[0], {}, check, f"invalid.{name}.{p.field}"))
                steps.append((p, self._transform_step(name, p, check, "kept: " + p.shape.describe(),
                                                      "not of its declared shape, or holding personal data: dropped")))
            elif p.rule == "keep":
                keeps.append(p)
                steps.append((p, self._keep_step(p)))
            elif p.rule == "drop":
                drops.append((p.field, f"dropped.{name}.{p.field}"))
                steps.append((p, self._drop_step(name, p)))
            elif p.rule == "pseudonymise":
                pseudo = _Pseudonymiser(name, p, self._purposes, self._keys)
                pseudos.append(pseudo)
                steps.append((p, self._pseudonymise_step(pseudo)))
            elif (one := self._single_value_transform(p)) is not None:
                fn, label = one
                values.append((p.field, p.into[0], fn, f"invalid.{name}.{p.field}", p.rule in _PLACEHOLDERS))
                steps.append((p, self._transform_step(name, p, fn, label)))
            elif p.method in ("user_agent", "browser"):
                agents.append((p.field, p.into, p.method == "user_agent"))
                steps.append((p, self._user_agent_step(p)))
            else:  # pragma: no cover - annotations forbid it
                raise AssertionError(f"no step for rule {p.rule} method {p.method}")
        return _Plan(out, steps, out.field_names, frozenset(out.field_names), frozenset(p.field for p in raw.policies),
                     tuple(p.field for p in keeps), tuple(p.into[0] for p in keeps), tuple(drops), tuple(values),
                     tuple(agents), tuple(pseudos), tuple(shaped))

    def minimise(self, raw: EventSchema, record: Mapping[str, Any], consent: ConsentState = NO_CONSENT,
                 *, explain: bool = False) -> Minimised:
        """The minimised form of ``record`` (a raw event of ``raw``'s type) for a subject in ``consent``."""
        plan = self._plans[raw.name]
        out: dict[str, Any] = dict.fromkeys(plan.out_fields)
        when = record.get("time") or record.get("received")
        if not isinstance(when, datetime):
            raise TypeError("a raw record's time must be a datetime")  # decode guarantees it
        notes: list[tuple[str, str, str]] = []
        if explain:
            for policy, step in plan.steps:
                notes.append((policy.field, policy.rule, step(record, out, consent, when)))
        else:
            self._apply(plan, record, out, consent, when)
        if not record.keys() <= plan.known:
            for extra in record.keys() - plan.known:
                self.counters["dropped.unknown_field"] += 1
                if explain:
                    notes.append((extra, "(none)", "dropped: no annotation covers this field"))
        if len(out) != len(plan.out_fields):  # pragma: no cover - check_schemas forbids it
            for key in list(out):
                if key not in plan.out_set:
                    del out[key]
        return Minimised(plan.schema, out, notes)

    def _apply(self, plan: _Plan, record: Mapping[str, Any], out: dict[str, Any], consent: ConsentState,
               when: datetime) -> None:
        """The hot path: every step of ``plan`` without explaining, each kind of rule in one loop."""
        get = record.get
        counters = self.counters
        out.update(zip(plan.keep_into, map(get, plan.keep_from), strict=True))
        for src, counter in plan.drops:
            if get(src) is not None:
                counters[counter] += 1
        for src, dst, seen, check, invalid in plan.shaped:
            value = get(src)
            if value is not None:
                result = seen.get(value, _MISSING)
                if result is _MISSING:
                    if len(seen) >= _MEMO_SIZE:
                        seen.clear()
                    result = seen[value] = check(value)
                out[dst] = result
                if result is None:
                    counters[invalid] += 1
        for src, dst, fn, invalid, placeholders in plan.values:
            value = get(src)
            if value is not None:
                result = out[dst] = fn(value)
                if result is None:
                    counters[invalid] += 1
                elif placeholders and ("[" in result or "{" in result) and result != value:
                    _count_placeholders(counters, result)
        for src, names, whole in plan.agents:
            value = get(src)
            if value is not None:
                out.update(zip(names, _agent_values(value, whole), strict=True))
        period = None
        for pseudo in plan.pseudos:
            value = get(pseudo.src)
            if value is None:
                continue
            if pseudo.allowed(consent) is None:
                counters[pseudo.dropped] += 1
                continue
            if period is None:
                period = self._period_of(when)
            out[pseudo.dst] = pseudo.pseudonym(value, period)

    def _period_of(self, t: datetime) -> str:
        """keys.period_for(t), remembered per UTC day (periods are days, weeks or months)"""
        day = (t if t.tzinfo is UTC else t.astimezone(UTC)).date()
        period = self._periods.get(day)
        if period is None:
            if len(self._periods) > 4096:
                self._periods.clear()
            period = self._periods[day] = self._keys.period_for(t)
        return period

    # -- one explaining step per annotated field ---------------------------------------------------
    def _drop_step(self, event: str, p: FieldPolicy) -> Step:
        src, counter = p.field, f"dropped.{event}.{p.field}"
        counters = self.counters

        def drop(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            if rec.get(src) is not None:
                counters[counter] += 1
            return "dropped"
        return drop

    @staticmethod
    def _keep_step(p: FieldPolicy) -> Step:
        src, dst = p.field, p.into[0]

        def keep(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            out[dst] = rec.get(src)
            return "kept"
        return keep

    def _transform_step(self, event: str, p: FieldPolicy, fn: Callable[[Any], Any], label: str,
                        invalid_note: str | None = None) -> Step:
        src, dst, counter = p.field, p.into[0], f"invalid.{event}.{p.field}"
        counters = self.counters
        placeholders = p.rule in _PLACEHOLDERS

        def transform(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            value = rec.get(src)
            if value is None:
                return "absent"
            result = out[dst] = fn(value)
            if result is None:
                counters[counter] += 1
                return invalid_note or f"{label}: not a valid value, dropped"
            if placeholders and result != value:
                found = _count_placeholders(counters, result)
                if found:
                    return f"{label}; replaced: " + ", ".join(f"{n} {rule}" for rule, n in sorted(found.items()))
            return label
        return transform

    @staticmethod
    def _user_agent_step(p: FieldPolicy) -> Step:
        src, names, whole = p.field, p.into, p.method == "user_agent"

        def user_agent(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            value = rec.get(src)
            if value is None:
                return "absent"
            out.update(zip(names, _agent_values(value, whole), strict=True))
            return "reduced to " + ", ".join(names)
        return user_agent

    def _pseudonymise_step(self, pseudo: _Pseudonymiser) -> Step:
        counters = self.counters

        def pseudonymise_step(rec: Mapping[str, Any], out: dict[str, Any], c: ConsentState, t: datetime) -> str:
            value = rec.get(pseudo.src)
            if value is None:
                return "absent"
            purpose = pseudo.allowed(c)
            if purpose is None:
                counters[pseudo.dropped] += 1
                reason = "erased subject" if c.erased else ("restricted or objected" if c.restricted else
                                                            f"no consent for {pseudo.needs}")
                return f"dropped: {reason}"
            out[pseudo.dst] = pseudo.pseudonym(value, self._period_of(t))
            return f"pseudonymised (allowed by {purpose})"
        return pseudonymise_step

    def _single_value_transform(self, p: FieldPolicy) -> tuple[Callable[[Any], Any], str] | None:
        """The one-value transform of ``p`` (memoised where values repeat) and its label, or None."""
        one = self._single_value_rule(p)
        if one is None:
            return None
        fn, label = one
        if p.rule in _MEMOISED:
            fn = _memoised(fn)
        elif p.rule == "scrub":
            fn = _memoised(fn, _SHORT_TEXT)
        return fn, label

    def _single_value_rule(self, p: FieldPolicy) -> tuple[Callable[[Any], Any], str] | None:
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
            return scrub_text, ("scrubbed of e-mails, IP and MAC addresses, phone, card, national id, account and "
                                "device numbers, coordinates, secrets, user and personal names")
        if p.method == "primary_language":
            return primary_language, "reduced to its primary language"
        if p.method == "country":
            return country_code, "reduced to a country code"
        if p.method == "major_version":
            return major_version, "reduced to its major version"
        return None


def _count_placeholders(counters: Counter[str], result: str) -> Counter[str]:
    """Counts the placeholders in a scrubbed value as ``placeholder.<rule>``, so over-scrubbing shows in
    the metrics; returns them."""
    found = Counter(PLACEHOLDER.findall(result))
    for rule, n in found.items():
        counters["placeholder." + rule] += n
    return found


def _agent_values(value: str, whole: bool) -> tuple[str | None, ...]:
    info = parse_user_agent(value)
    if whole:
        return info.browser_family, info.browser_major, info.os_family, info.os_major, info.device_class
    return info.browser_family, info.browser_major
