"""docker-compose publishes nothing beyond this machine: Kafka's listener there is unauthenticated."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_published_port_binds_to_localhost_only() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    published = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s+ports:\s*$", line):
            indent = len(line) - len(line.lstrip())
            for item in lines[i + 1:]:
                stripped = item.strip()
                if stripped.startswith("#"):
                    continue
                if not stripped.startswith("- ") or len(item) - len(item.lstrip()) <= indent - 1:
                    break
                published.append(stripped[2:].strip().strip('"').strip("'"))
    assert published, "no published ports found: the test would prove nothing"
    for port in published:
        assert port.startswith("127.0.0.1:"), f"{port} is published on every interface"
