"""Running the pipeline: a local broker, topics, and the long-running stages (processor, sink, scheduler,
log shipper)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamin.cli.command import Add
from datamin.config import Config
from datamin.signals import stop_on_signals


def register(add: Add) -> None:
    p = add("kafka", "start, stop or inspect a local Apache Kafka broker (no Docker needed)", _kafka,
            "Fetches the pinned Apache Kafka release from Maven Central with Maven (once), formats a KRaft\n"
            "storage directory and runs a single-node broker+controller on 127.0.0.1. Files live in\n"
            "$DATAMIN_HOME/kafka (default ./.datamin/kafka), the broker's log in server.log there.")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"], help="what to do")
    p.add_argument("--port", type=int, default=9092, help="client port (default 9092; the controller uses port+1)")

    add("topics", "create datamin's Kafka topics with their retention, and correct existing ones (safe to repeat)",
        _topics,
        "Creates each topic datamin uses, and sets on new and existing topics alike: retention.ms, a short\n"
        "segment.ms (Kafka deletes whole segments, so a record can live retention + one segment roll; that\n"
        "sum stays within the cap: a week for raw topics, a year for the others), segment.jitter.ms=0 and\n"
        "message.timestamp.type=LogAppendTime (records age by when the broker got them, whatever time a\n"
        "producer stamped on them). Run it after upgrading datamin or changing a retention setting.")

    p = add("process", "run the minimisation processor (raw topics -> minimised topics)", _process)
    p.add_argument("--instance", help="name of this instance (default: $DATAMIN_INSTANCE, else the host name); "
                   "one transactional id each")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")

    add("sink", "run the warehouse sink (minimised topics -> Parquet partitions)", _sink)
    add("scheduler", "run daily expiry and compaction, hourly retention of every other store (catching up at start), "
        "and merge the open day's small files every minute", _scheduler)

    p = add("expire", "delete day partitions past each table's retention now", _expire)
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")

    p = add("ship-logs", "follow nginx/Apache access logs and publish them as http_request events", _ship_logs)
    p.add_argument("paths", nargs="+", metavar="PATH", help="access log files (combined format or JSON lines)")
    p.add_argument("--once", action="store_true", help="read to the end and stop instead of following")
    p.add_argument("--state-dir", help="where read positions are kept (default producer.shipper_state_dir)")
    p.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")

    p = add("agent", "send the events of every web server process on this machine (producer.agent_socket)",
            _agent,
            "Listens on a Unix socket (producer.agent_socket, or --socket). Producers configured with the same\n"
            "path (web apps' middleware, the collector, ship-logs) hand it each batch of encoded events in one\n"
            "write instead of each running a Kafka client: a web server's process then spends a few tens of\n"
            "microseconds of CPU per request on datamin, and the broker sees one producer per machine. It\n"
            "sends to raw topics and the dead-letter topic only, with the same acks, spool and replay as any\n"
            "producer. A producer that cannot reach it sends directly, and comes back when it can. The socket\n"
            "is 0600: run the agent as the web server's user. SIGTERM: it reads what producers wrote before,\n"
            "sends or spools it, and exits.")
    p.add_argument("--socket", help="path of the Unix socket (default producer.agent_socket)")

    p = add("collector", "serve the collector: pages and apps post usage events and consent choices", _collector,
            "Serves the collector with uvicorn: POST events to /collect (or /collect/; collector.prefix),\n"
            "the page snippet at /collect/datamin.js. Per-client rate limits, deadlines for slow clients and\n"
            "a daily bound of consent records per visitor come from [collector] in datamin.toml. It speaks\n"
            "plain HTTP: put TLS in a reverse proxy and list that proxy in collector.trusted_proxies.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=int, default=8700, help="port to listen on (default 8700)")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own producer (default 1)")


def _kafka(args: argparse.Namespace, config: Config) -> int:
    from datamin.cli.broker import LocalBroker

    broker = LocalBroker(port=args.port)
    if args.action == "fetch":
        print(f"Kafka jars in {broker.fetch()}")
    elif args.action == "start":
        print(broker.start().describe())
    elif args.action == "stop":
        print("Kafka stopped" if broker.stop() else "Kafka was not running")
    else:
        status = broker.status()
        print(status.describe())
        return 0 if status.running else 1
    return 0


def _topics(args: argparse.Namespace, config: Config) -> int:
    from datamin.topics import Topics, provision

    def words(ms: int) -> str:
        hours = ms / 3_600_000
        return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"

    created = provision(config)
    for spec in Topics(config).all():
        mark = "created" if spec.name in created else "checked"
        print(f"{mark}  {spec.name:<45} {spec.role:<17} retention {words(spec.retention_ms)} + segment "
              f"{words(spec.segment_ms)}: at most {words(spec.max_age_ms)}{', compacted' if spec.compacted else ''}")
    return 0


def _process(args: argparse.Namespace, config: Config) -> int:
    from processors.loop import run_processor

    with stop_on_signals(doing="finishing the batch in hand, then stopping") as stop:
        run_processor(config, instance=args.instance, stop=stop, metrics_port=args.metrics_port)
    return 0


def _sink(args: argparse.Namespace, config: Config) -> int:
    from warehouse.sink import run_sink

    with stop_on_signals(doing="flushing and stopping") as stop:
        run_sink(config, stop=stop)
    return 0


def _scheduler(args: argparse.Namespace, config: Config) -> int:
    from warehouse.scheduler import run_scheduler

    run_scheduler(config)
    return 0


def _expire(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from warehouse.scheduler import expire_now, format_expiries

    expiries = expire_now(config, dry_run=args.dry_run, now=datetime.now(UTC))
    print(format_expiries(expiries, args.dry_run))
    return 0


def _ship_logs(args: argparse.Namespace, config: Config) -> int:
    from producers.shipper import ship_logs, stderr_progress

    with stop_on_signals(doing="stopping the shipper") as stop:
        show = args.progress or sys.stderr.isatty()
        result = ship_logs(config, [Path(p) for p in args.paths],
                           state_dir=Path(args.state_dir or config.producer.shipper_state_dir),
                           follow=not args.once, stop=stop, progress=stderr_progress() if show else None)
    print(f"\nshipped {result.events:,} events from {result.lines:,} lines; {result.bad_lines:,} unparsable "
          "lines went to the dead-letter topic (with their line numbers, not their text)", file=sys.stderr)
    return 0


def _agent(args: argparse.Namespace, config: Config) -> int:
    from producers.agent import Agent

    with stop_on_signals(doing="reading what producers wrote, sending it, stopping") as stop:
        agent = Agent(config, args.socket)
        print(f"datamin agent: taking events at {agent.path}", file=sys.stderr)
        stats = agent.serve(stop)
    print(f"datamin agent: took {stats.events:,} events from {stats.connections:,} connections; refused "
          f"{stats.refused:,}", file=sys.stderr)
    return 0


def _collector(args: argparse.Namespace, config: Config) -> int:
    from producers.collector_serve import serve

    serve(args.config, host=args.host, port=args.port, workers=args.workers,
          log_level="debug" if args.verbose else "info")
    return 0
