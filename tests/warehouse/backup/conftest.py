"""A small warehouse of three people, written through the sink's own writer (files named by offset
range, checkpoints beside them), for the backup tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.keys import KeyStore, pseudonymise, require_subject_key
from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.layout import Layout
from warehouse.rights.preflight import ensure_rights_secret
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

ALICE = "alice-user-81724"
BOB = "bob-user-55190"
CAROL = "carol-user-30391"
PEOPLE = (ALICE, BOB, CAROL)
DAY = datetime(2026, 1, 15, 10, tzinfo=UTC)
"""the day the rows are about"""
TAKEN = datetime(2026, 2, 1, 3, tzinfo=UTC)
"""when the backup is taken"""
LATER = datetime(2026, 2, 10, 12, tzinfo=UTC)
"""when rights are exercised, after the backup"""
RESTORED = datetime(2026, 2, 20, 8, tzinfo=UTC)
"""when the backup is restored (every partition still within retention)"""


@dataclass
class World:
    config: Config
    layout: Layout
    keys: KeyStore

    def pseudonym(self, person: str, when: datetime = DAY) -> str:
        value = pseudonymise(require_subject_key(person), self.keys.key_for(self.keys.period_for(when)), "subject")
        assert value is not None
        return value

    def topic(self, table: str) -> str:
        return f"{self.config.topics.prefix}.minimised.{table}"

    def write(self, table: str, partition: int, first: int, people: list[str | None],
              when: datetime = DAY) -> None:
        schema = default_registry().latest(table, "minimised")
        records = []
        for n, person in enumerate(people):
            record = sample_record(table, first + n, when + timedelta(minutes=n))
            record["subject"] = self.pseudonym(person, when) if person else None
            if table == "http_request":
                record["user_id"] = pseudonymise(require_subject_key(person),
                                                 self.keys.key_for(self.keys.period_for(when)),
                                                 "user_id") if person else None
            records.append(record)
        PartitionWriter(self.layout).write(table, self.topic(table), partition, first, first + len(people) - 1,
                                           records_to_table(schema, records))


def rows_of(layout: Layout, table: str, pseudonym: str | None = None) -> int:
    total = 0
    for f in layout.data_files(table):
        subjects = pq.read_table(f, columns=["subject"]).column(0).to_pylist()
        total += len(subjects) if pseudonym is None else subjects.count(pseudonym)
    return total


@pytest.fixture
def world_factory() -> Callable[[Config], World]:
    def make(config: Config) -> World:
        keys = KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation, clock=lambda: DAY)
        ensure_rights_secret(config)  # as the processor does when it starts
        w = World(config, Layout(Path(config.warehouse.root)), keys)
        people: list[str | None] = [ALICE, BOB, CAROL, None] * 3
        w.write("http_request", 0, 0, people)
        w.write("http_request", 1, 0, [ALICE, None, BOB])
        w.write("usage_event", 0, 0, [CAROL, ALICE, None, BOB])
        w.write("consent_record", 0, 0, [ALICE, BOB, CAROL])
        return w
    return make


@pytest.fixture
def kit() -> object:
    """The people, instants and helpers above, for the test modules (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(ALICE=ALICE, BOB=BOB, CAROL=CAROL, DAY=DAY, TAKEN=TAKEN, LATER=LATER, RESTORED=RESTORED,
                           World=World, rows_of=rows_of)
