"""`datamin demo` on the real broker: the pipeline end to end, ending with the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datamin.cli.demo import run_demo
from datamin.config import Config


def test_the_demo_ends_by_writing_the_report_and_printing_its_path(kafka_config: Config,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_config.kafka.bootstrap_servers)
    said: list[str] = []
    assert run_demo(kafka_config, events=400, say=said.append) == 0
    found = re.match(r"\nReport: (\S+) \(\d+ KiB", said[-1])
    assert found, said[-1]
    page = Path(found.group(1))
    assert page == (Path(kafka_config.warehouse.catalog).parent / "report.html").resolve()
    html = page.read_text()
    assert html.count('<figure class="chart"') >= 8 and "<script" not in html
