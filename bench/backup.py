"""Backup and restore of a warehouse against a plain copy of the same tree.

Builds a warehouse of http_request and usage_event rows (1M; --quick 100k; --rows for another size)
over 30 days through the sink's own writer (files named by offset range, checkpoints), or takes an
existing one (--root, e.g. the demo's data/warehouse), then times in the same run:

- the baseline: a plain recursive copy of the warehouse folder (shutil.copytree);
- `datamin backup create` (checksums, manifest; and again encrypted with AES-256-GCM);
- `datamin backup verify` (every checksum, unpacking, the dry run of what a restore re-applies);
- `datamin backup restore --to` (checks, unpacking, re-applying one erasure recorded since the
  backup, expiry, the catalog rebuilt).

Kafka is not used (the erased-subjects topic is not read: --no-kafka).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datamin.config import Config, load_config  # noqa: E402
from datamin.keys import KeyStore, pseudonymise, require_subject_key  # noqa: E402
from schemas import default_registry  # noqa: E402
from warehouse.arrow import arrow_schema  # noqa: E402
from warehouse.backup import create_backup, restore_backup, verify_backup  # noqa: E402
from warehouse.backup.crypto import write_new_key  # noqa: E402
from warehouse.layout import Layout  # noqa: E402
from warehouse.rights.ledger import record_action  # noqa: E402
from warehouse.rights.preflight import ensure_rights_secret  # noqa: E402
from warehouse.writer import PartitionWriter  # noqa: E402

TABLES = ("http_request", "usage_event")
DAYS = 30
FILES_PER_DAY = 4
SUBJECT = "bench-subject-0001"
NOW = datetime.now(UTC).replace(microsecond=0)


def build(root: Path, keys: KeyStore, rows: int, rng: random.Random) -> None:
    writer = PartitionWriter(Layout(root), fsync=False)
    registry = default_registry()
    period = keys.period_for(NOW)
    pool = [pseudonymise(f"user-{i}", keys.key_for(period), "subject") for i in range(5_000)]
    pool.append(pseudonymise(require_subject_key(SUBJECT), keys.key_for(period), "subject"))
    per_file = max(1, rows // (len(TABLES) * DAYS * FILES_PER_DAY))
    for table in TABLES:
        schema = arrow_schema(registry.latest(table, "minimised"))
        offset = 0
        for d in range(DAYS):
            day = (NOW - timedelta(days=DAYS - d)).replace(hour=0, minute=0, second=0)
            for f in range(FILES_PER_DAY):
                times = [day + timedelta(seconds=rng.randrange(86_400)) for _ in range(per_file)]
                columns: dict[str, list[Any]] = {
                    "event_id": [f"{table}-{d}-{f}-{i}" for i in range(per_file)], "time": times,
                    "subject": [rng.choice(pool) if rng.random() < 0.7 else None for _ in range(per_file)]}
                if table == "http_request":
                    columns |= {"url": [f"/page/{rng.randrange(500)}" for _ in range(per_file)],
                                "status": [rng.choice((200, 200, 304, 404)) for _ in range(per_file)],
                                "client_network": [f"10.{rng.randrange(256)}.0.0/16" for _ in range(per_file)]}
                else:
                    columns |= {"kind": ["page_view"] * per_file, "page": ["/p"] * per_file}
                arrays = [pa.array(columns.get(fld.name, [None] * per_file), type=fld.type) for fld in schema]
                writer.write(table, f"bench.minimised.{table}", 0, offset, offset + per_file - 1,
                             pa.Table.from_arrays(arrays, schema=schema))
                offset += per_file


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows (seconds)")
    parser.add_argument("--rows", type=int, help="rows in all (default 1,000,000)")
    parser.add_argument("--root", help="measure this existing warehouse instead (e.g. data/warehouse); its "
                                       "pseudonymisation keys from DATAMIN__PSEUDONYMISE__KEY_DIR / datamin.toml")
    parser.add_argument("--dir", help="where to work (default: a temporary folder)")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        env = {"DATAMIN__WAREHOUSE__CATALOG": f'"{base / "catalog.duckdb"}"'}
        if args.root:
            env["DATAMIN__WAREHOUSE__ROOT"] = f'"{Path(args.root).resolve()}"'
            probe = load_config()
            env["DATAMIN__PSEUDONYMISE__KEY_DIR"] = f'"{Path(probe.pseudonymise.key_dir).resolve()}"'
        else:
            env |= {"DATAMIN__WAREHOUSE__ROOT": f'"{base / "wh"}"',
                    "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{base / "keys"}"'}
        config: Config = load_config(environ=env)
        root = Path(config.warehouse.root)
        if not args.root:
            keys = KeyStore(base / "keys", "monthly", clock=lambda: NOW)
            ensure_rights_secret(config)  # as the processor does when it starts
            build(root, keys, rows, random.Random(7))
        files = sum(1 for _ in root.rglob("*.parquet"))
        size = size_of(root)
        copy_s, _ = timed(lambda: shutil.copytree(root, base / "plain-copy"))
        create_s, manifest = timed(lambda: create_backup(config, base / "backups", now=NOW))
        src = base / "backups" / manifest.backup_id
        table_rows = sum(manifest.rows_by_table().values())
        write_new_key(base / "backup.key")
        encrypted = load_config(environ=env | {"DATAMIN__BACKUP__KEY_FILE": f'"{base / "backup.key"}"'})
        create_enc_s, _ = timed(lambda: create_backup(encrypted, base / "backups-enc", now=NOW))
        if not args.root:
            record_action(config, "erasure", "bench-erasure", SUBJECT, at=NOW + timedelta(seconds=1))
        later = NOW + timedelta(minutes=1)
        verify_s, report = timed(lambda: verify_backup(config, src, now=later, use_kafka=False))
        assert report.ok, report.lines()
        restore_s, restored = timed(lambda: restore_backup(config, src, now=later, to=base / "restored",
                                                           use_kafka=False))
        shutil.rmtree(base / "restored")
        shutil.rmtree(base / "plain-copy")
    origin = f"--root {args.root}" if args.root else "built"
    print(f"{table_rows:,} rows in {files} Parquet files, {size / 1e6:.1f} MB ({origin})")
    print(f"plain copy {copy_s:.3f} s; backup create {create_s:.3f} s, encrypted {create_enc_s:.3f} s; "
          f"verify {verify_s:.3f} s; restore {restore_s:.3f} s")
    for line in restored.reapplied.lines(dry_run=False):
        print(f"  re-applied: {line}")
    print(f"RESULT backup_create {create_s:.3f} s ratio={create_s / copy_s:.2f} baseline=plain copy of the same "
          f"tree ({copy_s:.3f} s) rows={table_rows} encrypted_s={create_enc_s:.3f} verify_s={verify_s:.3f} "
          f"restore_s={restore_s:.3f} restore_ratio={restore_s / copy_s:.2f}")


if __name__ == "__main__":
    main()
