"""Erasure of one subject against a full scan of the same tables.

Builds a warehouse of http_request and usage_event rows over many days and files (1M rows; --quick
200k; --rows for another size), one subject's rows in a handful of files, then times, in the same
run, `erase_subject` (scan the subject column, rewrite only the affected files) against DuckDB reading
every row of the same tables. Kafka is not used (the erased-subjects record is not published).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datamin.config import load_config
from processors.transforms import KeyStore, pseudonymise
from schemas import default_registry
from warehouse.arrow import arrow_schema
from warehouse.layout import Layout
from warehouse.rights.erasure import erase_subject

TABLES = ("http_request", "usage_event")
DAYS = 60
FILES_PER_DAY = 4
SUBJECT = "bench-subject-0001"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def build(root: Path, keys: KeyStore, rows: int, subject_files: int, rng: random.Random) -> int:
    """Writes the tables; returns how many rows belong to the subject."""
    layout = Layout(root)
    registry = default_registry()
    pool = [pseudonymise(f"user-{i}", keys.key_for("2026-01"), "subject") for i in range(5_000)]
    per_file = rows // (len(TABLES) * DAYS * FILES_PER_DAY)
    targets = set(rng.sample(range(len(TABLES) * DAYS * FILES_PER_DAY), subject_files))
    n, held = 0, 0
    for table in TABLES:
        schema = arrow_schema(registry.latest(table, "minimised"))
        for d in range(DAYS):
            day = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d)
            folder = layout.partition_dir(table, day.date())
            folder.mkdir(parents=True, exist_ok=True)
            for f in range(FILES_PER_DAY):
                times = [day + timedelta(seconds=rng.randrange(86_400)) for _ in range(per_file)]
                subjects = [rng.choice(pool) if rng.random() < 0.7 else None for _ in range(per_file)]
                if n in targets:
                    mine = pseudonymise(SUBJECT, keys.key_for(keys.period_for(day)), "subject")
                    for i in rng.sample(range(per_file), 5):
                        subjects[i] = mine
                    held += 5
                columns = {"event_id": [f"{table}-{d}-{f}-{i}" for i in range(per_file)], "time": times,
                           "subject": subjects}
                if table == "http_request":
                    columns |= {"url": [f"/page/{rng.randrange(500)}" for _ in range(per_file)],
                                "status": [rng.choice((200, 200, 304, 404)) for _ in range(per_file)]}
                else:
                    columns |= {"kind": ["page_view"] * per_file, "page": ["/p"] * per_file}
                arrays = [pa.array(columns.get(fld.name, [None] * per_file), type=fld.type) for fld in schema]
                pq.write_table(pa.Table.from_arrays(arrays, schema=schema),
                               folder / layout.data_file_name(f"bench.{table}", 0, n * per_file,
                                                              (n + 1) * per_file - 1), compression="zstd")
                n += 1
    return held


def full_scan(root: Path) -> float:
    layout = Layout(root)
    start = time.perf_counter()
    with duckdb.connect() as con:
        for table in TABLES:
            con.execute(f"SELECT count(*), count(subject), max(event_id), max(time) "
                        f"FROM read_parquet('{layout.table_glob(table)}')").fetchall()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows (under a minute)")
    parser.add_argument("--rows", type=int, help="rows in all (default 1,000,000)")
    parser.add_argument("--dir", help="where to build the warehouse (default: a temporary folder)")
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        config = load_config(environ={"DATAMIN__WAREHOUSE__ROOT": f'"{base / "wh"}"',
                                      "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{base / "keys"}"'})
        keys = KeyStore(base / "keys", "monthly", clock=lambda: NOW)
        for period in ("2026-01", "2026-02", "2026-03"):
            keys.key_for(period)
        held = build(base / "wh", keys, rows, subject_files=6, rng=rng)
        files = sum(1 for _ in (base / "wh").rglob("*.parquet"))
        scan = min(full_scan(base / "wh") for _ in range(3))  # warm cache, best of three
        start = time.perf_counter()
        receipt = erase_subject(config, SUBJECT, now=NOW, publish=False)
        erase = time.perf_counter() - start
        os.sync()
    assert receipt.rows == held, (receipt.rows, held)
    print(f"{rows:,} rows in {files} files over {DAYS} days; the subject had {held} rows")
    print(f"full scan of {', '.join(TABLES)}: {scan * 1e3:.1f} ms; erase_subject: {erase * 1e3:.1f} ms")
    print(f"RESULT erasure {erase:.3f} s ratio={erase / scan:.2f} baseline=full scan of the same tables "
          f"files_touched={len(receipt.files)} rows_deleted={receipt.rows}")


if __name__ == "__main__":
    main()
