"""`create_backup`: a consistent snapshot of a warehouse, taken while the sink runs.

The cut. The sink makes a flush visible by renaming its files into place and *then* moving the
(topic, partition) checkpoint; the jobs that rewrite or delete files (expiry, compaction, erasure,
the sweep) hold the maintenance lock. So, holding that lock, the snapshot

1. reads every checkpoint (topic, partition -> last offset loaded);
2. lists the files and keeps a sink data file (``<topic>~p<n>~o<first>-<last>.parquet``) only when
   ``last`` is at or below its partition's checkpoint: a file renamed in by a flush whose checkpoint
   had not moved yet belongs to the next backup, and every file up to the checkpoint is in place
   (renamed before the checkpoint was written). Merged (compacted) files of closed days are kept;
3. copies those files, the checkpoints *as read in step 1*, the rights trail (requests, restriction
   list, erasure sweep list, forget ledger), the audit trail and the catalog file, each with its
   SHA-256 — encrypted first when a backup key is configured;
4. writes ``MANIFEST.json`` last.

The backup therefore holds exactly the rows of offsets 0..checkpoint of every partition, and a
restored warehouse's sink resumes at checkpoint + 1. Never copied: the pseudonymisation keys and the
rights secret (``pseudonymise.key_dir``, also when it lies inside the warehouse root), staging,
compaction and trash folders, the quarantine, locks and temporary dot-files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamin.clock import as_utc
from datamin.config import Config
from datamin.exceptions import BackupError
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.backup.crypto import ALGORITHM, BackupKey, load_key
from warehouse.backup.manifest import CATALOG_PATH, FILES_DIR, ID_PREFIX, MANIFEST_NAME, FileEntry, Manifest
from warehouse.backup.store import Store
from warehouse.layout import Layout, parse_data_file_name
from warehouse.locking import maintenance_lock

log = logging.getLogger(__name__)

AUDIT_JOB = "backup"
WORKERS = 8
"""files copied at once (their fsyncs overlap)"""
TRAILS = ("_rights", "_audit", "_restricted")
"""folders of the warehouse root copied whole (besides the tables and the checkpoints)"""
EXCLUDED = ("pseudonymisation keys and the rights secret (pseudonymise.key_dir)",
            "backup keys", "_staging, _compaction and _trash (unfinished work)",
            "_quarantine (corrupt or foreign files)", "locks and temporary dot-files")


def backup_key(config: Config) -> BackupKey | None:
    """The configured backup key, or None when backups are not encrypted."""
    return load_key(config.backup.key_file) if config.backup.key_file else None


def new_backup_id(now: datetime) -> str:
    return f"{ID_PREFIX}{as_utc(now).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def read_checkpoints(layout: Layout) -> dict[str, dict[int, int]]:
    """topic -> partition -> last offset loaded, from ``_sink/checkpoints/``."""
    folder = layout.checkpoint_file("x", 0).parent
    out: dict[str, dict[int, int]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or "~p" not in path.name:
            continue
        topic, _, part = path.name.rpartition("~p")
        try:
            out.setdefault(topic, {})[int(part)] = int(json.loads(path.read_text(encoding="ascii"))["last"])
        except (ValueError, KeyError, TypeError):
            raise BackupError(f"checkpoint {path} is corrupt; the snapshot cannot say which offsets it holds: "
                              "repair the warehouse first") from None
    return out


def _secret_dirs(config: Config) -> tuple[Path, ...]:
    dirs = [Path(config.pseudonymise.key_dir).resolve()]
    if config.backup.key_file:
        dirs.append(Path(config.backup.key_file).resolve())
    return tuple(dirs)


def _is_secret(path: Path, secrets: tuple[Path, ...]) -> bool:
    resolved = path.resolve()
    return any(resolved == s or s in resolved.parents for s in secrets) or path.name == "rights.secret"


def select_files(layout: Layout, checkpoints: dict[str, dict[int, int]],
                 secrets: tuple[Path, ...] = ()) -> Iterator[tuple[Path, str, str | None]]:
    """(path, kind, table) of every file the cut holds; see the module docstring."""
    root = layout.root
    for table in layout.tables():
        for _day, folder in layout.partitions(table):
            for f in sorted(folder.glob("*.parquet")):
                if f.name.startswith(".") or not f.is_file() or _is_secret(f, secrets):
                    continue
                parsed = parse_data_file_name(f.name)
                if parsed is not None:
                    topic, partition, _first, last = parsed
                    done = checkpoints.get(topic, {}).get(partition)
                    if done is None or last > done:
                        continue  # renamed in by a flush whose checkpoint had not moved: the next backup's
                yield f, "table", table
    for trail in TRAILS:
        base = root / trail
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*")):
            rel_parts = f.relative_to(root).parts
            if f.is_file() and not any(p.startswith(".") for p in rel_parts) and not _is_secret(f, secrets):
                yield f, {"_rights": "rights", "_audit": "audit"}.get(trail, "restricted"), None


def _inside(path: Path, root: Path) -> bool:
    resolved, top = path.resolve(), root.resolve()
    return resolved == top or top in resolved.parents


def _partition_rows(data: bytes) -> int:
    return int(pq.read_metadata(pa.BufferReader(data)).num_rows)


def create_backup(config: Config, dest: str | os.PathLike[str], *, now: datetime,
                  progress: Callable[[str], None] | None = None) -> Manifest:
    """Takes a consistent snapshot of the warehouse of ``config`` into a new folder under ``dest``;
    returns its manifest. Holds the maintenance lock while it reads (expiry, compaction and erasure
    wait; the sink goes on). Raises BackupError (nothing usable left behind: no manifest)."""
    layout = Layout(Path(config.warehouse.root))
    if not layout.root.is_dir():
        raise BackupError(f"the warehouse root {layout.root} does not exist: check warehouse.root")
    key = backup_key(config)
    at = as_utc(now)
    backup_id = new_backup_id(at)
    base = Store.open(dest)
    if base.local and _inside(Path(base.base), layout.root):
        raise BackupError(f"{dest} is inside the warehouse root {layout.root}: a backup must be isolated from the "
                          "warehouse analysts and jobs read; choose a folder outside it")
    store = base.child(backup_id)
    store.makedirs()
    secrets = _secret_dirs(config)
    done = [0]

    def put(rel: str, source: Path | bytes, kind: str, table: str | None = None) -> FileEntry | None:
        try:
            data = source.read_bytes() if isinstance(source, Path) else source
        except FileNotFoundError:
            return None  # a rights trail file replaced meanwhile (the restriction list): its new name is listed
        rows = _partition_rows(data) if kind == "table" else None
        stored = key.encrypt(data, f"{backup_id}/{rel}") if key else data
        store.write(f"{FILES_DIR}/{rel}", stored)
        done[0] += 1
        if progress and done[0] % 500 == 0:
            progress(f"{done[0]} files copied")
        return FileEntry(path=rel, kind=kind, bytes=len(stored), sha256=hashlib.sha256(stored).hexdigest(),
                         rows=rows, table=table)

    with maintenance_lock(layout):
        checkpoints = read_checkpoints(layout)
        work: list[tuple[str, Path | bytes, str, str | None]] = []
        for topic, parts in sorted(checkpoints.items()):
            for partition, last in sorted(parts.items()):
                rel = layout.checkpoint_file(topic, partition).relative_to(layout.root).as_posix()
                work.append((rel, json.dumps({"last": last}).encode(), "checkpoint", None))
        for path, kind, table in select_files(layout, checkpoints, secrets):
            work.append((path.relative_to(layout.root).as_posix(), path, kind, table))
        catalog = Path(config.warehouse.catalog)
        if catalog.is_file():
            work.append((CATALOG_PATH, catalog, "catalog", None))
        # files are independent: hashing, encryption and fsync overlap in threads (all release the GIL)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            entries = [e for e in pool.map(lambda w: put(*w), work) if e is not None]
    manifest = Manifest(backup_id=backup_id, created_at=at,
                        expires_at=at + timedelta(days=config.backup.retention_days), offsets=checkpoints,
                        files=tuple(entries),
                        encryption={"algorithm": ALGORITHM, "key_fingerprint": key.fingerprint} if key else None,
                        source_root=str(layout.root.resolve()), excluded=EXCLUDED)
    store.write(MANIFEST_NAME, manifest.to_json())
    AuditLog(layout).append([AuditEntry(at=at, job=AUDIT_JOB, action="create_backup", table_name="*", partition=None,
                                        rows=sum(manifest.rows_by_table().values()), bytes=manifest.total_bytes,
                                        detail=f"backup {backup_id}: {len(entries)} files, "
                                               f"{'encrypted' if key else 'not encrypted'}, expires "
                                               f"{manifest.expires_at.date().isoformat()}")], kind=AUDIT_JOB)
    log.info("backup %s: %d files, %d bytes, tables %s", backup_id, len(entries), manifest.total_bytes,
             manifest.rows_by_table())
    return manifest


