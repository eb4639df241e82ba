"""Minimisation throughput on one core (CPU time of this process, so that other load on the machine
counts less): Avro decode -> consent ledger -> Minimiser -> Avro encode, over a
realistic event mix, against Avro decode -> encode of the same events with no minimisation (datamin's
codec in both). Each round's minimiser first sees a quarter as many other events of the same mix,
untimed, as a running processor has: its caches (user agents, pages, pseudonyms of people seen
before) hold what such traffic puts there, not the measured events themselves.

    python bench/minimise_transform.py [--quick] [--events N]

The mix: 80% http_request (a few hundred distinct user agents, IPv4 and IPv6, query strings, half the
subjects with consent), 15% usage_event (search terms with e-mail addresses and phone numbers), 5%
device_report (crash dumps with paths, IPs and tokens).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamin.config import Config
from processors.minimise import Minimiser
from processors.pipeline import new_ledger, process_event
from processors.transforms import KeyStore
from schemas import decode, default_registry, encode
from schemas.encoding import HEADER_SIZE, header_schema

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def user_agents(rng: random.Random) -> list[str]:
    uas = []
    for v in range(96, 132):
        uas.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   f"Chrome/{v}.0.{rng.randint(1000, 6999)}.{rng.randint(10, 200)} Safari/537.36")
        uas.append(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
                   f"Chrome/{v}.0.0.0 Safari/537.36")
        uas.append(f"Mozilla/5.0 (Linux; Android {rng.choice([10, 11, 12, 13, 14])}; "
                   f"{rng.choice(['Pixel 7', 'SM-G991B', 'SM-A536B', 'moto g(60)'])}) AppleWebKit/537.36 "
                   f"(KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36")
        uas.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0")
        uas.append(f"Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0")
        uas.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   f"Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{rng.randint(1000, 2999)}.{rng.randint(10, 99)}")
    for major in range(14, 18):
        for minor in range(0, 7):
            uas.append(f"Mozilla/5.0 (iPhone; CPU iPhone OS {major}_{minor} like Mac OS X) AppleWebKit/605.1.15 "
                       f"(KHTML, like Gecko) Version/{major}.{minor} Mobile/15E148 Safari/604.1")
            uas.append(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                       f"Version/{major}.{minor} Safari/605.1.15")
    uas += ["Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.4.0", "python-requests/2.31.0"]
    return uas


def random_ip(rng: random.Random) -> str:
    if rng.random() < 0.85:
        return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"2a02:{rng.randint(0, 65535):x}:{rng.randint(0, 65535):x}::{rng.randint(1, 65535):x}"


def make_events(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    registry = default_registry()
    schemas = {name: registry.latest(name, "raw") for name in ("http_request", "usage_event", "device_report",
                                                               "consent_record")}
    uas = user_agents(rng)
    subjects = [f"user-{i:05d}" for i in range(2000)]
    ips = {s: random_ip(rng) for s in subjects}
    sessions = {s: uuid.uuid4().hex for s in subjects}
    client_ids = {s: f"GA1.2.{rng.randint(10**8, 10**9)}.{rng.randint(10**8, 10**9)}" for s in subjects}
    out: list[bytes] = []
    for s in subjects[::2]:  # half the subjects consented to statistics, some to marketing
        out.append(encode(schemas["consent_record"], {
            "event_id": str(uuid.uuid4()), "time": T0 - timedelta(days=rng.randint(1, 300)), "subject_key": s,
            "necessary": True, "statistics": True, "marketing": rng.random() < 0.3, "feedback": False,
            "policy_version": "3", "source": "banner"}))
    for i in range(n):
        s = rng.choice(subjects)
        when = T0 + timedelta(seconds=i / 10)
        r = rng.random()
        if r < 0.80:
            if rng.random() < 0.2:  # a person changes network now and then
                ips[s] = random_ip(rng)
            record: dict[str, Any] = {
                "event_id": str(uuid.uuid4()), "time": when, "subject_key": s, "client_ip": ips[s],
                "method": "GET", "host": "www.example.no",
                "url": rng.choice(["/", "/products/42", "/search?q=red+shoes&page=2", "/article/2026/11/news",
                                   f"/account?session={uuid.uuid4().hex}&utm_source=mail"]),
                "status": rng.choice([200, 200, 200, 304, 404]), "bytes_sent": rng.randint(200, 90000),
                "duration_ms": rng.random() * 120, "referrer": rng.choice([None, "https://www.google.com/",
                                                                          "https://example.no/search?q=x"]),
                "user_agent": rng.choice(uas), "accept_language": rng.choice(["nb-NO,nb;q=0.9,en;q=0.8", "en-US"]),
                "client_hints": None, "do_not_track": None, "global_privacy_control": rng.random() < 0.1,
                "cdn_country": "NO", "session_id": sessions[s], "user_id": s if rng.random() < 0.3 else None,
                "client_id": client_ids[s]}
            out.append(encode(schemas["http_request"], record))
        elif r < 0.95:
            record = {"event_id": str(uuid.uuid4()), "time": when, "subject_key": s, "session_id": uuid.uuid4().hex,
                      "kind": "search", "page": "/search", "file": None,
                      "search_terms": rng.choice(["red shoes size 42", "contact ola.nordmann@example.no",
                                                  "call me +47 912 34 567", "invoice 2026-11 my order 7781",
                                                  "refund for order sent to 10.2.3.4"]),
                      "action": "search", "app_version": "4.2.1", "duration_ms": rng.randint(10, 5000)}
            out.append(encode(schemas["usage_event"], record))
        else:
            record = {"event_id": str(uuid.uuid4()), "time": when, "subject_key": s,
                      "advertising_id": str(uuid.uuid4()), "app_instance_id": uuid.uuid4().hex,
                      "hardware_serial": "SN123", "mac_address": "aa:bb:cc:dd:ee:ff", "hardware_model": "Pixel 8",
                      "os_name": "Android", "os_version": "14.1", "browser": None, "app_version": "4.2.1",
                      "system_config": {"locale": "nb_NO"}, "screen": "1080x2400", "network_operator": "Telenor",
                      "language": "nb-NO", "country": "NO", "region": "Oslo", "city": "Oslo", "latitude": 59.9,
                      "longitude": 10.7, "event_kind": "crash",
                      "message": "NullPointerException for user kari@example.no",
                      "crash_dump": ("java.lang.NullPointerException\n  at com.example.App.run(App.java:42)\n"
                                     "  file /home/kari/app/data.db token=abcd1234efgh5678ijkl from 192.168.1.23\n")
                      * 3}
            out.append(encode(schemas["device_report"], record))
    return out


def passthrough(events: list[bytes]) -> float:
    registry = default_registry()
    start = time.process_time()
    for data in events:
        schema, record = decode(data, registry)
        encode(schema, record)
    return len(events) / (time.process_time() - start)


def fastavro_passthrough(events: list[bytes]) -> float:
    """The same with fastavro's own schemaless reader and writer (the codec datamin used before its
    generated one): for comparison with figures measured against it."""
    registry = default_registry()
    start = time.process_time()
    for data in events:
        writer = header_schema(data, registry)
        reader = registry.latest(writer.name, writer.kind)
        buf = BytesIO(data)
        buf.seek(HEADER_SIZE)
        record = schemaless_reader(buf, writer.parsed, None if reader is writer else reader.parsed)
        out = BytesIO()
        out.write(data[:HEADER_SIZE])
        schemaless_writer(out, reader.parsed, record, strict_allow_default=True)
    return len(events) / (time.process_time() - start)


def minimise(events: list[bytes], key_dir: Path, warm_up: list[bytes]) -> float:
    """A new minimiser and ledger, run untimed over ``warm_up`` (other events of the same mix, as a
    running processor has seen before), then timed over ``events``."""
    registry = default_registry()
    config = Config()
    minimiser = Minimiser(registry, config.minimise, KeyStore(key_dir, "monthly", lambda: T0))
    ledger = new_ledger(config)
    for data in warm_up:
        schema, record = decode(data, registry)
        process_event(minimiser, ledger, schema, record)
    start = time.process_time()
    for data in events:
        schema, record = decode(data, registry)
        result = process_event(minimiser, ledger, schema, record)
        encode(result.schema, result.record)
    return len(events) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (3 if args.quick else 5)
    events = make_events(n)
    warm_up = make_events(n // 4, seed=8)  # the same mix, other events (IPs, ids, times)
    with tempfile.TemporaryDirectory() as tmp:
        base = mini = slow = 0.0
        for _ in range(rounds):  # interleaved, so that a busy machine slows all alike
            base = max(base, passthrough(events))
            mini = max(mini, minimise(events, Path(tmp), warm_up))
            slow = max(slow, fastavro_passthrough(events))
    print(f"passthrough {base:,.0f} events/s; minimise {mini:,.0f} events/s over {len(events):,} events "
          f"(best of {rounds}); fastavro's decode+encode {slow:,.0f} events/s (minimise / fastavro passthrough "
          f"{mini / slow:.2f})", file=sys.stderr)
    print(f"RESULT minimise_transform {mini:.0f} events/s ratio={mini / base:.2f} "
          "baseline=avro decode+encode passthrough")


if __name__ == "__main__":
    main()
