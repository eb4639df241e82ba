"""Erasure reaches the quarantine: readable files lose the person's rows, unreadable ones are dropped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.layout import Layout
from warehouse.rights.quarantine import erase_quarantine, quarantined_files, withdraw_quarantine


def test_quarantined_rows_of_the_subject_are_erased(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    folder = layout.quarantine_dir / "http_request" / "event_date=2026-11-25"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"subject": ["p1_ola", "p1_kari", None], "url": ["/a", "/b", "/c"]}),
                   folder / "a.parquet.1234")
    pq.write_table(pa.table({"foreign_id": ["p1_ola"], "n": [1]}), folder / "b.parquet.5678")  # all the person's
    pq.write_table(pa.table({"subject": ["p1_kari"]}), folder / "c.parquet.9abc")  # not the person's
    (folder / "d.parquet.def0").write_bytes(b"PAR1 torn")
    result = erase_quarantine(layout, ["p1_ola", "p1_old"])
    assert (result.files_checked, result.files_rewritten, result.files_deleted) == (4, 1, 2)
    assert result.rows_removed == 2 and result.unreadable_deleted == 1
    left = {p.name: pq.read_table(p).to_pydict() for p in quarantined_files(layout)}
    assert left == {"a.parquet.1234": {"subject": ["p1_kari", None], "url": ["/b", "/c"]},
                    "c.parquet.9abc": {"subject": ["p1_kari"]}}
    assert erase_quarantine(Layout(tmp_path / "none"), ["p1_ola"]).files_checked == 0


def test_withdrawal_blanks_the_consent_only_identifiers_in_quarantined_files(tmp_path: Path) -> None:
    """Rows kept, the subject's consent-only columns set to null; other people, other columns and tables
    without consent-only columns untouched; an unreadable file of such a table deleted."""
    layout = Layout(tmp_path)
    folder = layout.quarantine_dir / "http_request" / "event_date=2026-11-25"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"subject": ["p1_ola", "p1_kari"], "user_id": ["u1_ola", "u1_kari"],
                             "url": ["/a", "/b"]}), folder / "a.parquet.1")
    (folder / "t.parquet.2").write_bytes(b"PAR1 torn")
    consent = layout.quarantine_dir / "consent_record" / "event_date=2026-11-25"
    consent.mkdir(parents=True)
    pq.write_table(pa.table({"subject": ["p1_ola"]}), consent / "c.parquet.3")  # legal obligation: kept
    result = withdraw_quarantine(layout, ["p1_ola", "u1_ola"], {"http_request": ("subject", "user_id"),
                                                               "consent_record": ()})
    assert (result.rows_blanked, result.files_rewritten, result.unreadable_deleted) == (1, 1, 1)
    assert pq.read_table(folder / "a.parquet.1").to_pydict() == {
        "subject": [None, "p1_kari"], "user_id": [None, "u1_kari"], "url": ["/a", "/b"]}
    assert not (folder / "t.parquet.2").exists()
    assert pq.read_table(consent / "c.parquet.3").to_pydict() == {"subject": ["p1_ola"]}
    again = withdraw_quarantine(layout, ["p1_ola", "u1_ola"], {"http_request": ("subject", "user_id")})
    assert again.rows_blanked == 0 and again.files_rewritten == 0  # idempotent
