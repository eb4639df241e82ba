"""`datamin report` end to end: real Parquet, a real catalog, the CLI, and the page in headless Chromium."""

import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta

import pytest

from bench.report import fill_warehouse
from datamin.cli import main
from datamin.config import load_config
from warehouse.catalog import build_catalog
from warehouse.layout import Layout
from warehouse.report.page import CHARTS
from warehouse.report.queries import read_report_data
from warehouse.suppression import OTHER

END = date(2026, 11, 20)
K = 10


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A catalog over 14 days of long-tailed synthetic traffic (so some groups fall below k)."""
    work = tmp_path_factory.mktemp("report")
    environ = {"DATAMIN__WAREHOUSE__ROOT": f'"{work / "wh"}"', "DATAMIN__WAREHOUSE__CATALOG": f'"{work / "c.duckdb"}"',
               "DATAMIN__WAREHOUSE__MIN_VISITORS": str(K), "DATAMIN_CONFIG": ""}
    fill_warehouse(Layout(work / "wh"), 8000, days=14, end=END, visitors=600)
    build_catalog(load_config(environ=environ))
    return work, environ


@pytest.fixture(scope="module")
def report(warehouse, tmp_path_factory):
    """The report written by the command line, with what it printed."""
    work, environ = warehouse
    out = work / "out" / "report.html"
    saved = dict(os.environ)
    os.environ.update(environ)
    capture = pytest.MonkeyPatch()
    try:
        import io
        import sys

        stdout, stderr = io.StringIO(), io.StringIO()
        capture.setattr(sys, "stdout", stdout)
        capture.setattr(sys, "stderr", stderr)
        code = main(["report", "--out", str(out)])
    finally:
        capture.undo()
        os.environ.clear()
        os.environ.update(saved)
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def test_the_command_writes_one_self_contained_page_and_shows_progress(report):
    out, stdout, stderr = report
    assert stdout.strip() == str(out)
    assert "report: [1/10]" in stderr and "report: chart 10/10" in stderr and "report: wrote" in stderr
    html = out.read_text()
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch
    assert html.count('<figure class="chart"') == len(CHARTS)
    assert f"{END - timedelta(days=13):%d %b %Y} – {END:%d %b %Y}" in html  # the period
    assert "<td>http_request</td>" in html and "90 days" in html and "180 days" in html  # retention windows
    assert f"fewer than {K} distinct visitors" in html and OTHER in html


def test_the_report_shows_no_group_below_k(warehouse):
    work, environ = warehouse
    config = load_config(environ=environ)
    data = read_report_data(work / "c.duckdb", date_from=None, date_to=None, now=datetime.now(UTC), top=1000)
    assert (data.date_from, data.date_to, data.min_visitors) == (END - timedelta(days=13), END, K)
    folded = set()
    for key, rows in data.sections.items():
        for r in rows:
            if OTHER in r.values():
                folded.add(key)
            elif "visitors" in r and key != "daily":
                assert r["visitors"] >= K, (key, r)
    assert {"pages", "searches"} <= folded  # the long tails were really suppressed
    assert config.warehouse.min_visitors == K


def test_a_period_narrows_the_report_and_a_reversed_one_is_refused(warehouse, capsys, monkeypatch):
    work, environ = warehouse
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    out = work / "week.html"
    assert main(["report", "--from", "2026-11-18", "--to", "2026-11-20", "--out", str(out)]) == 0
    assert "18 Nov 2026 – 20 Nov 2026" in out.read_text()
    assert main(["report", "--from", "2026-11-20", "--to", "2026-11-18", "--out", str(out)]) == 2
    assert "swap --from and --to" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--from", "yesterday"])
    assert "is not a day" in capsys.readouterr().err


def test_without_a_catalog_the_error_says_what_to_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATAMIN__WAREHOUSE__CATALOG", f'"{tmp_path / "none.duckdb"}"')
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 2
    assert "run `datamin sink` or `datamin demo` first" in capsys.readouterr().err


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no chromium on PATH: install Debian's package (apt-get install -y chromium); "
                    "`bash quickstart.sh test` does so under CI=true")
    return path


def test_every_chart_draws_in_headless_chromium_offline(report, tmp_path):
    from playwright.sync_api import sync_playwright

    out, _, _ = report
    errors, fetched = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("request", lambda req: fetched.append(req.url))
            page.goto(out.as_uri(), wait_until="load")
            charts = page.evaluate("""() => [...document.querySelectorAll('figure.chart')].map(f => {
                const svg = f.querySelector('svg');
                if (!svg) return {name: f.dataset.chart, width: 0, height: 0, marks: 0};
                const box = svg.getBoundingClientRect();
                const marks = [...svg.querySelectorAll('.role-mark path, .role-mark rect, .role-mark line, '
                                                     + '.role-mark text')]
                    .filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
                return {name: f.dataset.chart, width: box.width, height: box.height, marks: marks.length};
            })""")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert fetched == [out.as_uri()]  # the page itself and nothing else
    assert [c["name"] for c in charts] == [name for _, _, name, _, _ in CHARTS]
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 30 and chart["marks"] > 0, chart
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
