"""CPU per request that the middleware and the real EventProducer cost the app process at web pacing.

A Flask app under gunicorn (one sync worker: the app process), requested at Poisson arrivals of about
300 a second (one request at a time, as a web server sees them), with DataminWSGIMiddleware publishing
to the real broker in KAFKA_BOOTSTRAP_SERVERS, against the same app without middleware. The worker's
CPU time (all its threads: the request thread, the producer's sender and kafka-python's I/O thread) is
read from /proc before and after; five rounds alternate (one with --quick), the median of each is taken.

By default the app's producer hands its events to a `datamin agent` (``producer.agent_socket``), the
deployment the README recommends for web servers: the agent's CPU per request is printed beside the
app's, and is not part of the figure (it is the machine's, not the app process's). ``--direct``
measures producers that send to Kafka themselves instead.

The CPU is also split by thread (the request thread, the producer's sender, the Kafka client's own
threads). ``--client`` picks the transport (default: ``kafka.client`` of the configuration).

    python bench/middleware_cpu.py [--quick] [--direct] [--rate 300] [--requests N] [--client confluent-kafka]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_env, config_from  # noqa: E402
from _gunicorn import (  # noqa: E402
    cpu_seconds,
    get,
    gunicorn,
    producer_stats,
    producers_setup,
    thread_cpu_seconds,
    workers_of,
)

from datamin.topics import provision  # noqa: E402


def paced_run(port: int, worker: int, n: int, rate: float, rng: random.Random) -> tuple[float, float]:
    """(CPU seconds of the worker per request, achieved requests/s) for ``n`` Poisson-paced requests."""
    cpu0, t0 = cpu_seconds(worker), time.monotonic()
    _pace(port, n, rate, rng)
    elapsed = time.monotonic() - t0
    time.sleep(0.3)  # let the sender finish the last batch: its CPU counts too
    return (cpu_seconds(worker) - cpu0) / n, n / elapsed


def by_thread(port: int, worker: int, before: dict[str, float], n: int) -> dict[str, float]:
    """µs of CPU per request of each kind of thread of the worker since ``before``."""
    names = json.loads(get(port, "/_threads"))
    out: dict[str, float] = {}
    for key, seconds in thread_cpu_seconds(worker).items():
        comm, tid = key.rsplit("/", 1)
        kind = ("request thread" if int(tid) == worker else "librdkafka" if comm.startswith("rdk:")
                else names.get(tid, comm))
        out[kind] = out.get(kind, 0.0) + (seconds - before.get(key, 0.0)) / n * 1e6
    return {k: v for k, v in out.items() if v > 0}


def _pace(port: int, n: int, rate: float, rng: random.Random) -> None:
    due = time.monotonic()
    for i in range(n):
        due += rng.expovariate(rate)
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        get(port, f"/p/{i % 500}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--rate", type=float, default=300.0, help="mean requests per second (default 300)")
    parser.add_argument("--requests", type=int, help="requests per round")
    parser.add_argument("--client", choices=("kafka-python", "confluent-kafka"),
                        help="the Kafka transport (default: kafka.client of the configuration)")
    parser.add_argument("--direct", action="store_true", help="the app's producer sends to Kafka itself (no agent)")
    args = parser.parse_args()
    n = args.requests or (1500 if args.quick else 4500)
    rounds = 1 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        client = {"DATAMIN__KAFKA__CLIENT": json.dumps(args.client)} if args.client else {}
        env = bench_env(Path(tmp), DATAMIN__PRODUCER__SPOOL_DIR=f'"{Path(tmp) / "spool"}"', **client)
        provision(config_from(env))
        rng = random.Random(7)
        per_request: dict[bool, list[float]] = {False: [], True: []}
        agent_per_request: list[float] = []
        with producers_setup(env, Path(tmp), direct=args.direct) as (env, agent):
            for r in range(rounds):
                for middleware in (False, True):
                    with gunicorn(env, middleware=middleware, workers=1, preload=False) as port:
                        [worker] = workers_of(port)
                        for i in range(300):  # warm-up: imports, the producer's connection and metadata
                            get(port, f"/p/{i}")
                        threads = thread_cpu_seconds(worker)
                        agent_cpu = cpu_seconds(agent) if agent else 0.0
                        cpu, achieved = paced_run(port, worker, n, args.rate, rng)
                        agent_cpu = (cpu_seconds(agent) - agent_cpu) / n if agent else 0.0
                        split = by_thread(port, worker, threads, n)
                        stats = producer_stats(port)
                    per_request[middleware].append(cpu)
                    sent = (f", producer sent {stats.get('sent', 0)} handed to the agent {stats.get('handed', 0)} "
                            f"spooled {stats.get('spooled', 0)}") if stats else ""
                    print(f"round {r + 1} {'with   ' if middleware else 'without'} middleware: "
                          f"{cpu * 1e6:7.1f} µs CPU/request at {achieved:5.0f} req/s{sent}", flush=True)
                    print("    by thread: " + ", ".join(f"{k} {v:.1f} µs" for k, v in sorted(split.items())),
                          flush=True)
                    if middleware and agent:
                        agent_per_request.append(agent_cpu)
                        print(f"    the agent process: {agent_cpu * 1e6:.1f} µs CPU/request", flush=True)
    if agent_per_request:
        print(f"agent: {statistics.median(agent_per_request) * 1e6:.1f} µs CPU/request (median; the machine's, "
              "not the app process's)")
    without, with_ = statistics.median(per_request[False]), statistics.median(per_request[True])
    print(f"RESULT middleware_cpu {(with_ - without) * 1e6:.1f} us ratio={with_ / without:.2f} "
          "baseline=same WSGI app without middleware, real producer and broker at web pacing")


if __name__ == "__main__":
    main()
