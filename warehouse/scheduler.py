"""The warehouse's scheduled maintenance: daily expiry, compaction and leak scan, hourly retention, in one
process.

``run_scheduler(config)`` (behind ``datamin scheduler``) first runs both jobs once, at once, then
starts an APScheduler ``BlockingScheduler`` that repeats them every day (00:05 and 03:45 UTC), and
every minute merges the small files of the open day (``warehouse.open_day``). The
catch-up matters: jobs are registered afresh on every start (``replace_existing=True``, memory job
store), which resets their next run time, so a run missed while the process was down would
otherwise be lost silently; with it, a scheduler down for a week expires everything due as soon as
it is back. Both jobs are idempotent and crash-safe (see ``warehouse.expiry`` and
``warehouse.compaction``), never overlap (one lock), and run at most once at a time each
(``max_instances=1``; missed runs coalesce into one). SIGTERM or SIGINT stops the scheduler after
the running job, if any, has finished.

The daily leak scan (04:15 UTC, after both) scans the whole warehouse with the configured prefixes
and records the run in the audit trail (``warehouse.leak_scan``). It only reads the data, holds the
same lock (so it never meets a partition being expired or compacted) and has the same
coalesce/max_instances/misfire settings; it is not part of the catch-up, since a missed audit loses
nothing: the next one scans everything again.

Every hour (minute 25) the retention job deletes what is past its cap in every other store of the
retention inventory (quarantine, audit and rights trails, spool, shipper state, keys, log files: see
`warehouse.retention`); it is part of the catch-up, under the same lock.

``expire_now`` and ``format_expiries`` are what ``datamin expire [--dry-run]`` calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from datamin.clock import Clock, as_utc, utc_now
from datamin.config import Config
from datamin.signals import stop_on_signals
from warehouse.audit_trail import AuditLog
from warehouse.compaction import Compaction, compact
from warehouse.expiry import Expiry, expire
from warehouse.layout import Layout, layout_of
from warehouse.leak_scan import LeakReport, run_leak_scan
from warehouse.locking import maintenance_lock

log = logging.getLogger(__name__)

EXPIRY_JOB = "expiry"
COMPACTION_JOB = "compaction"
LEAK_AUDIT_JOB = "leak_audit"
SWEEP_JOB = "erased_sweep"
OPEN_DAY_JOB = "compaction_open"
"""every minute: today's small files merged into about one per hour (`warehouse.open_day`)"""
RETENTION_JOB = "retention"
RETENTION_AT_MINUTE = 25
"""minute of every hour at which every other store of the retention inventory (trails, quarantine,
spool, shipper state, keys, log files) loses what is past its cap (see `warehouse.retention`)"""
SWEEP_AT_MINUTE = 5
"""minute of every hour at which rows of erased subjects that arrived late (from the minimised topics'
window) are deleted"""
EXPIRY_AT = (0, 5)
"""(hour, minute) UTC of the daily expiry: just after midnight, when a day partition passes its table's
retention, so that no row outlives its cap by more than these minutes"""
COMPACTION_AT = (3, 45)
"""(hour, minute) UTC of the daily compaction, after expiry so it never merges what is about to go"""
LEAK_AUDIT_AT = (4, 15)
"""(hour, minute) UTC of the daily leak scan, after compaction"""
MISFIRE_GRACE_SECONDS = 23 * 3600
"""a run delayed (busy machine, suspended process) by up to this long still happens"""

def _layout(config: Config) -> Layout:
    return layout_of(config)


def _refresh_catalog(config: Config) -> None:
    """Rebuilds the analysts' catalog after files went away, so no view points at a deleted table."""
    from warehouse.catalog import build_catalog

    build_catalog(config)


def expire_now(config: Config, *, dry_run: bool, now: datetime) -> list[Expiry]:
    """Expires (or with ``dry_run`` only lists) every partition past retention at ``now``; audited."""
    layout = _layout(config)
    with maintenance_lock(layout):
        done = expire(layout, config.warehouse.retention_days, now=now, dry_run=dry_run,
                      audit=None if dry_run else AuditLog(layout), job=EXPIRY_JOB)
        if not dry_run:  # restricted rows expire with their day too (warehouse.rights.restricted_area)
            from warehouse.rights.restricted_area import expire_restricted

            expire_restricted(layout, config.warehouse.retention_days, now=now, audit=AuditLog(layout),
                              job=EXPIRY_JOB)
        if done and not dry_run:
            _refresh_catalog(config)
        return done


