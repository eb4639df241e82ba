"""Backups that forget: consistent, isolated, encrypted snapshots of the warehouse whose restore
re-applies every erasure, restriction, withdrawal and expiry recorded since they were taken.

    snapshot   create_backup: the consistent cut while the sink runs, MANIFEST.json written last
    manifest   what a backup holds: time, Kafka offsets, files and checksums
    crypto     AES-256-GCM at rest, the key from backup.key_file
    store      a local folder or an object store (pyarrow filesystems)
    (the forget ledger the rights actions write lives in warehouse.rights.ledger)
    reapply    what a restore re-applies, and its dry run
    restore    restore_backup
    verify     verify_backup: checksums, and who would be removed on restore
    retention  listing with age, expiry within the one-year cap
"""

from warehouse.backup.manifest import FileEntry, Manifest
from warehouse.backup.reapply import Reapplied, ReapplyReport
from warehouse.backup.restore import RestoreReport, restore_backup
from warehouse.backup.retention import BackupEntry, backup_inventory, expire_backups, list_backups
from warehouse.backup.snapshot import create_backup
from warehouse.backup.verify import VerifyReport, verify_backup

__all__ = ["BackupEntry", "FileEntry", "Manifest", "Reapplied", "ReapplyReport", "RestoreReport", "VerifyReport",
           "backup_inventory", "create_backup", "expire_backups", "list_backups", "restore_backup", "verify_backup"]
