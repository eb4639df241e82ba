"""`datamin collector` as a real uvicorn server, with real HTTP clients and the real broker: both
paths without a redirect, CORS preflight, the snippet, rate limits, slow clients, the consent bound."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from datamin.config import Config
from datamin.identity import Identity
from datamin.topics import provision

DATAMIN = str(Path(sys.executable).parent / "datamin")


SECRET = b"a secret the web server and the collector share, 32+ bytes"


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "identity.secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


IDENTITY = Identity(SECRET)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_collector(config: Config, tmp_path: Path, *, workers: int = 1,
                      **collector: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Yields (base URL, process). ``collector`` are [collector] settings as TOML values."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAMIN")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
        "DATAMIN__TOPICS__PREFIX": f'"{config.topics.prefix}"',
        "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "collector-spool"}"',
        "DATAMIN__IDENTITY__SECRET_FILE": f'"{secret_file(tmp_path)}"',
    })
    env.update({f"DATAMIN__COLLECTOR__{k.upper()}": v for k, v in collector.items()})
    log = open(tmp_path / "collector.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([DATAMIN, "collector", "--port", str(port), "--workers", str(workers)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/collect/datamin.js", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("datamin collector did not start:\n" + (tmp_path / "collector.log").read_text())
            time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


def server_log(tmp_path: Path) -> str:
    return (tmp_path / "collector.log").read_text()


def raw_events(config: Config, event: str, n: int, timeout_ms: int = 10_000) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer

    from datamin.topics import Topics
    from schemas import decode, default_registry

    consumer = KafkaConsumer(Topics(config).raw(event), **config.kafka.client_kwargs(), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        out = []
        for message in consumer:
            out.append(decode(message.value, default_registry())[1])
            if len(out) >= n:
                break
        return out
    finally:
        consumer.close()


SITE = "https://shop.example"
NOW = datetime.now(UTC).isoformat()
USAGE = {"event": "usage_event", "time": NOW, "kind": "page_view", "page": "/a"}
CONSENT = {"event": "consent_record", "time": NOW, "necessary": True, "statistics": True, "source": "banner"}


def test_both_paths_answer_without_redirect_and_events_reach_kafka(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    with running_collector(kafka_config, tmp_path, allowed_origins=f'["{SITE}"]') as (base, _):
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
            for path in ("/collect", "/collect/"):
                preflight = client.options(path, headers={
                    "Origin": SITE, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type"})
                assert preflight.status_code == 204, path
                assert preflight.headers["access-control-allow-origin"] == SITE
                assert "POST" in preflight.headers["access-control-allow-methods"]
                response = client.post(path, json={"events": [{**USAGE, "page": path}]}, headers={"Origin": SITE})
                assert response.status_code == 200 and response.json() == {"accepted": 1, "rejected": []}
                assert response.headers["access-control-allow-origin"] == SITE
            refused = client.post("/collect", json=[USAGE], headers={"Origin": "https://evil.example"})
            assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
            assert client.get("/collect").status_code == 405
            assert client.get("/elsewhere").status_code == 404
            script = client.get("/collect/datamin.js")
            assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
            assert b"consent_record" in script.content and b"usage_event" in script.content
    # SIGTERM closed the producer, which flushed: both events are on the raw topic
    pages = sorted(e["page"] for e in raw_events(kafka_config, "usage_event", 2))
    assert pages == ["/collect", "/collect/"]


def test_one_client_is_rate_limited_and_told_when_to_retry(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    with running_collector(kafka_config, tmp_path, burst="5", rate_per_second="0.2") as (base, _):
        with httpx.Client(base_url=base, timeout=30) as client:
            statuses = [client.post("/collect", json=[USAGE]).status_code for _ in range(30)]
            limited = client.post("/collect", json=[USAGE])
    assert statuses.count(200) <= 5 + 2  # the burst, plus what refilled while the loop ran (0.2/s)
    assert statuses.count(429) >= 20
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "too many requests" in limited.json()["error"]


def _slow_client(base: str, first: bytes) -> socket.socket:
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=60)
    sock.sendall(first)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it was still open after ``seconds``."""
    sock.settimeout(seconds)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return received
    finally:
        sock.close()


