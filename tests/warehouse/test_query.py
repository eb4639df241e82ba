import io
import json
from datetime import UTC, datetime

import pytest

from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.catalog import build_catalog
from warehouse.errors import QueryError
from warehouse.layout import Layout
from warehouse.query import run_query
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter


@pytest.fixture
def catalog(tmp_path):
    layout = Layout(tmp_path / "wh")
    schema = default_registry().latest("http_request", "minimised")
    at = datetime(2024, 5, 17, 12, tzinfo=UTC)
    rows = records_to_table(schema, [sample_record("http_request", i, at) for i in range(10)])
    PartitionWriter(layout, fsync=False).write("http_request", "t.minimised.http_request", 0, 0, 9, rows)
    build_catalog(layout, tmp_path / "c.duckdb")
    return tmp_path / "c.duckdb"


# the raw table, not the (suppressed) browser_share view: this tests the formats, not suppression
SQL = ("SELECT coalesce(browser_family, 'unknown') AS browser, count(*) AS requests, "
       "round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS percent FROM http_request GROUP BY 1 ORDER BY 1")


def test_table_format_is_aligned_with_a_row_count(catalog):
    out = io.StringIO()
    assert run_query(catalog, SQL, out=out) == 4
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["browser", "requests", "percent"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["Chrome", "3", "30.0"]
    assert lines[-1] == "(4 rows)"
    assert len({len(line) for line in lines[:2]}) == 1  # header as wide as the rule
    assert lines[2].index("3") + 1 == lines[0].index("requests") + len("requests")  # numbers right-aligned


def test_csv_and_json_formats(catalog):
    out = io.StringIO()
    run_query(catalog, SQL, "csv", out)
    assert out.getvalue().splitlines()[:2] == ["browser,requests,percent", "Chrome,3,30.0"]
    out = io.StringIO()
    run_query(catalog, "SELECT date, requests, NULL AS nothing FROM daily_requests", "json", out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"date": "2024-05-17", "requests": 10, "nothing": None}]


def test_empty_result_and_null_cells(catalog):
    out = io.StringIO()
    assert run_query(catalog, "SELECT NULL AS x WHERE false", out=out) == 0
    assert out.getvalue().splitlines()[-1] == "(0 rows)"
    out = io.StringIO()
    run_query(catalog, "SELECT NULL AS x", out=out)
    assert "NULL" in out.getvalue() and "(1 row)" in out.getvalue()


def test_errors_are_helpful(catalog, tmp_path):
    with pytest.raises(QueryError, match="no catalog at .*datamin sink"):
        run_query(tmp_path / "missing.duckdb", "SELECT 1")
    with pytest.raises(QueryError, match="(?s)query failed.*List the views"):
        run_query(catalog, "SELECT * FROM no_such_view")
    with pytest.raises(QueryError, match="query failed"):
        run_query(catalog, "SELEC 1")
    with pytest.raises(QueryError, match="analysts may only read"):
        run_query(catalog, "CREATE TABLE x (a INT)")
    with pytest.raises(QueryError, match="analysts may only read"):
        run_query(catalog, "DROP VIEW http_request")
    with pytest.raises(QueryError, match="format"):
        run_query(catalog, "SELECT 1", fmt="xml")
    out = io.StringIO()
    run_query(catalog, "SELECT count(*) AS n FROM http_request", "csv", out)
    assert out.getvalue() == "n\n10\n"
