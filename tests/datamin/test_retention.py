"""The retention inventory: every store capped within the year (data in clear within a week), a
registry other code adds stores to, and configurations beyond the caps refused at load."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datamin import retention
from datamin.config import Config
from datamin.event_time import check_event_time, event_time_problem
from datamin.exceptions import ConfigError, EventTimeError
from datamin.retention import CAP, RAW_CAP, SCHEDULER, Store, inventory, register_stores
from datamin.topics import Topics, topic_configs
from warehouse.retention import full_inventory

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def provider_cleanup() -> Iterator[list[Callable[[Config], list[Store]]]]:
    added: list[Callable[[Config], list[Store]]] = []
    yield added
    for provider in added:
        retention._PROVIDERS.remove(provider)


def test_every_store_is_capped_within_the_year_and_clear_data_within_a_week(
        make_config: Callable[..., Config]) -> None:
    stores = full_inventory(make_config())
    names = {s.name for s in stores}
    for expected in ("producer spool", "shipper state", "quarantine", "audit trail", "rights trail",
                     "pseudonymisation keys", "local broker log files", "erased-subjects sweep list",
                     "table http_request", "table consent_record", "topic datamin.raw.http_request",
                     "topic datamin.consent", "topic datamin.dead-letter"):
        assert expected in names
    for store in stores:
        assert timedelta(0) < store.cap <= CAP, store.name
        if store.name.startswith("topic datamin.raw.") or store.name in ("producer spool", "topic datamin.dead-letter"):
            assert store.raw and store.cap <= RAW_CAP, store.name
        if store.enforced_by == SCHEDULER and not store.kind == "warehouse_table":
            assert store.expire is not None, f"{store.name} is not expired by anything"


def test_topics_keep_retention_plus_segment_roll_within_the_cap(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"TOPICS__RAW_RETENTION_HOURS": "167", "TOPICS__MINIMISED_RETENTION_DAYS": "364"})
    for spec in Topics(config).all():
        configs = topic_configs(spec)
        age = int(configs["retention.ms"]) + int(configs["segment.ms"])
        cap = RAW_CAP if spec.role in ("raw", "dead-letter") else CAP
        assert age <= cap / timedelta(milliseconds=1), spec.name
        assert configs["message.timestamp.type"] == "LogAppendTime"


@pytest.mark.parametrize(("env", "key"), [
    ({"WAREHOUSE__RETENTION_DAYS__HTTP_REQUEST": "400"}, "warehouse.retention_days.http_request"),
    ({"WAREHOUSE__RETENTION_DAYS__CONSENT_RECORD": "365"}, "warehouse.retention_days.consent_record"),
    ({"TOPICS__MINIMISED_RETENTION_DAYS": "400"}, "topics.minimised_retention_days"),
    ({"TOPICS__MINIMISED_RETENTION_DAYS": "365"}, "topics.minimised_retention_days"),
    ({"TOPICS__RAW_RETENTION_HOURS": "168"}, "topics.raw_retention_hours"),
    ({"PRODUCER__SPOOL_RETENTION_DAYS": "8"}, "producer.spool_retention_days"),
    ({"MINIMISE__CLOCK_SKEW_SECONDS": "100000"}, "minimise.clock_skew_seconds"),
])
def test_a_config_beyond_a_cap_is_refused_naming_the_key(make_config: Callable[..., Config], env: dict[str, str],
                                                       key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(**env)
    assert caught.value.key == key and "or less" in caught.value.fix


def test_a_store_added_later_is_listed_and_refused_beyond_the_cap(make_config: Callable[..., Config],
                                                                 provider_cleanup: list[Callable[..., list[Store]]],
                                                                 tmp_path: Path) -> None:
    deleted: list[datetime] = []

    def backups(config: Config) -> list[Store]:
        return [Store(name="later copies", kind="files", location=str(tmp_path), holds="copies of the warehouse",
                      cap=timedelta(days=30), enforced_by=SCHEDULER, how="deleted after 30 days",
                      oldest=lambda now: now - timedelta(days=40), expire=lambda now: deleted.append(now) or 1)]

    provider_cleanup.append(register_stores(backups))
    stores = inventory(make_config())
    backup = next(s for s in stores if s.name == "later copies")  # ("backups" is a real store now)
    assert backup.next_deletion(NOW) == NOW  # overdue: due now
    assert retention.expire_stores([backup], NOW) == {"later copies": 1} and deleted == [NOW]

    def too_long(config: Config) -> list[Store]:
        return [Store(name="forever", kind="files", location="x", holds="x", cap=timedelta(days=400),
                      enforced_by=SCHEDULER, how="never", setting="backup.keep_days")]

    provider_cleanup.append(register_stores(too_long))
    with pytest.raises(ConfigError) as caught:
        inventory(make_config())
    assert caught.value.key == "backup.keep_days" and "400 days" in caught.value.problem


def test_event_time_window() -> None:
    skew = timedelta(minutes=5)
    assert event_time_problem(NOW + timedelta(minutes=4), NOW, skew=skew, max_age_days=90) is None
    assert "future" in (event_time_problem(NOW + timedelta(minutes=6), NOW, skew=skew, max_age_days=90) or "")
    assert "future" in (event_time_problem(datetime(2300, 1, 1, tzinfo=UTC), NOW, skew=skew, max_age_days=90) or "")
    # by UTC day, as expiry: 90 days back is kept, 91 refused
    assert event_time_problem(NOW - timedelta(days=90), NOW, skew=skew, max_age_days=90) is None
    assert "retention of 90 days" in (event_time_problem(NOW - timedelta(days=91), NOW, skew=skew,
                                                         max_age_days=90) or "")


def test_check_event_time_uses_the_tables_retention(make_config: Callable[..., Config]) -> None:
    config = make_config()
    old = {"time": NOW - timedelta(days=200)}
    with pytest.raises(EventTimeError, match="http_request.time: older than its table's retention of 90 days"):
        check_event_time(config, "http_request", old, NOW)
    check_event_time(config, "consent_record", old, NOW)  # a year's table keeps it
    with pytest.raises(EventTimeError, match="privacy_request.received: dated more than 5 minutes in the future"):
        check_event_time(config, "privacy_request", {"received": NOW + timedelta(hours=1)}, NOW)
