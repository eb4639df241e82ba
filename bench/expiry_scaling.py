"""Does expiry cost grow with what it drops, not with what the table holds?

Builds a table of P day partitions (F files each) twice: with R rows per partition, and with 10×R.
Both expire the same 30 of 60 partitions (audit on, fsync on). If expiry read surviving data or
whole files, the 10× table would take ~10× longer; footers, renames and unlinks should not.

    python bench/expiry_scaling.py [--quick] [--dir PATH]

Ends with: RESULT expiry_scaling <ratio> x ratio=<time_10x/time_1x> baseline=<the smaller table>
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse.audit_trail import AuditLog
from warehouse.expiry import expire
from warehouse.layout import Layout

NOW = datetime(2025, 4, 1, 3, 15, tzinfo=UTC)
PARTITIONS = 60
RETENTION = 29  # partitions 30..59 days old expire: 30 of 60
FILES = 4


def template(folder: Path, rows: int) -> None:
    """One partition's worth of files (rows split over FILES), realistic columns."""
    folder.mkdir(parents=True)
    per = rows // FILES
    for f in range(FILES):
        start = f * per
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        table = pa.table({
            "event_id": [f"{i:016x}{i * 2654435761 % 2**32:08x}" for i in range(start, start + per)],
            "time": pa.array([t0 + timedelta(milliseconds=i * 37) for i in range(start, start + per)],
                             pa.timestamp("us", tz="UTC")),
            "path": [f"/catalogue/item/{i % 997}" for i in range(start, start + per)],
            "status": pa.array([200 if i % 11 else 404 for i in range(start, start + per)], pa.int16()),
            "client_net": [f"10.{i % 256}.0.0/16" for i in range(start, start + per)],
        })
        pq.write_table(table, folder / f"t~p0~o{start:019d}-{start + per - 1:019d}.parquet", compression="zstd")


def build(root: Path, tpl: Path) -> Layout:
    layout = Layout(root)
    for i in range(PARTITIONS):
        shutil.copytree(tpl, layout.partition_dir("http_request", NOW.date() - timedelta(days=i)))
    return layout


def measure_once(base: Path, tpl: Path, rows: int, run: int) -> tuple[float, int]:
    root = base / f"wh-{rows}-{run}"
    layout = build(root, tpl)
    size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    os.sync()  # partitions due for expiry were written long ago: don't time flushing the build
    t = time.perf_counter()
    done = expire(layout, {"http_request": RETENTION}, now=NOW, audit=AuditLog(layout))
    elapsed = time.perf_counter() - t
    assert len(done) == 30 and len(layout.partitions("http_request")) == 30, "wrong partitions expired"
    assert sum(e.rows for e in done) == 30 * (rows // FILES) * FILES
    shutil.rmtree(root)
    return elapsed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller tables, fewer repeats (under a minute)")
    parser.add_argument("--dir", help="where to build the tables (default: a temporary folder)")
    args = parser.parse_args()
    rows, repeats = (4_000, 7) if args.quick else (40_000, 9)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        sizes: dict[int, int] = {}
        times: dict[int, list[float]] = {rows: [], rows * 10: []}
        for n in times:
            template(base / f"template-{n}", n)
        for run in range(repeats):  # interleaved, so disk noise hits both sizes alike
            for n in times:
                elapsed, sizes[n] = measure_once(base, base / f"template-{n}", n, run)
                times[n].append(elapsed)
        t1, t10 = statistics.median(times[rows]), statistics.median(times[rows * 10])
        size1, size10 = sizes[rows], sizes[rows * 10]
    print(f"1x : {PARTITIONS} partitions x {rows:,} rows ({size1 / 1e6:.1f} MB): expire 30 in {t1 * 1e3:.1f} ms")
    print(f"10x: {PARTITIONS} partitions x {rows * 10:,} rows ({size10 / 1e6:.1f} MB): expire 30 in {t10 * 1e3:.1f} ms")
    ratio = t10 / t1
    print(f"RESULT expiry_scaling {ratio:.2f} x ratio={ratio:.2f} "
          f"baseline=expiry of the same 30 partitions in a table ten times smaller ({rows:,} rows/partition)")


if __name__ == "__main__":
    main()
