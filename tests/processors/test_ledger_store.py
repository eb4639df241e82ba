"""SubjectStore's spill file: what is deleted from it does not stay on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processors.ledger_store import SubjectStore


def _open_files() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the unlinked file through /proc")
def test_forgotten_subjects_leave_no_key_in_the_spill_file() -> None:
    before = _open_files()
    store = SubjectStore(capacity=1000)
    keys = [f"user:person-{i:06d}-" + "x" * 20 for i in range(40_000)]  # past SQLite's page cache
    for i, key in enumerate(keys):
        store.put(key, i << 5)
    [spill] = [fd for fd, target in _open_files().items() if fd not in before and "etilqs_" in target]
    forgotten, kept = keys[1::20], keys[::20]
    for key in forgotten:
        store.put(key, None)
    for i in range(40_000):  # more traffic: SQLite's page cache writes the pages changed by the deletes
        store.put(f"user:later-{i:06d}", i << 5)
    data = Path(f"/proc/self/fd/{spill}").read_bytes()
    try:
        assert sum(key.encode() in data for key in kept) == len(kept)  # the file is the one holding them
        assert not [key for key in forgotten if key.encode() in data]
    finally:
        store.close()
