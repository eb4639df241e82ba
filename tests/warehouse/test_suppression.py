"""Small-cell suppression on real Parquet partitions and a real DuckDB catalog."""

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from datamin.config import load_config
from datamin.exceptions import ConfigError
from schemas import default_registry
from schemas.policy import policy_document
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import CatalogBuilder
from warehouse.layout import Layout
from warehouse.samples import sample_record
from warehouse.suppression import GROUPINGS, OTHER, suppressed_select
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


class Warehouse:
    """Writes records into real partitions and builds the catalog with a given k."""

    def __init__(self, tmp_path):
        self.layout = Layout(tmp_path / "wh")
        self.catalog = tmp_path / "c.duckdb"
        self.n = 0

    def add(self, event, overrides, at=AT):
        """One row per dict in ``overrides``, each a sample record with those fields replaced."""
        records = []
        for o in overrides:
            records.append({**sample_record(event, self.n, at), **o})
            self.n += 1
        schema = default_registry().latest(event, "minimised")
        first = self.n - len(records)
        PartitionWriter(self.layout, fsync=False).write(
            event, f"t.minimised.{event}", 0, first, self.n - 1, records_to_table(schema, records),
            time_column=time_column(event))

    def query(self, sql, k, params=None):
        CatalogBuilder(self.layout, self.catalog, min_visitors=k).build()
        con = duckdb.connect(str(self.catalog), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


@pytest.fixture
def wh(tmp_path):
    return Warehouse(tmp_path)


def visits(url, visitors, per_visitor=1, prefix=None):
    """Rows of ``visitors`` distinct subjects, ``per_visitor`` requests each, all to ``url``."""
    prefix = prefix or url
    return [{"url": url, "status": 200, "subject": f"ps1:{prefix}:{v}"}
            for v in range(visitors) for _ in range(per_visitor)]


@pytest.mark.parametrize("k", [2, 10])
def test_a_group_of_k_visitors_shows_and_one_of_k_minus_1_folds_into_other(wh, k):
    wh.add("http_request", visits("/k", k, per_visitor=2) + visits("/below", k - 1, per_visitor=3)
           + visits("/also-below", k - 1))
    rows = wh.query("SELECT url, requests, visitors FROM top_pages", k)
    assert rows[0] == ("/k", 2 * k, k)
    other = [r for r in rows if r[0] == OTHER]
    assert other == [(OTHER, 4 * (k - 1), 2 * (k - 1))]  # both small pages, one row, distinct visitors
    assert "/below" not in [r[0] for r in rows] and "/also-below" not in [r[0] for r in rows]
    assert sum(r[1] for r in rows) == 2 * k + 4 * (k - 1)  # the total still adds up
    assert rows[-1][0] == OTHER


def test_many_requests_of_one_visitor_do_not_make_a_group(wh):
    wh.add("http_request", visits("/mine", 1, per_visitor=50) + visits("/popular", 3))
    rows = wh.query("SELECT url, requests, visitors FROM top_pages", 3)
    assert rows == [("/popular", 3, 3), (OTHER, 50, 1)]


def test_without_a_subject_visitors_are_told_apart_by_network_and_user_agent_class(wh):
    def anonymous(country, networks, repeat):
        return [{"subject": None, "country": country, "client_network": f"10.{n}.0.0/16",
                 "browser_family": "Firefox", "os_family": "Linux", "device_class": "desktop"}
                for n in range(networks) for _ in range(repeat)]

    # FI: 3 networks -> 3 visitors (shown at k=3); IS: 40 rows but 2 networks -> 2 visitors (hidden)
    wh.add("http_request", anonymous("FI", 3, 1) + anonymous("IS", 2, 20))
    rows = dict((c, (n, v)) for c, n, v in wh.query("SELECT country, requests, visitors FROM countries", 3))
    assert rows == {"FI": (3, 3), OTHER: (40, 2)}


def test_search_terms_without_any_pseudonym_count_as_one_visitor(wh):
    rows = [{"kind": "search", "search_terms": "rare thing", "subject": None, "session_id": None}] * 30
    rows += [{"kind": "search", "search_terms": "Pricing ", "subject": f"ps1:{i}"} for i in range(4)]
    wh.add("usage_event", rows)
    assert wh.query("SELECT term, searches, visitors FROM search_terms", 4) == [("pricing", 4, 4), (OTHER, 30, 1)]


def test_every_suppressed_view_adds_up_to_its_table(wh):
    for event in ("http_request", "usage_event", "device_report"):
        wh.add(event, [{} for _ in range(400)])
    for k in (2, 10, 50):
        for g in GROUPINGS:
            total, agg = g.totals[0]
            raw = wh.query(f"SELECT {agg} FROM {g.table} WHERE {g.where}", k)[0][0]
            assert wh.query(f"SELECT sum({total}) FROM {g.name}", k) == [(raw,)], (g.name, k)
            assert wh.query(f"SELECT count(*) FROM {g.name} WHERE visitors < ? AND {g.dims[0][0]} <> ?",
                            k, [k, OTHER]) == [(0,)], (g.name, k)
    assert wh.query("SELECT round(sum(percent)) FROM browser_share", 50) == [(100,)]


def test_a_period_suppresses_within_the_period(wh):
    # 3 visitors on each of two days: /spread has 6 visitors in both days together, 3 on either day
    wh.add("http_request", visits("/spread", 3, prefix="a"), at=AT)
    wh.add("http_request", visits("/spread", 3, prefix="b"), at=AT + timedelta(days=1))
    day = date(2024, 5, 17)
    assert wh.query("SELECT url, visitors FROM top_pages_between(?, ?)", 5, [day, day]) == [(OTHER, 3)]
    both = wh.query("SELECT url, visitors FROM top_pages_between(?, ?)", 5, [day, day + timedelta(days=1)])
    assert both == [("/spread", 6)]
    assert wh.query("SELECT url, visitors FROM top_pages", 5) == [("/spread", 6)]


def test_k_below_two_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="warehouse.min_visitors"):
        load_config(environ={"DATAMIN__WAREHOUSE__MIN_VISITORS": "1", "DATAMIN_CONFIG": ""})
    with pytest.raises(ConfigError, match="at least 2"):
        suppressed_select(GROUPINGS[0], 1)
    config = load_config(environ={"DATAMIN__WAREHOUSE__MIN_VISITORS": "25", "DATAMIN_CONFIG": ""})
    assert config.warehouse.min_visitors == 25
    assert load_config(environ={"DATAMIN_CONFIG": ""}).warehouse.min_visitors == 10


def test_the_policy_states_k():
    config = load_config(environ={"DATAMIN__WAREHOUSE__MIN_VISITORS": "12", "DATAMIN_CONFIG": ""})
    doc = policy_document(default_registry(), config)
    assert doc["small_groups"]["min_visitors"] == 12
    assert "at least 12 distinct visitors" in doc["small_groups"]["effect"]
