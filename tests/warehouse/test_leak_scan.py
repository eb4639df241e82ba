"""The leak scan: a clean warehouse is clean, each planted leak is found where it is, and no report,
trail entry or message ever repeats the leaked value."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from datamin.topics import provision
from processors.transforms import pseudonymise, scrub_text, strip_url, truncate_ip
from schemas import default_registry, encode
from warehouse.arrow import records_to_table
from warehouse.audit_trail import AuditLog
from warehouse.layout import Layout
from warehouse.leak_detectors import Detectors, Finding
from warehouse.leak_scan import LeakReport, record_report, run_leak_scan, scan_topics, scan_warehouse

NOW = datetime(2025, 4, 1, 4, 15, tzinfo=UTC)
DAY = date(2025, 3, 30)
KEY = bytes(range(32))
REGISTRY = default_registry()


def pseudo(value: str, column: str) -> str:
    result = pseudonymise(value, KEY, column)
    assert result is not None
    return result


def clean_row(table: str, i: int, day: date = DAY, *, v4: int = 16, v6: int = 32) -> dict[str, Any]:
    """A realistic minimised row, made by the real transforms from realistic raw values."""
    at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC) + timedelta(seconds=i)
    base: dict[str, Any] = {"event_id": str(uuid.UUID(int=i + 1, version=4)), "time": at,
                            "subject": pseudo(f"user-{i}", "subject")}
    if table == "http_request":
        ip = f"203.0.113.{i % 250 + 1}" if i % 2 else f"2001:db8:abcd:{i:x}::{i + 1:x}"
        return base | {
            "client_network": truncate_ip(ip, v4, v6), "method": "GET", "host": "shop.example.com",
            "url": strip_url(f"https://shop.example.com/p/{i}?utm_source=news&utm_medium=email&email=x{i}@y.no"),
            "status": 200, "bytes_sent": 5120, "duration_ms": 12.5, "referrer_origin": "https://www.google.com",
            "browser_family": "Firefox", "browser_major": "126", "os_family": "Linux", "os_major": None,
            "device_class": "desktop", "language": "nb", "do_not_track": False, "global_privacy_control": True,
            "country": "NO", "session_id": pseudo(f"sess-{i}", "session_id"), "user_id": pseudo(f"u{i}", "user_id"),
            "client_id": pseudo(f"cookie-{i}", "client_id"), "tls_version": "TLSv1.3",
        }
    if table == "usage_event":
        return base | {"session_id": pseudo(f"sess-{i}", "session_id"), "kind": "search", "page": "/search",
                       "file": "/docs/price-list-2025.pdf",
                       "search_terms": scrub_text(f"order 4711 for kari{i}@example.no tel +47 912 34 {i:03d} "
                                                  "since 2024-01-15 12:30:45"),
                       "action": "submit", "app_version": "5.2.1", "duration_ms": 800}
    if table == "device_report":
        return base | {
            "advertising_id": pseudo("38400000-8cf0-11bd-b23e-10b96e40000d", "advertising_id"),
            "app_instance_id": pseudo(f"inst-{i}", "app_instance_id"), "hardware_model": "Pixel 8",
            "os_name": "Android", "os_major": "14", "browser_family": None, "browser_major": None,
            "app_version": "5.2.1", "screen": "1080x2400", "network_operator": "Telenor", "language": "nb",
            "country": "NO", "event_kind": "crash",
            "message": scrub_text(f"sync failed for ola{i}@example.no from 10.0.{i % 200}.7 (std::vector::at)"),
            "crash_dump": scrub_text("Exception in /home/ola/app.py line 12 at 2024-01-15T12:30:45Z\n"
                                     "card 4111 1111 1111 1111; token=abcd1234efgh5678; Foo::Bar::baz()"),
        }
    raise AssertionError(table)


def write(layout: Layout, table: str, rows: list[dict[str, Any]], day: date = DAY, first: int = 0) -> str:
    schema = REGISTRY.latest(table, "minimised")
    folder = layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    name = layout.data_file_name(f"dm.minimised.{table}", 0, first, first + len(rows) - 1)
    pq.write_table(records_to_table(schema, rows), folder / name)
    return name


def clean_warehouse(layout: Layout, *, v4: int = 16, v6: int = 32) -> int:
    rows = 0
    for table in ("http_request", "usage_event", "device_report"):
        for d in range(3):
            day = DAY - timedelta(days=d)
            write(layout, table, [clean_row(table, i, day, v4=v4, v6=v6) for i in range(40)], day, first=d * 40)
            rows += 40
    return rows


def assert_never_shown(report: LeakReport, value: str, layout: Layout | None = None) -> None:
    texts = [report.format(), repr(report)]
    if layout is not None:
        texts += [repr(e) for e in AuditLog(layout).read()]
    for text in texts:
        assert value not in text


def test_clean_warehouse_is_clean(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    rows = clean_warehouse(layout)
    report = scan_warehouse(layout, now=NOW)
    assert report.findings == ()
    assert report.clean
    assert (report.files_scanned, report.rows_scanned) == (9, rows)
    assert "clean" in report.format()


@pytest.mark.parametrize(("table", "column", "value", "kind"), [
    ("http_request", "client_network", "203.0.113.77", "ipv4_address"),
    ("http_request", "client_network", "2001:db8:abcd:12::1", "ipv6_address"),
    ("http_request", "client_network", "::ffff:203.0.113.77", "ipv6_address"),
    ("http_request", "client_network", "unknown-host.example.net", "not_a_network"),
    ("http_request", "url", "https://shop.example.com/u/alice.smith@example.org/orders", "email"),
    ("http_request", "url", "https://shop.example.com/u/alice%40example.org", "email"),
    ("http_request", "url", "http://[2001:db8:1:2::77]/admin", "ipv6_address"),
    ("http_request", "referrer_origin", "http://198.51.100.23:8080", "ipv4_address"),
    ("http_request", "user_id", "user-12345", "clear_identifier"),
    ("http_request", "client_id", "p1_" + "ab" * 31, "clear_identifier"),  # 62 hex digits: not a pseudonym
    ("usage_event", "search_terms", "ring meg på +47 912 34 567", "phone_number"),
    ("usage_event", "search_terms", "ring 91234567 i kveld", "phone_number"),
    ("usage_event", "page", "/profile/3f2a9c1e-5b8a-4c2e-9f41-3d7a2b9e8c10", "uuid"),
    ("usage_event", "session_id", "0123456789abcdef", "clear_identifier"),
    ("device_report", "crash_dump", "payment failed for 4111 1111 1111 1111 (declined)", "card_number"),
    ("device_report", "crash_dump", "pan=5555555555554444", "card_number"),
    ("device_report", "message", "wifi 00:1a:2b:3c:4d:5e dropped", "mac_address"),
    ("device_report", "message", "bt 00-1A-2B-3C-4D-5E paired", "mac_address"),
    ("device_report", "advertising_id", "38400000-8cf0-11bd-b23e-10b96e40000d", "clear_identifier"),
])
def test_each_planted_leak_is_found_where_it_is(tmp_path: Path, table: str, column: str, value: str,
                                                kind: str) -> None:
    layout = Layout(tmp_path)
    clean_warehouse(layout)
    day = DAY - timedelta(days=1)
    rows = [clean_row(table, i, day) for i in range(100, 105)]
    rows[2][column] = value
    name = write(layout, table, rows, day, first=1000)
    report = scan_warehouse(layout, now=NOW)
    assert report.findings == (Finding(table, day.isoformat(), column, name, kind, 1),)
    assert not report.clean
    assert_never_shown(report, value)


def test_counts_are_rows_per_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    rows = [clean_row("device_report", i) for i in range(10)]
    for i in (1, 4, 7):
        rows[i]["message"] = f"from 192.0.2.{i + 10} and 192.0.2.{i + 50} and ola@example.no"
    name = write(layout, "device_report", rows)
    found = {(f.column, f.kind): (f.count, f.file) for f in scan_warehouse(layout, now=NOW).findings}
    assert found == {("message", "ipv4_address"): (3, name), ("message", "email"): (3, name)}


def test_prefixes_decide_what_is_a_network(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    write(layout, "http_request", [clean_row("http_request", i, v4=24, v6=48) for i in range(20)])
    assert scan_warehouse(layout, now=NOW, ipv4_prefix=24, ipv6_prefix=48).clean
    stricter = scan_warehouse(layout, now=NOW)  # /16 and /32: the /24 and /48 networks have host bits
    assert {(f.column, f.kind, f.count) for f in stricter.findings} == {
        ("client_network", "ipv4_address", 10), ("client_network", "ipv6_address", 10)}
    with pytest.raises(ValueError, match="ipv4_prefix"):
        scan_warehouse(layout, now=NOW, ipv4_prefix=32)


def test_deployment_id_formats(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    rows = [clean_row("usage_event", i) for i in range(4)]
    rows[3]["page"] = "/kunde/K-0012345/ordre"
    name = write(layout, "usage_event", rows)
    assert scan_warehouse(layout, now=NOW).clean
    report = scan_warehouse(layout, now=NOW, id_patterns=[r"K-[0-9]{7}"])
    assert report.findings == (Finding("usage_event", DAY.isoformat(), "page", name, "deployment_id", 1),)
    with pytest.raises(ValueError, match="id pattern #1"):
        scan_warehouse(layout, now=NOW, id_patterns=[r"(?<=K)-1"])
    with pytest.raises(ValueError, match="empty string"):
        scan_warehouse(layout, now=NOW, id_patterns=[r"x*"])


def test_unreadable_file_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    rows = [clean_row("http_request", i) for i in range(5)]
    rows[0]["user_id"] = "user-1"
    write(layout, "http_request", rows)
    (layout.partition_dir("http_request", DAY) / "broken~p0~o9-9.parquet").write_bytes(b"not parquet")
    report = scan_warehouse(layout, now=NOW)
    assert [f.kind for f in report.findings] == ["clear_identifier"]
    assert report.unreadable == (f"http_request/event_date={DAY.isoformat()}/broken~p0~o9-9.parquet",)
    assert (report.files_scanned, report.rows_scanned) == (1, 5)
    assert "unreadable" in report.format()


def test_old_and_new_schema_versions_side_by_side(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    v1 = REGISTRY.get("http_request", "minimised", 1)
    old = clean_row("http_request", 1)
    del old["tls_version"]
    old["host"] = "198.51.100.23"
    folder = layout.partition_dir("http_request", DAY)
    folder.mkdir(parents=True)
    pq.write_table(records_to_table(v1, [old]), folder / "old~p0~o0-0.parquet")
    write(layout, "http_request", [clean_row("http_request", 2)], first=1)
    report = scan_warehouse(layout, now=NOW, tables=["http_request", "no_such_table"])
    assert [(f.file, f.column, f.kind) for f in report.findings] == [("old~p0~o0-0.parquet", "host", "ipv4_address")]
    assert report.files_scanned == 2


VALUES = [
    "203.0.113.77", "203.0.0.0", "2001:db8::", "fe80::1%eth0", "::1", "127.0.0.1", "0.0.0.0", "v1.2.3.4.5",
    "10.0.0.300", "Chrome/120.0.6099.109", "Foo::Bar::baz()", "ip:2001:db8::7", "at 12:30:45.123",
    "2024-01-15 12:30:45", "ola@example.no", "[email] [ip] [phone] [card] [token]", "+47 912 34 567",
    "(555) 123-4567", "order 12345678", "4111111111111111", "4111111111111112", "00:1a:2b:3c:4d:5e",
    "001a.2b3c.4d5e", "3f2a9c1e-5b8a-4c2e-9f41-3d7a2b9e8c10", "p1_" + "0" * 64, "", "plain words",
]


@pytest.mark.parametrize("column", ["search_terms", "page", "session_id", "event_id"])
def test_sql_and_python_agree(tmp_path: Path, column: str) -> None:
    """The warehouse scan (DuckDB) and the topic scan (Python) find the same kinds in the same values."""
    detectors = Detectors()
    for i, value in enumerate(VALUES):
        layout = Layout(tmp_path / str(i))
        row = clean_row("usage_event", i)
        row[column] = value
        write(layout, "usage_event", [row])
        in_sql = {f.kind for f in scan_warehouse(layout, now=NOW, detectors=detectors).findings}
        assert in_sql == detectors.scan(column, value), value


def test_free_text_near_misses_are_not_findings() -> None:
    detectors = Detectors()
    for text in ("since 2024-01-15 12:30:45", "std::vector::at", "Foo::Bar()", "version 5.2.1 of 2024-01-15",
                 "build 1.0.0.0", "price 1 299,00", "[phone] and [card]", "at 10:00:00 on ::", "/api/v2/items",
                 "4111 1111 1111 1112"):
        assert detectors.scan("crash_dump", text) == set(), text
    assert detectors.scan("event_id", str(uuid.uuid4())) == set()
    assert detectors.scan("url", "https://shop.example.com/p/12345678?utm_source=x") == set()
    assert detectors.scan("url", "https://shop.example.com/?utm_term=+4791234567") == {"phone_number"}


def test_run_leak_audit_records_the_run(make_config) -> None:  # type: ignore[no-untyped-def]
    config = make_config(**{"MINIMISE__IPV4_PREFIX": "24", "MINIMISE__IPV6_PREFIX": "48"})
    layout = Layout(Path(config.warehouse.root))
    write(layout, "http_request", [clean_row("http_request", i, v4=24, v6=48) for i in range(6)])
    report = run_leak_scan(config, now=NOW)
    assert report.clean
    [entry] = AuditLog(layout).read("leak_audit")
    assert (entry.action, entry.rows, entry.at) == ("clean", 6, NOW)
    assert record_report(AuditLog(layout), report) is not None
    assert len(AuditLog(layout).read("leak_audit")) == 1  # the same run recorded once

    leak = "ola.nordmann@example.no"
    rows = [clean_row("http_request", i, v4=24, v6=48) for i in range(6, 9)]
    rows[1]["url"] = f"https://shop.example.com/u/{leak}"
    rows[2]["user_id"] = "user-77"
    name = write(layout, "http_request", rows, first=6)
    later = NOW + timedelta(days=1)
    report = run_leak_scan(config, now=later)
    entries = [e for e in AuditLog(layout).read("leak_audit") if e.at == later]
    assert sorted((e.action, e.table_name, e.partition, e.rows, e.detail) for e in entries) == [
        ("leak_found", "http_request", DAY.isoformat(), 1, f"clear_identifier in column user_id of {name}"),
        ("leak_found", "http_request", DAY.isoformat(), 1, f"email in column url of {name}"),
    ]
    assert_never_shown(report, leak, layout)
    assert_never_shown(report, "user-77", layout)


def test_audit_topics_finds_the_leaky_event(kafka_config) -> None:  # type: ignore[no-untyped-def]
    provision(kafka_config)
    topic = f"{kafka_config.topics.prefix}.minimised.http_request"
    schema = REGISTRY.latest("http_request", "minimised")
    clean = clean_row("http_request", 1)
    leaky = clean_row("http_request", 2) | {"client_network": "198.51.100.23"}
    producer = KafkaProducer(**kafka_config.kafka.client_kwargs(), acks="all")
    try:
        producer.send(topic, encode(schema, clean), partition=0)
        producer.send(topic, encode(schema, leaky), partition=1)
        producer.send(topic, b"not an event", partition=1)
        producer.flush()
    finally:
        producer.close()
    report = scan_topics(kafka_config, max_messages_per_partition=100, now=NOW)
    assert report.messages_scanned == 3
    assert report.findings == (
        Finding("http_request", None, "(message)", f"{topic}~p1", "undecodable", 1),
        Finding("http_request", DAY.isoformat(), "client_network", f"{topic}~p1", "ipv4_address", 1),
    )
    assert_never_shown(report, "198.51.100.23")
    capped = scan_topics(kafka_config, max_messages_per_partition=1, now=NOW)
    assert capped.messages_scanned == 2
    assert [f.kind for f in capped.findings] == ["ipv4_address"]
