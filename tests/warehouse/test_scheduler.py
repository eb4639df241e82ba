"""The maintenance scheduler: its jobs and triggers, the catch-up at start, a clean SIGTERM, the CLI table."""

from __future__ import annotations

import os
import signal
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.triggers.cron import CronTrigger

from warehouse import scheduler as sched_mod
from warehouse.audit_trail import AuditLog
from warehouse.expiry import Expiry
from warehouse.layout import Layout
from warehouse.scheduler import build_scheduler, expire_now, format_expiries, run_scheduler

NOW = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)


def put(layout: Layout, table: str, day: date, files: int = 2) -> None:
    folder = layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        t = datetime(day.year, day.month, day.day, tzinfo=UTC)
        pq.write_table(pa.table({"event_id": [f"{day}-{f}"], "time": pa.array([t], pa.timestamp("us", tz="UTC"))}),
                       folder / f"t~p0~o{f:019d}-{f:019d}.parquet")


@pytest.fixture
def config(make_config):  # type: ignore[no-untyped-def]
    return make_config(**{"WAREHOUSE__RETENTION_DAYS": "{ http_request = 90 }"})


@pytest.fixture
def layout(config) -> Layout:  # type: ignore[no-untyped-def]
    return Layout(Path(config.warehouse.root))


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_jobs_and_triggers(config):
    scheduler = build_scheduler(config, clock=FakeClock(NOW))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"expiry", "compaction", "leak_audit", "erased_sweep", "retention", "compaction_open"}
    assert str(jobs["erased_sweep"].trigger.fields[6]) == "5"  # minute 5 of every hour
    assert str(jobs["retention"].trigger.fields[6]) == "25"  # minute 25 of every hour
    midnight = datetime(2025, 4, 1, tzinfo=UTC)
    for job_id, (hour, minute) in (("expiry", (0, 5)), ("compaction", (3, 45)), ("leak_audit", (4, 15))):
        job = jobs[job_id]
        assert isinstance(job.trigger, CronTrigger)
        assert job.trigger.get_next_fire_time(None, midnight) == midnight.replace(hour=hour, minute=minute)
        after = midnight.replace(hour=hour, minute=minute + 1)
        assert job.trigger.get_next_fire_time(None, after) == midnight.replace(hour=hour, minute=minute) + \
            timedelta(days=1)
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time >= 12 * 3600


def test_jobs_take_time_from_the_clock(config, layout):
    put(layout, "http_request", NOW.date() - timedelta(days=91))
    put(layout, "http_request", NOW.date() - timedelta(days=90))
    put(layout, "http_request", NOW.date() - timedelta(days=1), files=3)
    clock = FakeClock(NOW)
    jobs = {job.id: job for job in build_scheduler(config, clock=clock).get_jobs()}
    jobs["expiry"].func()
    assert [d for d, _ in layout.partitions("http_request")][0] == NOW.date() - timedelta(days=90)
    clock.now = NOW + timedelta(days=1)
    jobs["expiry"].func()
    jobs["compaction"].func()
    [(day, folder)] = layout.partitions("http_request")
    assert day == NOW.date() - timedelta(days=1)
    assert len(list(folder.iterdir())) == 1  # closed on the clock's new day, so compacted
    entries = AuditLog(layout).read()
    assert sorted((e.at, e.job) for e in entries) == [(NOW, "expiry"), (clock.now, "compaction"), (clock.now, "expiry")]


def test_the_retention_job_takes_time_from_the_clock(config, layout):
    from warehouse.rights.trail import record_received, requests_dir

    record_received(layout, request_id="r1", subject_hash="h1_a", kind="access", channel="officer",
                    received=NOW - timedelta(days=300))
    clock = FakeClock(NOW)
    jobs = {job.id: job for job in build_scheduler(config, clock=clock).get_jobs()}
    jobs["retention"].func()
    assert len(list(requests_dir(layout).glob("*.json"))) == 1  # 300 days: kept
    clock.now = NOW + timedelta(days=65)
    jobs["retention"].func()
    assert list(requests_dir(layout).glob("*.json")) == []  # 365 days: gone


def test_catch_up_runs_expiry_then_compaction_once_before_starting(config, layout, monkeypatch):
    for i in range(100):
        put(layout, "http_request", NOW.date() - timedelta(days=i))
    calls: list[str] = []
    real_expire, real_compact = sched_mod.expire, sched_mod.compact
    monkeypatch.setattr(sched_mod, "expire", lambda *a, **k: calls.append("expire") or real_expire(*a, **k))
    monkeypatch.setattr(sched_mod, "compact", lambda *a, **k: calls.append("compact") or real_compact(*a, **k))
    scheduler = build_scheduler(config, clock=FakeClock(NOW))
    seen_at_start: list[object] = []
    monkeypatch.setattr(scheduler, "start", lambda *a, **k: seen_at_start.append(
        (list(calls), [d for d, _ in layout.partitions("http_request")][0], len(scheduler.get_jobs()))))
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    run_scheduler(config, clock=FakeClock(NOW), scheduler=scheduler)
    assert seen_at_start == [(["expire", "compact"], NOW.date() - timedelta(days=90), 6)]
    assert {sig: signal.getsignal(sig) for sig in before} == before
    # every closed day of the kept range got merged by the catch-up
    assert all(len(list(p.iterdir())) == 1 for d, p in layout.partitions("http_request") if d < NOW.date())


