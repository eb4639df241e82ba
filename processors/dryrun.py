"""`datamin minimise`: raw events as JSON lines in, minimised events as JSON lines out, without Kafka.

The same Minimiser and ConsentLedger as the stream processor (through `processors.pipeline`), so what
this prints is what the processor would publish. consent_record and privacy_request lines set the
consent state for the lines after them, and are printed minimised like every other event.

- stdout (``outfile``) holds only minimised events, one JSON object a line, so it can be piped on.
- a bad line is reported on ``errfile`` as ``line N: <problem>`` (never the value); processing goes
  on and the exit code is 1 at the end.
- ``explain`` prints to ``errfile``, per event, a compact table of each raw field, the rule applied
  and the outcome, headed by the line number, event type and the consent state used; keeping it
  off stdout keeps stdout valid JSON lines.
- event time: checked exactly as the processor checks it (`datamin.event_time.check_event_time`, at the
  time of the run): a line dated beyond the clock skew in the future, or older than its table's
  retention, is reported as a bad line with the reason, as the processor dead-letters it.
- pseudonym keys: the configured pseudonymise.key_dir when it exists (so pseudonyms match the
  stream's), else a temporary directory deleted at the end (no key files left behind by a trial run).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from datamin.config import Config
from datamin.event_time import check_event_time
from datamin.exceptions import DataminError
from processors.ledger import ConsentLedger
from processors.minimise import Minimised, Minimiser
from processors.pipeline import CONSENT_EVENT, REQUEST_EVENT, new_ledger, process_event, subject_of
from processors.transforms import KeyStore
from schemas import default_registry, encode, from_json, to_json
from schemas.registry import EventSchema


def minimise_stream(config: Config, infile: TextIO, outfile: TextIO, *, explain: bool = False,
                    errfile: TextIO, clock: Callable[[], datetime] | None = None) -> int:
    """Minimises every JSON line of ``infile`` onto ``outfile``; returns 0, or 1 if any line was bad.
    ``clock`` (UTC now by default) is what event times are judged by, as the processor's."""
    now = clock or _utcnow
    registry = default_registry()
    bad = 0
    with _key_directory(config) as key_dir:
        keys = KeyStore(key_dir, config.pseudonymise.rotation, now)
        minimiser = Minimiser(registry, config.minimise, keys)
        ledger = new_ledger(config)
        for number, line in enumerate(infile, start=1):
            if not line.strip():
                continue
            try:
                schema, record = from_json(_parse(line), registry, kind="raw")
                check_event_time(config, schema.name, record, now())  # as the processor, before minimising
                result = process_event(minimiser, ledger, schema, record, explain=explain)
                encode(result.schema, result.record)  # what the processor would refuse, refuse here too
            except DataminError as exc:
                bad += 1
                errfile.write(f"line {number}: {exc}\n")
                continue
            outfile.write(json.dumps(to_json(result.schema, result.record), ensure_ascii=False) + "\n")
            if explain:
                errfile.write(_explanation(number, schema, ledger, record, result))
    if bad:
        errfile.write(f"{bad} bad line(s) skipped\n")
    return 1 if bad else 0


class _BadJson(DataminError):
    pass


def _parse(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        # the position only: JSONDecodeError's message does not quote the document, but be sure
        raise _BadJson(f"not valid JSON ({exc.msg} at column {exc.colno})") from None


def _explanation(number: int, schema: EventSchema, ledger: ConsentLedger, record: dict[str, object],
                 result: Minimised) -> str:
    if schema.name in (CONSENT_EVENT, REQUEST_EVENT):
        consent = "consent ledger updated"
    else:
        when = record.get("time")
        if isinstance(when, datetime):
            state = ledger.state(subject_of(record, None), when, gpc=_flag(record.get("global_privacy_control")),
                                 dnt=_flag(record.get("do_not_track")))
            flags = [name for name, on in (("restricted", state.restricted), ("erased", state.erased)) if on]
            consent = "consent: " + (", ".join(sorted(state.granted)) or "none") + "".join(f"; {f}" for f in flags)
        else:  # pragma: no cover - from_json guarantees a time
            consent = "consent: none"
    rows = result.explain
    width = max((len(f) for f, _, _ in rows), default=5)
    rule_width = max((len(r) for _, r, _ in rows), default=4)
    lines = [f"# line {number}: {schema.name} ({consent})"]
    lines += [f"  {f:<{width}}  {r:<{rule_width}}  {o}" for f, r, o in rows]
    return "\n".join(lines) + "\n"


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _key_directory(config: Config) -> Iterator[Path]:
    configured = Path(config.pseudonymise.key_dir)
    if configured.is_dir():
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="datamin-keys-") as tmp:
        yield Path(tmp)
