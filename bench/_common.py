"""Shared set-up of the warehouse benchmarks: a throwaway config on the broker in KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python 3.0's resource loading

from datamin.config import Config, load_config  # noqa: E402


def bench_env(workdir: Path, **extra: str) -> dict[str, str]:
    """DATAMIN__* variables of a config with its own topics, group and warehouse under ``workdir``."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "DATAMIN__TOPICS__PREFIX": json.dumps(prefix),
        "DATAMIN__TOPICS__PARTITIONS": "3",
        "DATAMIN__WAREHOUSE__ROOT": json.dumps(str(workdir / "warehouse")),
        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(str(workdir / "catalog.duckdb")),
        "DATAMIN__WAREHOUSE__GROUP_ID": json.dumps(f"{prefix}-sink"),
    }
    env.update(extra)
    return env


def config_from(env: dict[str, str]) -> Config:
    return load_config(path=None, environ=env)
