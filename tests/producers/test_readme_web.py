"""The README's snippets for web servers: the nginx JSON log_format gives lines ship-logs reads, the
collector payload is accepted as it stands, the config snippet is valid."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from datamin.config import load_config
from datamin.identity import Identity
from producers.collector import Collector, CollectorSettings
from producers.logformat import parse_line

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SAMPLE = {"time_iso8601": "2026-11-25T10:00:00+01:00", "remote_addr": "203.0.113.7", "host": "techpros.no",
          "request_method": "GET", "request_uri": "/p?q=1", "status": "200", "body_bytes_sent": "512",
          "request_time": "0.004", "http_referer": "", "http_user_agent": "Mozilla/5.0",
          "http_accept_language": "nb-NO"}


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_the_nginx_log_format_gives_lines_ship_logs_reads() -> None:
    [fmt] = [b for b in blocks("nginx") if "log_format" in b]
    template = "".join(re.findall(r"'([^']*)'", fmt))
    line = re.sub(r"\$([a-z_0-9]+)", lambda m: SAMPLE[m.group(1)], template)
    record = parse_line(line)
    assert record["client_ip"] == "203.0.113.7" and record["status"] == 200 and record["url"] == "/p?q=1"
    assert record["method"] == "GET" and record["bytes_sent"] == 512 and record["duration_ms"] == 4.0
    assert record["accept_language"] == "nb-NO" and record["time"].isoformat() == "2026-11-25T09:00:00+00:00"


class Sink:
    def __init__(self) -> None:
        self.events: list[str] = []

    def publish(self, event_type: str, record: dict) -> bool:  # type: ignore[type-arg]
        self.events.append(event_type)
        return True


def test_the_collector_payload_is_accepted_as_it_stands() -> None:
    [payload] = [b for b in blocks("json") if '"events"' in b]
    sink = Sink()
    identity = Identity(b"a secret the web server and the collector share, 32+ bytes")
    settings = CollectorSettings(identity=identity, clock=lambda: 1_795_601_100.0)  # 2026-11-25T10:05Z
    cookie = f"datamin_consent={identity.issue_visitor()}"
    status, answer = Collector(sink, settings).handle(payload.encode(), {"cookie": cookie})
    assert status == 200 and answer == {"accepted": 2, "rejected": []}
    assert sink.events == ["usage_event", "consent_record"]


def test_the_collector_config_snippet_loads(tmp_path: Path) -> None:
    [snippet] = [b for b in blocks("toml") if "[collector]" in b]
    (tmp_path / "datamin.toml").write_text(snippet)
    config = load_config(tmp_path / "datamin.toml", environ={})
    assert config.collector.allowed_origins == tuple(tomllib.loads(snippet)["collector"]["allowed_origins"])
    assert json.dumps(config.redacted())  # printable by `datamin config`


def test_the_agent_snippets_agree(tmp_path: Path) -> None:
    [snippet] = [b for b in blocks("toml") if b.startswith("[producer]")]
    (tmp_path / "datamin.toml").write_text(snippet)
    config = load_config(tmp_path / "datamin.toml", environ={})
    [unit] = [b for b in blocks("ini") if "datamin agent" in b]
    runtime = re.search(r"^RuntimeDirectory=(\S+)$", unit, flags=re.M)
    assert runtime and config.producer.agent_socket == f"/run/{runtime.group(1)}/agent.sock"