def test_catch_up_after_a_week_down_expires_everything_due(config, layout, monkeypatch):
    for i in range(100):
        put(layout, "http_request", NOW.date() - timedelta(days=i), files=1)
    clock = FakeClock(NOW)
    scheduler = build_scheduler(config, clock=clock)
    monkeypatch.setattr(scheduler, "start", lambda *a, **k: None)
    run_scheduler(config, clock=clock, scheduler=scheduler)  # the last start before a week's outage
    clock.now = NOW + timedelta(days=7)
    run_scheduler(config, clock=clock, scheduler=scheduler)
    expiries = [e for e in AuditLog(layout).read("expiry") if e.at == clock.now]
    assert len(expiries) == 7
    assert [d for d, _ in layout.partitions("http_request")][0] == clock.now.date() - timedelta(days=90)


def test_leak_audit_job_records_each_run(config, layout):
    folder = layout.partition_dir("http_request", NOW.date())
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"event_id": ["e1", "e2"], "user_id": ["user-1", None]}), folder / "t~p0~o0-1.parquet")
    clock = FakeClock(NOW)
    jobs = {job.id: job for job in build_scheduler(config, clock=clock).get_jobs()}
    jobs["leak_audit"].func()
    jobs["leak_audit"].func()  # the same run again: recorded once
    clock.now = NOW + timedelta(days=1)
    jobs["leak_audit"].func()
    entries = AuditLog(layout).read("leak_audit")
    assert [(e.at, e.action, e.table_name, e.detail.split()[0]) for e in entries] == [
        (NOW, "leak_found", "http_request", "clear_identifier"),
        (clock.now, "leak_found", "http_request", "clear_identifier")]
    assert all("user-1" not in e.detail for e in entries)


def test_sigterm_stops_the_running_scheduler(config, layout):
    scheduler = build_scheduler(config, clock=FakeClock(NOW))
    scheduler.add_listener(lambda _e: os.kill(os.getpid(), signal.SIGTERM), EVENT_SCHEDULER_STARTED)
    run_scheduler(config, clock=FakeClock(NOW), scheduler=scheduler)  # returns only once stopped
    assert not scheduler.running


def test_sigterm_during_the_catch_up_does_not_start(config, layout, monkeypatch):
    put(layout, "http_request", NOW.date() - timedelta(days=200))
    real_expire = sched_mod.expire

    def expire_then_term(*a, **k):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)
        return real_expire(*a, **k)

    monkeypatch.setattr(sched_mod, "expire", expire_then_term)
    scheduler = build_scheduler(config, clock=FakeClock(NOW))
    started: list[bool] = []
    monkeypatch.setattr(scheduler, "start", lambda *a, **k: started.append(True))
    run_scheduler(config, clock=FakeClock(NOW), scheduler=scheduler)
    assert started == []
    assert layout.partitions("http_request") == []  # the catch-up still finished its work


def test_expire_now_dry_run_deletes_and_audits_nothing(config, layout):
    put(layout, "http_request", NOW.date() - timedelta(days=200))
    plan = expire_now(config, dry_run=True, now=NOW)
    assert [e.day for e in plan] == [NOW.date() - timedelta(days=200)]
    assert len(layout.partitions("http_request")) == 1
    assert not layout.audit_dir.exists()
    assert len(expire_now(config, dry_run=False, now=NOW)) == 1
    assert len(AuditLog(layout).read("expiry")) == 1


def test_format_expiries():
    assert format_expiries([], dry_run=True) == "nothing to expire"
    items = [Expiry("http_request", date(2024, 12, 31), Path("x"), 3, 1200, 45_000, 90),
             Expiry("usage_event", date(2024, 10, 1), Path("y"), 1, 5, 800, 180)]
    text = format_expiries(items, dry_run=True)
    lines = text.splitlines()
    assert "dry run" in lines[0]
    assert lines[1].split() == ["table", "day", "files", "rows", "bytes"]
    assert lines[3].split() == ["http_request", "2024-12-31", "3", "1,200", "45,000"]
    assert lines[-1].split() == ["total", "2", "partitions", "4", "1,205", "45,800"]
    assert "dry run" not in format_expiries(items, dry_run=False)
