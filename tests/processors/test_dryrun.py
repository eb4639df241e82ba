"""`datamin minimise` (minimise_stream) on in-memory JSON lines."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamin.config import Config
from processors.dryrun import minimise_stream

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
"""the clock of every run here (injected: the lines' fixed dates never fall out of retention)"""
IP = "203.0.113.77"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"


def line(**fields: Any) -> str:
    return json.dumps(fields) + "\n"


def http(subject: str, time: str, **more: Any) -> str:
    return line(event="http_request", time=time, subject_key=subject, client_ip=IP, user_agent=UA,
                url="/search?q=private&utm_campaign=x", session_id=f"sess-{subject}", user_id=subject, **more)


def consent(subject: str, time: str, **cats: bool) -> str:
    return line(event="consent_record", time=time, subject_key=subject, necessary=True, **cats)


def run(config: Config, text: str, explain: bool = False) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = minimise_stream(config, io.StringIO(text), out, explain=explain, errfile=err, clock=lambda: NOW)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_consent_lines_set_the_state_for_the_lines_after_them(make_config: Callable[..., Config]) -> None:
    text = (http("u1", "2026-11-25T09:00:00Z")
            + consent("u1", "2026-11-25T09:30:00Z", statistics=True)
            + http("u1", "2026-11-25T10:00:00Z")
            + http("u2", "2026-11-25T10:00:00Z"))
    code, events, err = run(make_config(), text)
    assert code == 0 and err == ""
    before, record, after, other = events
    assert record["event"] == "consent_record" and record["subject"].startswith("p1_")
    assert before["subject"] is None and before["user_id"] is None        # before the consent
    assert after["subject"].startswith("p1_") and after["user_id"].startswith("p1_")
    assert other["subject"] is None                                        # someone else: no consent
    for e in (before, after, other):
        assert e["client_network"] == "203.0.0.0" and e["url"] == "/search?utm_campaign=x"
        assert e["browser_family"] == "Chrome"
    assert IP not in json.dumps(events) and "u1" not in json.dumps([after, before])


def test_privacy_request_lines_apply_to_later_lines(make_config: Callable[..., Config]) -> None:
    text = (consent("u1", "2026-11-25T08:00:00Z", statistics=True)
            + line(event="privacy_request", request_id="r-1", subject_key="u1", kind="objection",
                   received="2026-11-25T09:00:00Z", channel="email")
            + http("u1", "2026-11-25T10:00:00Z"))
    code, (c, request, event), _ = run(make_config(), text)
    assert code == 0
    assert request["subject"].startswith("p1_") and request["kind"] == "objection"
    assert event["subject"] is None and event["session_id"] is None


def test_gpc_is_honoured_as_objection_to_marketing(make_config: Callable[..., Config]) -> None:
    text = consent("u1", "2026-11-25T08:00:00Z", marketing=True) + http("u1", "2026-11-25T10:00:00Z",
                                                                         global_privacy_control=True)
    _, (_, event), _ = run(make_config(), text)
    assert event["subject"] is None  # marketing was its only purpose with consent, and GPC objects to it


def test_bad_lines_are_reported_by_number_without_values_and_processing_goes_on(
        make_config: Callable[..., Config]) -> None:
    text = ("{not json " + IP + "\n"
            + line(event="http_request", time="2026-11-25T10:00:00Z", client_ip=IP, password="hunter2")
            + line(event="http_request", time="yesterday", client_ip=IP)
            + line(event="no_such_event")
            + "\n"
            + http("u1", "2026-11-25T10:00:00Z"))
    code, events, err = run(make_config(), text)
    assert code == 1
    assert len(events) == 1
    assert [x.split(":")[0] for x in err.splitlines()[:4]] == ["line 1", "line 2", "line 3", "line 4"]
    assert "JSON" in err and "password" in err and "time" in err and "4 bad line(s)" in err
    assert IP not in err and "hunter2" not in err and "yesterday" not in err


def test_explain_goes_to_errfile_as_a_table_and_stdout_stays_json(make_config: Callable[..., Config]) -> None:
    text = consent("u1", "2026-11-25T08:00:00Z", statistics=True) + http("u1", "2026-11-25T10:00:00Z")
    code, events, err = run(make_config(), text, explain=True)
    assert code == 0 and len(events) == 2
    assert "# line 2: http_request (consent: necessary, statistics)" in err
    rows = {r.split()[0]: r for r in err.splitlines() if r.startswith("  ")}
    assert "truncate" in rows["client_ip"] and "pseudonymised" in rows["user_id"]
    assert "drop" in rows["client_hints"]
    assert IP not in err and "u1" not in err


def test_uses_the_configured_key_directory_when_it_exists(make_config: Callable[..., Config],
                                                          tmp_path: Path) -> None:
    config = make_config()
    text = consent("u1", "2026-11-25T08:00:00Z", statistics=True)
    _, first, _ = run(config, text)
    assert not Path(config.pseudonymise.key_dir).exists()  # a trial run leaves no keys behind
    Path(config.pseudonymise.key_dir).mkdir(parents=True)
    _, second, _ = run(config, text)
    _, third, _ = run(config, text)
    assert list(Path(config.pseudonymise.key_dir).iterdir())
    assert second[0]["subject"] == third[0]["subject"] != first[0]["subject"]


def test_event_time_is_checked_as_the_processor_checks_it(make_config: Callable[..., Config]) -> None:
    """The dry run shows what production does: a far-future line and one older than its table's retention
    are bad lines with the reason (the processor dead-letters them); the line between them is minimised."""
    text = (http("u1", "2300-01-01T00:00:00Z")
            + http("u1", "2026-11-25T11:00:00Z")
            + http("u1", "2024-01-01T00:00:00Z"))
    code, events, err = run(make_config(), text)
    assert code == 1 and len(events) == 1 and events[0]["time"].startswith("2026-11-25T11:00")
    assert "line 1: http_request.time: dated more than" in err and "in the future" in err
    assert "line 3: http_request.time: older than its table's retention" in err
    assert "2300" not in err and "2024-01-01" not in err  # the bound, never the value