def compact_now(config: Config, *, now: datetime) -> list[Compaction]:
    """Merges the small files of every closed day partition at ``now``; audited."""
    layout = _layout(config)
    with maintenance_lock(layout):
        done = compact(layout, now=now, audit=AuditLog(layout), job=COMPACTION_JOB)
        if done:
            _refresh_catalog(config)
        return done


def compact_open_now(config: Config, *, now: datetime) -> list[Compaction]:
    """Merges the settled small files of today's and yesterday's partitions at ``now``; audited. Views
    read globs, so the catalog needs no rebuild for it."""
    from warehouse.open_day import compact_open_days

    layout = _layout(config)
    with maintenance_lock(layout):
        return compact_open_days(layout, now=now, audit=AuditLog(layout), job=OPEN_DAY_JOB)


def sweep_now(config: Config, *, now: datetime) -> int:
    """Deletes late-arriving rows of erased subjects (see `warehouse.rights.erasure.sweep_erased`); returns
    the number of files rewritten."""
    from warehouse.rights.erasure import sweep_erased
    from warehouse.rights.restricted_area import sweep_restricted
    from warehouse.rights.restriction import read_restricted

    layout = _layout(config)
    with maintenance_lock(layout):
        # and rows of restricted subjects that arrived after the restriction go to the restricted area
        return len(sweep_erased(layout, now=now)) + len(sweep_restricted(layout, read_restricted(layout)))


def leak_scan_now(config: Config, *, now: datetime) -> LeakReport:
    """Scans the warehouse for leaks at ``now`` (prefixes from config.minimise); audited."""
    with maintenance_lock(_layout(config)):
        return run_leak_scan(config, now=now)


def retention_now(config: Config, *, now: datetime) -> dict[str, int]:
    """Deletes what is past its cap in every store of the inventory but the tables (see `expire_now`);
    returns the items deleted per store."""
    from warehouse.retention import run_retention

    with maintenance_lock(_layout(config)):
        return run_retention(config, now)


def run_maintenance(config: Config, *, now: datetime) -> tuple[list[Expiry], list[Compaction]]:
    """Expiry, the other stores' retention, then compaction, all at ``now``: the catch-up run at start-up."""
    expired = expire_now(config, dry_run=False, now=now)
    retention_now(config, now=now)
    return expired, compact_now(config, now=now)


def build_scheduler(config: Config, *, clock: Clock = utc_now) -> BlockingScheduler:
    """A not yet started scheduler holding the daily expiry, compaction and leak-audit jobs (times from
    ``clock``)."""
    scheduler = BlockingScheduler(timezone="UTC")

    def expiry_job() -> None:
        done = expire_now(config, dry_run=False, now=as_utc(clock()))
        log.info("expiry: %d partitions deleted", len(done))

    def compaction_job() -> None:
        done = compact_now(config, now=as_utc(clock()))
        log.info("compaction: %d partitions merged", len(done))

    def leak_scan_job() -> None:
        report = leak_scan_now(config, now=as_utc(clock()))
        if report.clean:
            log.info("leak scan: clean (%d files, %d rows)", report.files_scanned, report.rows_scanned)
        else:  # the findings name places and kinds only, never a value
            log.error("leak scan: %d findings, %d unreadable files; see `datamin audit` or the audit trail",
                      len(report.findings), len(report.unreadable))

    for job_id, func, (hour, minute) in ((EXPIRY_JOB, expiry_job, EXPIRY_AT),
                                         (COMPACTION_JOB, compaction_job, COMPACTION_AT),
                                         (LEAK_AUDIT_JOB, leak_scan_job, LEAK_AUDIT_AT)):
        scheduler.add_job(func, CronTrigger(hour=hour, minute=minute, timezone="UTC"), id=job_id,
                          name=f"daily warehouse {job_id}", replace_existing=True, coalesce=True,
                          misfire_grace_time=MISFIRE_GRACE_SECONDS, max_instances=1)

    def sweep_job() -> None:
        rewritten = sweep_now(config, now=as_utc(clock()))
        if rewritten:
            log.info("erased-subject sweep: %d file(s) rewritten without late rows of erased subjects", rewritten)

    def open_day_job() -> None:
        done = compact_open_now(config, now=as_utc(clock()))
        if done:
            log.info("open-day compaction: %d merge(s) of %d small files", len(done), sum(len(c.merged) for c in done))

    scheduler.add_job(open_day_job, CronTrigger(minute="*", timezone="UTC"), id=OPEN_DAY_JOB,
                      name="every minute: today's small files merged", replace_existing=True, coalesce=True,
                      misfire_grace_time=60, max_instances=1)
    scheduler.add_job(sweep_job, CronTrigger(minute=SWEEP_AT_MINUTE, timezone="UTC"), id=SWEEP_JOB,
                      name="hourly sweep of erased subjects' late rows", replace_existing=True, coalesce=True,
                      misfire_grace_time=3600, max_instances=1)

    def retention_job() -> None:
        deleted = {store: n for store, n in retention_now(config, now=as_utc(clock())).items() if n}
        if deleted:
            log.info("retention: deleted past their cap: %s", ", ".join(f"{n} from {s}" for s, n in deleted.items()))

    scheduler.add_job(retention_job, CronTrigger(minute=RETENTION_AT_MINUTE, timezone="UTC"), id=RETENTION_JOB,
                      name="hourly retention of every other store", replace_existing=True, coalesce=True,
                      misfire_grace_time=3600, max_instances=1)
    return scheduler


