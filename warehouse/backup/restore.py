"""`restore_backup`: a backup back into a warehouse, forgetting first what was forgotten since.

1. The backup's manifest is read, the key checked against its fingerprint, the target checked: a
   sink running on it (it holds ``_sink/running.lock``) or a non-empty target without ``replace``
   is refused. The erased-subjects topic is read whole.
2. Every file is read, its SHA-256 checked (and decrypted) and written into a private staging folder
   beside the target (``.<name>.restoring-<id>``, 0700). One damaged file and the restore stops,
   naming it, with the target untouched.
3. The live warehouse's rights and audit trails (newer than the backup) are merged in, and
   everything recorded since the snapshot is re-applied (`warehouse.backup.reapply`): erasures,
   withdrawals, restrictions, objections, lifts, expiry, the erasure sweep. An erasure on the topic
   that the forget ledger cannot match stops the restore (unless ``allow_unmatched``).
4. Only then does the staging folder take the target's place (renames), and the catalog is
   rebuilt: nothing is queryable before step 3 is done.

The maintenance lock of the live warehouse is held from step 3 on, so an erasure that comes in
meanwhile waits and then applies to the restored warehouse.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from datamin.clock import as_utc
from datamin.config import Config
from datamin.exceptions import BackupError
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.backup.crypto import BackupKey
from warehouse.backup.manifest import CATALOG_PATH, FILES_DIR, MANIFEST_NAME, Manifest
from warehouse.backup.reapply import AUDIT_JOB, ReapplyReport, reapply
from warehouse.backup.snapshot import WORKERS, backup_key
from warehouse.backup.store import Store
from warehouse.layout import Layout
from warehouse.locking import exclusive_if_no_sink, maintenance_lock

log = logging.getLogger(__name__)

MERGED_TRAILS = ("_rights/requests", "_rights/forget", "_audit")


@dataclass(frozen=True)
class RestoreReport:
    backup_id: str
    root: Path
    catalog: Path
    rows: dict[str, int]
    """rows per table after the re-applied actions"""
    reapplied: ReapplyReport

    def lines(self) -> list[str]:
        out = [f"restored backup {self.backup_id} into {self.root}",
               f"catalog rebuilt: {self.catalog}",
               "re-applied before anything was queryable:"]
        out += [f"  - {line}" for line in self.reapplied.lines(dry_run=False)]
        out.append("rows now: " + (", ".join(f"{t}: {n}" for t, n in sorted(self.rows.items())) or "none"))
        return out


def open_backup(src: str | os.PathLike[str]) -> tuple[Store, Manifest]:
    """The store and manifest of the backup folder ``src``; BackupError when it has no manifest."""
    store = Store.open(src)
    if not store.exists(MANIFEST_NAME):
        raise BackupError(f"{store.url} has no {MANIFEST_NAME}: it is not a backup, or an incomplete one "
                          "(interrupted while written); `datamin backup list DEST` shows the complete ones")
    return store, Manifest.from_json(store.read(MANIFEST_NAME), store.url)


def key_for(manifest: Manifest, key: BackupKey | None) -> BackupKey | None:
    """The key to read ``manifest``'s files with; BackupError when it is missing or another one."""
    if manifest.encryption is None:
        return None
    if key is None:
        raise BackupError(f"backup {manifest.backup_id} is encrypted ({manifest.encryption['algorithm']}): set "
                          "backup.key_file to the key it was made with")
    if key.fingerprint != manifest.encryption.get("key_fingerprint"):
        raise BackupError(f"backup {manifest.backup_id} was encrypted with another key (fingerprint "
                          f"{manifest.encryption.get('key_fingerprint')}, the configured key's is {key.fingerprint}): "
                          "set backup.key_file to the key it was made with")
    return key


def read_files(store: Store, manifest: Manifest, key: BackupKey | None,
               progress: Callable[[str], None] | None = None) -> Iterator[tuple[str, bytes | None, str]]:
    """(path, plaintext or None, problem) of every file: None with the problem when it is missing,
    damaged (checksum) or does not decrypt."""
    for i, entry in enumerate(manifest.files, 1):
        try:
            stored = store.read(f"{FILES_DIR}/{entry.path}")
        except BackupError:
            yield entry.path, None, "missing"
            continue
        if hashlib.sha256(stored).hexdigest() != entry.sha256:
            yield entry.path, None, "checksum mismatch (damaged)"
            continue
        if key is not None:
            try:
                stored = key.decrypt(stored, f"{manifest.backup_id}/{entry.path}")
            except BackupError:
                yield entry.path, None, "does not decrypt (damaged or another key)"
                continue
        if progress and i % 200 == 0:
            progress(f"{i}/{len(manifest.files)} files read")
        yield entry.path, stored, ""


def extract(store: Store, manifest: Manifest, key: BackupKey | None, into: Path,
            progress: Callable[[str], None] | None = None, *, durable: bool = True) -> list[tuple[str, str]]:
    """Writes every good file's plaintext under ``into`` (0700 folders, 0600 files); returns the
    (path, problem) of the bad ones (then ``into`` must not be used)."""
    bad = []

    def write(rel: str, data: bytes) -> None:
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)  # inside a 0700 folder until it takes the target's place
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # as the sink writes: the umask rules
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:  # before the folder takes the target's place
                f.flush()
                os.fsync(f.fileno())

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending = []
        for rel, data, problem in read_files(store, manifest, key, progress):
            if data is None:
                bad.append((rel, problem))
            elif not bad:
                pending.append(pool.submit(write, rel, data))
        for future in pending:
            future.result()
    return bad


