"""The manifest of a backup: when it was taken, the Kafka offsets it corresponds to, and every file
with its checksum. JSON, written last (``MANIFEST.json``): a backup folder without one is
incomplete and is never restored. It holds no personal data (paths, counts, checksums, offsets).

    <dest>/<backup id>/MANIFEST.json
    <dest>/<backup id>/files/<path relative to the warehouse root>     (encrypted when so recorded)
    <dest>/<backup id>/files/_catalog/catalog.duckdb                  the analysts' catalog as it was
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datamin.exceptions import BackupError

MANIFEST_NAME = "MANIFEST.json"
FILES_DIR = "files"
CATALOG_PATH = "_catalog/catalog.duckdb"
FORMAT = 1
ID_PREFIX = "datamin-backup-"


@dataclass(frozen=True)
class FileEntry:
    """One file of a backup."""

    path: str
    """relative to the warehouse root ('/'-separated); stored under ``files/``"""
    kind: str
    """table, checkpoint, rights, audit or catalog"""
    bytes: int
    """size as stored (after encryption)"""
    sha256: str
    """of the bytes as stored: verifiable without the key"""
    rows: int | None = None
    """for table files: the rows in the Parquet footer"""
    table: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind, "bytes": self.bytes, "sha256": self.sha256}
        if self.rows is not None:
            out["rows"] = self.rows
        if self.table is not None:
            out["table"] = self.table
        return out


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    created_at: datetime
    """when the consistent cut was taken (UTC)"""
    expires_at: datetime
    """created_at + backup.retention_days at the time: when the scheduler deletes it"""
    offsets: dict[str, dict[int, int]]
    """topic -> partition -> last offset whose rows the backup holds (the sink's checkpoints)"""
    files: tuple[FileEntry, ...]
    encryption: dict[str, str] | None = None
    """{"algorithm", "key_fingerprint"} when the files are encrypted"""
    source_root: str = ""
    excluded: tuple[str, ...] = field(default_factory=tuple)
    """what a backup never holds, in words (keys, secrets, staging, quarantine)"""

    def rows_by_table(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            if f.kind == "table" and f.table is not None:
                out[f.table] = out.get(f.table, 0) + (f.rows or 0)
        return out

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "backup_id": self.backup_id, "created_at": self.created_at.isoformat(),
               "expires_at": self.expires_at.isoformat(),
               "offsets": {t: {str(p): o for p, o in sorted(parts.items())}
                           for t, parts in sorted(self.offsets.items())},
               "tables": self.rows_by_table(), "encryption": self.encryption, "source_root": self.source_root,
               "excluded": list(self.excluded), "files": [f.to_dict() for f in self.files]}
        return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise BackupError(f"{where}: manifest format {doc.get('format')!r} is not {FORMAT}: "
                                  "restore it with the datamin version that made it")
            return cls(backup_id=str(doc["backup_id"]), created_at=datetime.fromisoformat(doc["created_at"]),
                       expires_at=datetime.fromisoformat(doc["expires_at"]),
                       offsets={t: {int(p): int(o) for p, o in parts.items()} for t, parts in doc["offsets"].items()},
                       files=tuple(FileEntry(path=f["path"], kind=f["kind"], bytes=int(f["bytes"]), sha256=f["sha256"],
                                             rows=f.get("rows"), table=f.get("table")) for f in doc["files"]),
                       encryption=doc.get("encryption"), source_root=str(doc.get("source_root", "")),
                       excluded=tuple(doc.get("excluded", ())))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"{where}: the manifest is damaged ({type(exc).__name__}); this backup cannot "
                              "be trusted: use another one") from None
