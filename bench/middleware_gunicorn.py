"""Requests a second a Flask app serves under gunicorn with 4 concurrent clients, with DataminWSGIMiddleware
and the real EventProducer (real broker in KAFKA_BOOTSTRAP_SERVERS) against the same app without it.

gunicorn runs 2 sync workers with --preload (the producer is created in the master and must survive
the fork); 4 client processes each send requests one after another for the round's duration. Rounds
alternate; the median of each is taken. By default the producers hand their events to a `datamin
agent` running on the same machine (its CPU competes with the app's, as it would); ``--direct``: they
send to Kafka themselves. ``--client`` picks the transport.

    python bench/middleware_gunicorn.py [--quick] [--direct] [--seconds S] [--client confluent-kafka]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_env, config_from  # noqa: E402
from _gunicorn import get, gunicorn, producer_stats, producers_setup  # noqa: E402

from datamin.topics import provision  # noqa: E402

CLIENTS = 4


def client(port: int, until: float, counts: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    n = 0
    while time.monotonic() < until:
        get(port, f"/p/{n % 500}")
        n += 1
    counts.put(n)


def requests_per_second(port: int, seconds: float) -> float:
    counts: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    start = time.monotonic() + 0.5
    until = start + seconds
    procs = [multiprocessing.Process(target=client, args=(port, until, counts)) for _ in range(CLIENTS)]
    for p in procs:
        p.start()
    total = sum(counts.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter and fewer rounds")
    parser.add_argument("--seconds", type=float, help="seconds per round")
    parser.add_argument("--client", choices=("kafka-python", "confluent-kafka"),
                        help="the Kafka transport (default: kafka.client of the configuration)")
    parser.add_argument("--direct", action="store_true", help="the app's producers send to Kafka themselves")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        client = {"DATAMIN__KAFKA__CLIENT": json.dumps(args.client)} if args.client else {}
        env = bench_env(Path(tmp), DATAMIN__PRODUCER__SPOOL_DIR=f'"{Path(tmp) / "spool"}"', **client)
        provision(config_from(env))
        rates: dict[bool, list[float]] = {False: [], True: []}
        with producers_setup(env, Path(tmp), direct=args.direct) as (env, _):
            for r in range(rounds):
                for middleware in (False, True):
                    with gunicorn(env, middleware=middleware, workers=2, preload=True) as port:
                        for i in range(200):
                            get(port, f"/p/{i}")
                        rate = requests_per_second(port, seconds)
                        stats = producer_stats(port)
                    rates[middleware].append(rate)
                    sent = (f" (the worker that answered /_stats sent {stats.get('sent', 0)}, handed "
                            f"{stats.get('handed', 0)} to the agent)") if stats else ""
                    print(f"round {r + 1} {'with   ' if middleware else 'without'} middleware: {rate:6.0f} req/s"
                          f"{sent}", flush=True)
    without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"RESULT gunicorn_rps {with_:.0f} req/s ratio={with_ / without:.2f} baseline=same Flask app under "
          f"gunicorn (2 sync workers, --preload) without middleware, {CLIENTS} concurrent clients, real broker")


if __name__ == "__main__":
    main()