def test_slow_headers_and_slow_bodies_are_cut_off(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    with running_collector(kafka_config, tmp_path, header_timeout_seconds="1.0",
                           body_timeout_seconds="1.0") as (base, _):
        slow_heads = [_slow_client(base, b"POST /collect HTTP/1.1\r\nHost: x\r\n") for _ in range(20)]
        slow_bodies = [_slow_client(base, b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[")
                       for _ in range(20)]
        time.sleep(0.5)
        for sock in slow_heads:  # keep trickling: a byte now and then must not extend the deadline
            sock.sendall(b"X")
        for sock in slow_heads:
            assert _closed_within(sock, 30) is not None, "a slow request head kept its connection open"
        for sock in slow_bodies:
            answer = _closed_within(sock, 30)
            assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
        # the server still serves everyone else
        assert httpx.post(f"{base}/collect", json=[USAGE], timeout=30).status_code == 200


def test_a_visitor_records_a_bounded_number_of_consent_choices(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    one, two = IDENTITY.issue_visitor(), IDENTITY.issue_visitor()
    with running_collector(kafka_config, tmp_path, consent_records_per_day="3") as (base, _):
        with httpx.Client(base_url=base, timeout=30) as client:
            mine = [client.post("/collect", json=[CONSENT], headers={"Cookie": f"datamin_consent={one}"})
                    for _ in range(6)]
            other = client.post("/collect", json=[CONSENT], headers={"Cookie": f"datamin_consent={two}"})
    assert [r.json()["accepted"] for r in mine] == [1, 1, 1, 0, 0, 0]
    assert {r.status_code for r in mine[3:]} == {503}
    assert other.json()["accepted"] == 1
    subjects = sorted(e["subject_key"] for e in raw_events(kafka_config, "consent_record", 4))
    assert subjects == sorted([IDENTITY.visitor_of(one)] * 3 + [IDENTITY.visitor_of(two)])


@pytest.mark.parametrize("workers", [2])
def test_several_workers_serve_and_each_flushes_on_stop(kafka_config: Config, tmp_path: Path, workers: int) -> None:
    provision(kafka_config)
    with running_collector(kafka_config, tmp_path, workers=workers) as (base, _):
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(20):
                # a new connection each time, so both workers take some
                assert client.post("/collect", json=[{**USAGE, "page": f"/p{i}"}],
                                   headers={"Connection": "close"}).status_code == 200
    pages = {e["page"] for e in raw_events(kafka_config, "usage_event", 20)}
    assert pages == {f"/p{i}" for i in range(20)}


PAGE = """<!doctype html><html><head><title>shop</title>
<script src="{collector}/collect/datamin.js" data-page-view="off"></script></head>
<body><pre id="out">pending</pre><script>
datamin.track("search", {{search_terms: "pricing"}});
Promise.all([datamin.consent({{statistics: true, marketing: false}}, "2026-01"), datamin.flush()])
  .then(function (r) {{ document.getElementById("out").textContent = "RESULT " + JSON.stringify(r); }});
</script></body></html>"""


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but chromium is missing (quickstart.sh installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@contextmanager
def _page_server(html: str, port: int, cookie: str) -> Iterator[str]:
    """The shop's own site on another port (another origin): it sets the consent cookie, as web servers do."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Set-Cookie", f"datamin_consent={cookie}; Path=/; SameSite=Lax")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_headless_chromium_posts_usage_and_consent_cross_origin(kafka_config: Config, tmp_path: Path) -> None:
    chromium = _chromium()
    provision(kafka_config)
    page_port = free_port()
    site = f"http://127.0.0.1:{page_port}"
    cookie = IDENTITY.issue_visitor()  # the shop's server issues the visitor id
    with running_collector(kafka_config, tmp_path, allowed_origins=f'["{site}"]') as (base, _):
        with _page_server(PAGE.format(collector=base), page_port, cookie):
            result = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=20000", "--dump-dom",
                 f"{site}/"], capture_output=True, text=True, timeout=180)
    assert "RESULT" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    answer = result.stdout.split("RESULT ", 1)[1].split("<", 1)[0]
    assert answer.count('"accepted":1') == 2, answer
    [consent] = raw_events(kafka_config, "consent_record", 1)
    assert consent["subject_key"] == IDENTITY.visitor_of(cookie) and consent["statistics"] is True
    [search] = raw_events(kafka_config, "usage_event", 1)
    assert search["search_terms"] == "pricing" and search["page"].startswith(site)
