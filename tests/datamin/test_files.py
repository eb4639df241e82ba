"""replace_file: a file is replaced whole or not at all, and leaves no temporary file behind."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from datamin.files import replace_file


def test_the_new_content_replaces_the_old(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    replace_file(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("fsync", [True, False])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path, fsync: bool) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def half_then_fail(f: BinaryIO) -> None:
        f.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_file(target, half_then_fail, fsync=fsync)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
