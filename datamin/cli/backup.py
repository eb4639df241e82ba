"""`datamin backup create|restore|verify|list|expire|keygen`: the backup command group."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from datamin.cli.command import Add
from datamin.config import Config
from datamin.exceptions import BackupError

DESCRIPTION = """\
Backups that forget. A backup is a consistent snapshot of the warehouse tables, the rights trail,
the audit trail, the sink's Kafka offsets and the catalog, taken while the sink runs, with a
manifest (when, the offsets, every file's SHA-256). It never holds the pseudonymisation keys, the
rights secret or the backup key. Files are 0600 in 0700 folders, encrypted with AES-256-GCM when
backup.key_file is set, never reachable through the analysts' catalog, and deleted by the scheduler
after backup.retention_days (at most 365).

A restore re-applies, before anything is queryable, every erasure, withdrawal, restriction,
objection, lift and expiry recorded since the snapshot (the forget ledger in the rights trail, the
erased-subjects topic, the retention rules), then rebuilds the catalog, and lists what it did.

  create [DEST]            take a backup into DEST (a folder, file://, s3:// or gs://; default backup.dest)
  verify SRC               check every checksum, and list who would be removed or hidden on restore
  restore SRC [--to ROOT]  restore (refused while a sink runs on ROOT, or if a file is damaged)
  list [DEST]              the backups in DEST with their age and expiry
  expire [DEST]            delete the backups past backup.retention_days now (the scheduler does it daily)
  keygen PATH              write a new random backup key (0600); point backup.key_file at it

SRC is one backup's folder: DEST/datamin-backup-<time>-<id>.
"""

def register(add: Add) -> None:
    """Adds the `backup` command to the `datamin` parser (``add`` as in datamin.cli)."""
    p = add("backup", "back up, verify and restore the warehouse; restores never bring an erased person back",
            _backup, DESCRIPTION)
    p.add_argument("action", choices=["create", "restore", "verify", "list", "expire", "keygen"])
    p.add_argument("location", nargs="?", metavar="DEST|SRC|PATH",
                   help="create/list/expire: the backup folder or URL (default backup.dest); "
                        "restore/verify: one backup; keygen: the key file to write")
    p.add_argument("--to", metavar="ROOT",
                   help="restore: the warehouse folder to restore into (default warehouse.root)")
    p.add_argument("--catalog", metavar="PATH",
                   help="restore: the catalog to rebuild (default warehouse.catalog, or ROOT/catalog.duckdb with --to)")
    p.add_argument("--replace", action="store_true", help="restore: replace a non-empty warehouse (its sink stopped)")
    p.add_argument("--no-kafka", action="store_true",
                   help="restore/verify: do not read the erased-subjects topic (the forget ledger only)")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="restore even when an erasure on the topic has no ledger record (erase those again at once)")


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _where(args: argparse.Namespace, config: Config) -> str:
    where = args.location or config.backup.dest
    if not where:
        raise BackupError(f"`datamin backup {args.action}` needs DEST, or set backup.dest in datamin.toml")
    return str(where)


def _backup(args: argparse.Namespace, config: Config) -> int:
    from warehouse.backup import create_backup, expire_backups, list_backups, restore_backup, verify_backup

    now = datetime.now(UTC)
    if args.action == "keygen":
        from warehouse.backup.crypto import write_new_key

        if not args.location:
            raise BackupError("`datamin backup keygen PATH` needs the path of the key file to write")
        key = write_new_key(args.location)
        print(f"backup key written to {args.location} (fingerprint {key.fingerprint}); set backup.key_file to it "
              "and keep a copy apart from the backups: without it they cannot be read")
        return 0
    if args.action == "create":
        dest = _where(args, config)
        manifest = create_backup(config, dest, now=now, progress=_progress)
        rows = ", ".join(f"{t}: {n}" for t, n in sorted(manifest.rows_by_table().items())) or "no rows"
        print(f"backup {manifest.backup_id}: {len(manifest.files)} files, {manifest.total_bytes} bytes "
              f"({rows}); {'encrypted' if manifest.encryption else 'NOT encrypted (set backup.key_file)'}; "
              f"expires {manifest.expires_at:%Y-%m-%d}")
        if config.backup.dest is None or dest.rstrip("/") != config.backup.dest.rstrip("/"):
            print(f"note: {dest} is not backup.dest, so the scheduler will not expire it: run "
                  f"`datamin backup expire {dest}` daily, or set backup.dest", file=sys.stderr)
        return 0
    if args.action in ("list", "expire"):
        where = _where(args, config)
        if args.action == "expire":
            gone = expire_backups(where, now=now, retention_days=config.backup.retention_days)
            print(f"{len(gone)} backup(s) expired and deleted")
            return 0
        entries = list_backups(where, now=now, retention_days=config.backup.retention_days)
        for e in entries:
            print(e.line())
        if not entries:
            print(f"no backups in {where}")
        return 0
    if not args.location:
        raise BackupError(f"`datamin backup {args.action} SRC` needs the backup folder (see `datamin backup list`)")
    if args.action == "verify":
        report = verify_backup(config, args.location, now=now, use_kafka=not args.no_kafka, progress=_progress)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1
    restored = restore_backup(config, args.location, now=now, to=args.to, catalog=args.catalog,
                              replace=args.replace, use_kafka=not args.no_kafka,
                              allow_unmatched=args.allow_unmatched, progress=_progress)
    print("\n".join(restored.lines()))
    return 0