def damaged_error(manifest: Manifest, bad: list[tuple[str, str]]) -> BackupError:
    names = "; ".join(f"{rel}: {problem}" for rel, problem in bad[:20])
    more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
    return BackupError(f"backup {manifest.backup_id} has {len(bad)} damaged file(s): {names}{more}. Nothing was "
                       "restored; restore an older backup, or copy the files again if they were damaged in transit")


def merge_live_trails(live: Layout, into: Path) -> int:
    """Copies the live warehouse's rights-request, forget-ledger and audit files that ``into`` lacks
    (they are never changed once written, so a file present in both is the same). Returns how many."""
    copied = 0
    for trail in MERGED_TRAILS:
        base = live.root / trail
        if not base.is_dir():
            continue
        for f in base.rglob("*"):
            rel = f.relative_to(live.root)
            if not f.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            target = into / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                copied += 1
    return copied


def _union_live_restrictions(live: Layout, restored: Layout) -> None:
    from warehouse.rights.restricted_area import sequester
    from warehouse.rights.restriction import add_restricted, read_restricted

    current = read_restricted(live)
    if current:
        add_restricted(restored, current)
        sequester(restored, current)


def _rows(layout: Layout) -> dict[str, int]:
    import pyarrow.parquet as pq

    out = {}
    for table in layout.tables():
        n = sum(pq.read_metadata(f).num_rows for f in layout.data_files(table))
        if n:
            out[table] = n
    return out


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _erased_topic(config: Config, use_kafka: bool) -> dict[str, tuple[datetime, str]] | None:
    if not use_kafka:
        return None
    from warehouse.backup.erased import read_erased_subjects

    return read_erased_subjects(config)


def restore_backup(config: Config, src: str | os.PathLike[str], *, now: datetime,
                   to: str | os.PathLike[str] | None = None, catalog: str | os.PathLike[str] | None = None,
                   replace: bool = False, use_kafka: bool = True,
                   allow_unmatched: bool = False, progress: Callable[[str], None] | None = None) -> RestoreReport:
    """Restores the backup ``src`` into ``to`` (default: warehouse.root); see the module docstring.
    Raises BackupError, with nothing changed in the target, when the restore cannot be done safely."""
    at = as_utc(now)
    store, manifest = open_backup(src)
    key = key_for(manifest, backup_key(config))
    live = Layout(Path(config.warehouse.root).resolve())
    target = Path(to).resolve() if to is not None else live.root
    catalog_path = Path(catalog) if catalog else (Path(config.warehouse.catalog) if target == live.root
                                                  else target / "catalog.duckdb")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not replace:
        raise BackupError(f"{target} is not empty: restore into an empty folder (--to), or pass --replace to "
                          "replace that warehouse (stop its sink first)")
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} is a file, not a warehouse folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if target.is_dir():
            if not stack.enter_context(exclusive_if_no_sink(Layout(target))):
                raise BackupError(f"a warehouse sink is running on {target}: stop every `datamin sink` writing "
                                  "there, then restore (a restore never replaces a warehouse being written)")
        erased = _erased_topic(config, use_kafka)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restoring-", dir=target.parent))
        try:
            bad = extract(store, manifest, key, staging, progress)
            if bad:
                raise damaged_error(manifest, bad)
            backup_catalog = staging / CATALOG_PATH
            if backup_catalog.exists():
                shutil.rmtree(backup_catalog.parent)  # rebuilt below for the restored paths
            restored = Layout(staging)
            if live.root.is_dir():
                stack.enter_context(maintenance_lock(live))
                merge_live_trails(live, staging)
            report = reapply(restored, config, since=manifest.created_at, now=at, erased_topic=erased, dry_run=False)
            if live.root.is_dir():
                _union_live_restrictions(live, restored)
            if report.unmatched and not allow_unmatched:
                raise BackupError(f"{len(report.unmatched)} subject(s) erased since the backup (per the "
                                  "erased-subjects topic) cannot be found in it: the forget ledger holds no record "
                                  "of their pseudonyms. "
                                  "Nothing was restored. Pass --allow-unmatched only if you will erase them again "
                                  "(`datamin rights erase`) before anyone queries: "
                                  + "; ".join(h for h, _, _ in report.unmatched[:10]))
            AuditLog(restored).append([AuditEntry(at=at, job=AUDIT_JOB, action="restore_backup", table_name="*",
                                                  partition=None, rows=sum(_rows(restored).values()), bytes=0,
                                                  detail=f"backup {manifest.backup_id} of "
                                                         f"{manifest.created_at.isoformat()}; "
                                                         f"{len(report.actions)} action(s) re-applied")],
                                      kind=AUDIT_JOB)
            aside = target.with_name(f".{target.name}.replaced-{manifest.backup_id}")
            mode = target.stat().st_mode & 0o7777 if target.exists() else 0o777 & ~_umask()
            if target.exists():
                os.rename(target, aside)
            os.chmod(staging, mode)  # the staging folder was private (0700); the warehouse's own mode now
            os.rename(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    from warehouse.catalog import build_catalog

    layout = Layout(target)
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    build_catalog(layout, catalog_path)
    return RestoreReport(backup_id=manifest.backup_id, root=target, catalog=catalog_path, rows=_rows(layout),
                         reapplied=report)
