"""The analyst boundary: `datamin query` reads the tables and nothing else, writes nothing."""

import io
from datetime import UTC, datetime

import pytest

from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.boundary import open_analyst_connection
from warehouse.catalog import build_catalog
from warehouse.errors import QueryError
from warehouse.layout import Layout
from warehouse.query import run_query
from warehouse.rights.restriction import add_restricted, read_restricted, restricted_path
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, tzinfo=UTC)


@pytest.fixture
def world(tmp_path):
    layout = Layout(tmp_path / "wh")
    schema = default_registry().latest("http_request", "minimised")
    rows = records_to_table(schema, [sample_record("http_request", i, AT) for i in range(10)])
    written = PartitionWriter(layout, fsync=False).write("http_request", "t.minimised.http_request", 0, 0, 9, rows)
    secret = tmp_path / "keys" / "rights.secret"
    secret.parent.mkdir()
    secret.write_bytes(b"TOP-SECRET-KEY-BYTES")
    build_catalog(layout, tmp_path / "c.duckdb")
    return layout, tmp_path / "c.duckdb", secret, written


def rows_of(catalog, sql):
    out = io.StringIO()
    run_query(catalog, sql, "csv", out)
    return out.getvalue().splitlines()[1:]


def test_views_still_read_the_parquet_files(world):
    _, catalog, _, _ = world
    assert rows_of(catalog, "SELECT count(*) FROM http_request") == ["10"]
    assert rows_of(catalog, "SELECT sum(requests) FROM daily_requests") == ["10"]
    assert rows_of(catalog, "SELECT count(*) FROM audit_log") == ["0"]
    assert rows_of(catalog, "DESCRIBE http_request")  # describe, show, summarize are reading statements
    assert rows_of(catalog, "EXPLAIN ANALYZE SELECT count(*) FROM http_request")


@pytest.mark.parametrize("sql", [
    "SELECT content FROM read_blob({secret})",
    "SELECT * FROM read_text({secret})",
    "SELECT * FROM read_csv({secret})",
    "SELECT * FROM read_blob({traversal})",
    "SELECT * FROM glob({keys_dir})",
])
def test_files_outside_the_tables_cannot_be_read(world, sql):
    layout, catalog, secret, _ = world
    traversal = layout.table_dir("http_request") / ".." / ".." / "keys" / "rights.secret"
    sql = sql.format(secret=f"'{secret}'", traversal=f"'{traversal}'", keys_dir=f"'{secret.parent}/*'")
    with pytest.raises(QueryError, match="analyst boundary") as info:
        run_query(catalog, sql, out=io.StringIO())
    assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS subject WHERE false) TO {restricted} (FORMAT parquet)",
    "COPY (SELECT * FROM http_request) TO {inside}",
    "EXPORT DATABASE {export}",
    "CREATE TEMP TABLE t AS SELECT 1",
    "SELECT 1; COPY (SELECT 1) TO {inside}",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH {attach}",
    "CALL pragma_version()",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO {inside}",
    "explain analyse copy (select 1) to {inside}",
])
def test_nothing_can_be_written_or_unlocked(world, sql):
    layout, catalog, _, written = world
    add_restricted(layout, ["p_restricted"])
    partition = written[0].parent
    inside = partition / "evil.csv"
    sql = sql.format(restricted=f"'{restricted_path(layout)}'", inside=f"'{inside}'",
                     export=f"'{layout.table_dir('http_request') / 'exp'}'", attach=f"'{layout.root / 'x.duckdb'}'")
    before = sorted(p.relative_to(layout.root) for p in layout.root.rglob("*"))
    with pytest.raises(QueryError, match="analysts may only read"):
        run_query(catalog, sql, out=io.StringIO())
    assert read_restricted(layout) == {"p_restricted"}
    assert sorted(p.relative_to(layout.root) for p in layout.root.rglob("*")) == before


def test_the_configuration_is_locked(world):
    _, catalog, secret, _ = world
    con = open_analyst_connection(catalog)
    try:
        for statement in ("SET enable_external_access = true", "SET lock_configuration = false",
                          "SET allowed_directories = ['/']", "SET autoload_known_extensions = true"):
            with pytest.raises(Exception, match="locked"):
                con.execute(statement)
        with pytest.raises(Exception, match="disabled by configuration"):
            con.execute(f"SELECT * FROM read_blob('{secret}')")
    finally:
        con.close()


def test_a_catalog_without_read_paths_is_refused_with_the_fix(world, tmp_path):
    import duckdb
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()
    with pytest.raises(QueryError, match="rebuild it"):
        run_query(old, "SELECT 1", out=io.StringIO())