def run_scheduler(config: Config, *, clock: Clock = utc_now, scheduler: BlockingScheduler | None = None) -> None:
    """Runs the catch-up (expiry then compaction, now), then the daily jobs until SIGTERM or SIGINT.

    Blocks; must be called from the main thread (signal handlers). An error in the catch-up
    propagates and the scheduler does not start (the jobs would meet it again). ``scheduler``
    replaces the one ``build_scheduler`` would make (tests)."""
    scheduler = scheduler if scheduler is not None else build_scheduler(config, clock=clock)
    stop_requested = threading.Event()

    def stop() -> None:
        try:
            scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:
            pass  # stopped already

    def stop_soon() -> None:
        # not in the signal handler itself: shutdown takes locks the interrupted main loop may hold
        threading.Thread(target=stop, name="scheduler-stop").start()

    def on_signal() -> None:
        if scheduler.running:
            stop_soon()

    def on_started(_event: SchedulerEvent) -> None:
        if stop_requested.is_set():  # a signal came while it was starting
            stop_soon()

    scheduler.add_listener(on_started, EVENT_SCHEDULER_STARTED)
    try:
        with stop_on_signals(stop_requested, doing="stopping after the running job", on_stop=on_signal):
            now = as_utc(clock())
            expired, compacted = run_maintenance(config, now=now)
            log.info("catch-up at %s: %d partitions expired, %d compacted", now.isoformat(), len(expired),
                     len(compacted))
            if not stop_requested.is_set():
                scheduler.start()
    finally:
        scheduler.remove_listener(on_started)


def format_expiries(expiries: Sequence[Expiry], dry_run: bool) -> str:
    """A table for people: table, day, files, rows, bytes per partition, then a total line."""
    if not expiries:
        return "nothing to expire"
    head = ("would expire (dry run: nothing was deleted)" if dry_run else "expired")
    rows = [(e.table, e.day.isoformat(), f"{e.files:,}", f"{e.rows:,}", f"{e.bytes:,}") for e in expiries]
    total = ("total", f"{len(expiries)} partition{'s' if len(expiries) != 1 else ''}",
             f"{sum(e.files for e in expiries):,}", f"{sum(e.rows for e in expiries):,}",
             f"{sum(e.bytes for e in expiries):,}")
    header = ("table", "day", "files", "rows", "bytes")
    widths = [max(len(r[i]) for r in (header, *rows, total)) for i in range(5)]

    def line(cells: Sequence[str]) -> str:
        left = [cells[i].ljust(widths[i]) for i in range(2)]
        right = [cells[i].rjust(widths[i]) for i in range(2, 5)]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([head, line(header), rule, *(line(r) for r in rows), rule, line(total)])
