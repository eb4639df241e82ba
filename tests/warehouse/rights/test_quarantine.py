"""Erasure reaches the quarantine: readable files lose the person's rows, unreadable ones are dropped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.layout import Layout
from warehouse.rights.quarantine import erase_quarantine, quarantined_files


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
