"""The README's analyst examples, run as written against a real warehouse: the `datamin query` lines,
the stock DuckDB CLI from PyPI (duckdb-cli) and the Python snippets."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datamin.topics import MINIMISED_EVENTS
from schemas import default_registry
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import build_catalog
from warehouse.layout import Layout
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent


def duckdb_cli() -> str:
    """The `duckdb` command of the duckdb-cli package (the test extra installs it beside Python)."""
    found = shutil.which("duckdb", path=str(BIN)) or shutil.which("duckdb")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the duckdb CLI is missing: pip install -e '.[test]' installs duckdb-cli")
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    return found


def querying_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Querying"):text.index("\n## ", text.index("## Querying") + 3)]


def blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """tmp_path laid out like the defaults: data/warehouse with rows in every table, data/catalog.duckdb."""
    layout = Layout(tmp_path / "data" / "warehouse")
    at = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
    for event in MINIMISED_EVENTS:
        schema = default_registry().latest(event, "minimised")
        rows = records_to_table(schema, [sample_record(event, i, at) for i in range(40)])
        PartitionWriter(layout, fsync=False).write(event, f"t.minimised.{event}", 0, 0, 39, rows,
                                                   time_column=time_column(event))
    build_catalog(layout, tmp_path / "data" / "catalog.duckdb")
    return tmp_path


def run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line.split("  #")[0])
    program = {"datamin": str(BIN / "datamin"), "python": sys.executable, "duckdb": duckdb_cli()}[argv[0]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAMIN")}
    return subprocess.run([program, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def argv0_sub(line: str) -> tuple[str, str]:
    argv = shlex.split(line.split("  #")[0])
    return argv[0], argv[1] if len(argv) > 1 else ""


def test_every_shell_example_of_querying_runs_and_prints_rows(warehouse: Path) -> None:
    lines = [line for block in blocks(querying_section(), "sh") for line in block.splitlines() if line.strip()]
    assert {shlex.split(line)[0] for line in lines} == {"datamin", "duckdb", "python"}
    for line in lines:
        result = run(line, warehouse)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        assert "Error" not in result.stderr, f"{line}\n{result.stderr}"
        if argv0_sub(line) == ("datamin", "report"):  # writes a page and prints its path
            page = warehouse / result.stdout.strip()
            # the fixture's rows are from 2024: a page for another period has no charts, but is a page
            expected = "<html" if "--from" in line else "<svg"
            assert expected in page.read_text(encoding="utf-8"), f"{line} wrote no {expected} to {page}"
            continue
        assert len(result.stdout.strip().splitlines()) >= 2, f"{line} printed no rows:\n{result.stdout}"


def test_the_duckdb_cli_from_pypi_opens_the_catalog_and_reads_every_view(warehouse: Path) -> None:
    names = ["http_request", "daily_requests", "top_pages", "http_error_rate", "error_rate", "countries",
             "duplicate_events", "audit_log"]
    sql = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM {n}" for n in names)
    result = subprocess.run([duckdb_cli(), "-readonly", "-csv", "-noheader", "data/catalog.duckdb", sql],
                            cwd=warehouse, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    counts = dict(line.split(",") for line in result.stdout.split())
    assert counts["http_request"] == "40" and int(counts["daily_requests"]) == 1
    assert set(counts) == set(names)


def test_the_python_examples_of_querying_run(warehouse: Path) -> None:
    for code in blocks(querying_section(), "python"):
        result = subprocess.run([sys.executable, "-c", code], cwd=warehouse, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"{code}\n{result.stderr}"


def test_the_readme_names_only_views_the_catalog_has(warehouse: Path) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse / "data" / "catalog.duckdb"), read_only=True)
    try:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    finally:
        con.close()
    section = querying_section()
    paragraph = section[section.index("Tables:"):].split("\n\n", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", paragraph))
    assert listed and listed <= views, listed - views
