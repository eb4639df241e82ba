"""Files 0600/0640 and folders 0700/0750 with the analysts' group: checked with the mode bits and by
reading as another user (setpriv), who is in the group or not."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datamin.config import load_config
from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.catalog import build_catalog
from warehouse.layout import Layout
from warehouse.permissions import PRIVATE_FOLDERS, apply_umask
from warehouse.rights.restriction import add_restricted, restricted_path
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, tzinfo=UTC)
def _usable_group() -> str | None:
    """A group datamin's user may give files to: any group as root ("users" on Debian), else one of its own
    supplementary groups."""
    if os.geteuid() == 0:
        try:
            return grp.getgrnam("users").gr_name
        except KeyError:
            return None
    others = [g for g in os.getgroups() if g != os.getegid()]
    return grp.getgrgid(others[0]).gr_name if others else None


ANALYSTS = _usable_group()
needs_group = pytest.mark.skipif(ANALYSTS is None, reason="no group this user may give files to")


def make(tmp_path: Path, group: str | None):
    env = {"DATAMIN__WAREHOUSE__ROOT": f'"{tmp_path / "data" / "warehouse"}"',
           "DATAMIN__WAREHOUSE__CATALOG": f'"{tmp_path / "data" / "catalog.duckdb"}"',
           "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{tmp_path / "data" / "keys"}"',
           "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "data" / "spool"}"'}
    if group:
        env["DATAMIN__WAREHOUSE__ANALYST_GROUP"] = f'"{group}"'
    config = load_config(path=None, environ=env)
    previous = apply_umask(config)  # as the datamin command does
    try:
        layout = Layout(Path(config.warehouse.root))
        build_catalog(config)  # the first build prepares the warehouse
        schema = default_registry().latest("http_request", "minimised")
        rows = records_to_table(schema, [sample_record("http_request", i, AT) for i in range(5)])
        PartitionWriter(layout).write("http_request", "t.minimised.http_request", 0, 0, 4, rows)
        add_restricted(layout, ["p_restricted"])
        build_catalog(config)
    finally:
        os.umask(previous)
    return config, layout


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_without_a_group_only_datamins_user_reads_anything(tmp_path):
    config, layout = make(tmp_path, None)
    assert mode(layout.root) == 0o700
    files = list(layout.table_dir("http_request").rglob("*.parquet"))
    assert files and all(mode(f) == 0o600 for f in files)
    assert all(mode(d) == 0o700 for d in layout.table_dir("http_request").rglob("*") if d.is_dir())
    assert mode(Path(config.warehouse.catalog)) == 0o600
    assert mode(restricted_path(layout)) == 0o600


@needs_group
def test_with_a_group_it_reads_the_tables_and_the_catalog_only(tmp_path):
    gid = grp.getgrnam(ANALYSTS).gr_gid
    config, layout = make(tmp_path, ANALYSTS)
    assert mode(layout.root) == 0o2750 and layout.root.stat().st_gid == gid
    for path in layout.table_dir("http_request").rglob("*"):
        assert path.stat().st_gid == gid, path
        assert mode(path) == (0o2750 if path.is_dir() else 0o640), path
    catalog = Path(config.warehouse.catalog)
    assert mode(catalog) == 0o640 and catalog.stat().st_gid == gid
    for name in PRIVATE_FOLDERS:
        assert mode(layout.root / name) & 0o077 == 0, name


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0 or ANALYSTS is None,
                    reason="needs root, setpriv and a group")
def test_as_another_user_in_the_group_and_outside_it():
    gid = grp.getgrnam(ANALYSTS).gr_gid
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="datamin-perm-"))  # pytest's own folders are 0700
    base.chmod(0o755)
    try:
        check_as_other_users(base, gid)
    finally:
        shutil.rmtree(base)


def check_as_other_users(base: Path, gid: int) -> None:
    config, layout = make(base, ANALYSTS)
    table_file = next(layout.table_dir("http_request").rglob("*.parquet"))
    catalog = Path(config.warehouse.catalog)

    def can_read(path: Path, groups: str) -> bool:
        done = subprocess.run(["setpriv", "--reuid=65534", f"--regid={gid}", f"--groups={groups}", "cat", str(path)],
                              capture_output=True, check=False)
        return done.returncode == 0

    assert can_read(table_file, str(gid)) and can_read(catalog, str(gid))  # an analyst
    assert not can_read(restricted_path(layout), str(gid))  # restricted rows and the rights trail
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(table_file)],
                          capture_output=True, check=False)
    assert done.returncode != 0  # someone else on the machine
