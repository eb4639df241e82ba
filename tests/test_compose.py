"""docker-compose publishes nothing beyond this machine (Kafka's listener there is unauthenticated), and
leaves no spooled event where retention and erasure do not look."""

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


def test_every_service_spools_where_the_scheduler_and_the_rights_worker_look() -> None:
    """The scheduler expires, and the rights worker erases, spooled raw events under their own
    producer.spool_dir only: a producer spooling elsewhere would keep full IP addresses past the cap."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    spools = re.findall(r"DATAMIN__PRODUCER__SPOOL_DIR:\s*(.+)", text)
    assert len(spools) >= 2, "the services' spool settings were not found: the test would prove nothing"
    assert len(set(spools)) == 1, f"services spool in different folders: {sorted(set(spools))}"
