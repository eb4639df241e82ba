"""The page from report data, without a warehouse: escaping, empty sections, the (other) note."""

from datetime import UTC, date, datetime

from warehouse.report.page import CHARTS, render_page
from warehouse.report.queries import ReportData


def data(**sections):
    d = ReportData(date(2026, 11, 1), date(2026, 11, 2), 10,
                   [{"table_name": "http_request", "rows": 5, "first_day": date(2026, 11, 1),
                     "last_day": date(2026, 11, 2), "newest": datetime(2026, 11, 2, 9, 30, tzinfo=UTC)}])
    d.sections = {key: [] for key, *_ in CHARTS}
    d.sections.update(sections)
    return d


def test_text_from_the_data_cannot_become_markup():
    page = render_page(data(searches=[{"term": "<script>alert(1)</script>", "searches": 12, "visitors": 11}]),
                       {"http_request": 90}, datetime(2026, 11, 3, tzinfo=UTC))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_empty_sections_say_so_and_draw_nothing():
    page = render_page(data(), {"http_request": 90}, datetime(2026, 11, 3, tzinfo=UTC))
    assert page.count("No data in this period.") == len(CHARTS) and "<svg" not in page
    assert "2026-11-02 09:30" in page and "90 days" in page


def test_the_other_row_is_explained_where_it_appears():
    rows = [{"country": "NO", "requests": 40, "visitors": 12}, {"country": "(other)", "requests": 7, "visitors": 5}]
    page = render_page(data(countries=rows), {}, datetime(2026, 11, 3, tzinfo=UTC))
    assert page.count("groups of fewer than 10 visitors, folded together") == 1
