"""`verify_backup`: are a backup's files intact, and would restoring it bring anyone back?

Every file's SHA-256 is checked against the manifest (and, when encrypted, decrypted: the GCM tag
proves the content). Then the backup is unpacked into a private temporary folder (0700, deleted
afterwards) and the restore's re-application is dry-run on it against the live rights trail, the
forget ledger, the erased-subjects topic and the retention rules: each subject erased since the
snapshot whose rows the backup holds is listed by keyed hash as "will be removed on restore", with
the rows per table, and likewise restrictions, withdrawals and expired partitions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from datamin.clock import as_utc
from datamin.config import Config
from warehouse.backup.manifest import Manifest
from warehouse.backup.reapply import ReapplyReport, reapply
from warehouse.backup.restore import _erased_topic, extract, key_for, merge_live_trails, open_backup
from warehouse.backup.snapshot import backup_key
from warehouse.layout import Layout


@dataclass(frozen=True)
class VerifyReport:
    manifest: Manifest
    damaged: list[tuple[str, str]]
    """(path, problem) of every file that is missing, damaged or does not decrypt"""
    plan: ReapplyReport | None = None
    """what a restore would re-apply (None when files are damaged: it would be refused)"""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and (self.plan is None or not self.plan.unmatched)

    def lines(self) -> list[str]:
        m = self.manifest
        out = [f"backup {m.backup_id}, taken {m.created_at.isoformat()}, {len(m.files)} files, {m.total_bytes} bytes"
               f"{', encrypted (' + m.encryption['algorithm'] + ')' if m.encryption else ', not encrypted'}",
               "offsets: " + (", ".join(f"{t}[{p}]<={o}" for t, parts in sorted(m.offsets.items())
                                        for p, o in sorted(parts.items())) or "none"),
               "rows: " + (", ".join(f"{t}: {n}" for t, n in sorted(m.rows_by_table().items())) or "none")]
        if self.damaged:
            out.append(f"DAMAGED: {len(self.damaged)} file(s); a restore of this backup is refused:")
            out += [f"  - {rel}: {problem}" for rel, problem in self.damaged]
        else:
            out.append(f"checksums: all {len(m.files)} files intact")
        if self.plan is not None:
            out.append("on restore (subjects by keyed hash; nobody erased comes back):")
            out += [f"  - {line}" for line in self.plan.lines(dry_run=True)]
        out += self.notes
        return out


def verify_backup(config: Config, src: str | os.PathLike[str], *, now: datetime, use_kafka: bool = True,
                  progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Checks the backup ``src``; see the module docstring. Raises BackupError only when it cannot be
    read at all (no manifest, wrong key); damaged files are reported, not raised."""
    store, manifest = open_backup(src)
    key = key_for(manifest, backup_key(config))
    scratch = Path(tempfile.mkdtemp(prefix="datamin-verify-"))
    try:
        bad = extract(store, manifest, key, scratch, progress, durable=False)
        if bad:
            return VerifyReport(manifest, bad)
        live = Layout(Path(config.warehouse.root).resolve())
        if live.root.is_dir():
            merge_live_trails(live, scratch)
        erased = _erased_topic(config, use_kafka)
        plan = reapply(Layout(scratch), config, since=manifest.created_at, now=as_utc(now), erased_topic=erased,
                       dry_run=True)
        notes = [] if use_kafka else ["(the erased-subjects topic was not consulted: --no-kafka)"]
        return VerifyReport(manifest, [], plan, notes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
