"""Log shipper throughput: lines/s parsed and published to the broker by ship_logs, against reading the
same file line by line alone, in the same run. Reads KAFKA_BOOTSTRAP_SERVERS.

    python bench/shipper_throughput.py [--quick] [--lines N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python 3.0's resource loading

from datamin.config import load_config  # noqa: E402
from datamin.topics import provision  # noqa: E402
from producers.shipper import ship_logs  # noqa: E402

AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Version/17.5 Mobile/15E148 Safari/604.1",
          "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"]


def write_log(path: Path, n: int) -> None:
    rnd = random.Random(7)
    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%d/%b/%Y")  # within every table's retention
    with path.open("w") as f:
        for i in range(n):
            ip = f"{rnd.randrange(1, 223)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
            f.write(f'{ip} - - [{day}:13:{i // 60 % 60:02d}:{i % 60:02d} +0200] "GET /p/{i}?utm_source=n '
                    f'HTTP/1.1" 200 {rnd.randrange(100, 90000)} "https://ref.example/" "{rnd.choice(AGENTS)}"\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lines", type=int, default=0)
    args = parser.parse_args()
    n = args.lines or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        write_log(log, n)
        t0 = time.perf_counter()
        with log.open("rb") as f:
            count = sum(1 for _ in f)
        read_rate = count / (time.perf_counter() - t0)
        config = load_config(path=None, environ={
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "DATAMIN__TOPICS__PREFIX": f'"bench-ship-{uuid.uuid4().hex[:8]}"',
            "DATAMIN__PRODUCER__SPOOL_DIR": f'"{Path(tmp) / "spool"}"',
        })
        provision(config)
        t0 = time.perf_counter()
        result = ship_logs(config, [log], state_dir=Path(tmp) / "state")
        ship_rate = result.lines / (time.perf_counter() - t0)
    print(f"read only: {read_rate:,.0f} lines/s; shipped (parse + encode + Kafka, acked): {ship_rate:,.0f} lines/s; "
          f"events={result.events} bad={result.bad_lines}", file=sys.stderr)
    print(f"RESULT shipper_throughput {ship_rate:.0f} lines/s ratio={ship_rate / read_rate:.4f} "
          "baseline=reading the same file line by line alone")


if __name__ == "__main__":
    main()
