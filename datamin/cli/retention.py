"""The retention inventory for the privacy officer: `datamin retention`."""

from __future__ import annotations

import argparse

from datamin.cli.command import Add
from datamin.config import Config


def register(add: Add) -> None:
    p = add("retention", "print the retention inventory: every store, its cap, its oldest item, its next deletion",
            _retention,
            "The privacy officer's proof of the one-year cap: every place datamin keeps anything (each table,\n"
            "the quarantine, each Kafka topic, the producer spool, the shipper's state, the rights and audit\n"
            "trails, the pseudonymisation keys, log files), its declared maximum age (within 365 days; data in\n"
            "clear within 7), the oldest item in it now and when that goes, and what enforces the cap (the\n"
            "scheduler, or Kafka's retention.ms + segment.ms set by `datamin topics`). Reads local files only,\n"
            "unless --kafka asks the broker for the topics' oldest records.")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    p.add_argument("--kafka", action="store_true", help="also ask the broker for each topic's oldest record")


def _retention(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from warehouse.retention import report

    print(report(config, datetime.now(UTC), fmt=args.format, kafka=args.kafka), end="")
    return 0
