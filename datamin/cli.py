"""The `datamin` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from datamin.config import Config, load_config
from datamin.exceptions import DataminError

DESCRIPTION = """\
datamin collects web servers' log, usage and device events through Kafka, keeps only what the
privacy policy allows (truncated IP addresses, pseudonyms only with consent, scrubbed free text),
and loads it into day-partitioned Parquet that analysts query with DuckDB, expiring it on time.
"""

EPILOG = """\
quick start:
  datamin demo                      broker, pipeline and synthetic traffic, then what analysts see
  datamin query "SELECT * FROM http_request LIMIT 5"

running the pipeline (each is a long-running process; run several for scale):
  datamin kafka start               a local Apache Kafka broker (fetched with Maven) on 127.0.0.1:9092
  datamin topics                    create datamin's topics with their retention
  datamin process                   the minimisation processor: raw topics -> minimised topics
  datamin sink                      the warehouse sink: minimised topics -> Parquet partitions
  datamin scheduler                 daily expiry and compaction
  datamin backup create DEST        a backup whose restore never brings an erased person back

configuration: ./datamin.toml (or --config / DATAMIN_CONFIG), DATAMIN__SECTION__KEY variables and
KAFKA_BOOTSTRAP_SERVERS; `datamin config` prints what is in force. Every subcommand has --help.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datamin", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help="datamin.toml to read (default: ./datamin.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (debug level)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def add(name: str, help_: str, handler: Callable[[argparse.Namespace, Config], int],
            description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description or help_,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    p = add("demo", "run the whole pipeline on synthetic traffic and show what analysts see", _demo,
            "Starts a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names one), provisions the topics,\n"
            "publishes synthetic web traffic with full IP addresses, user agents and identifiers, runs the\n"
            "processor and the sink, and prints rows from the DuckDB catalog: IPs truncated, no identifiers.")
    p.add_argument("--events", type=int, default=2000, help="synthetic events to publish (default 2000)")
    p.add_argument("--keep-running", action="store_true", help="leave the broker running afterwards")

    p = add("kafka", "start, stop or inspect a local Apache Kafka broker (no Docker needed)", _kafka,
            "Fetches the pinned Apache Kafka release from Maven Central with Maven (once), formats a KRaft\n"
            "storage directory and runs a single-node broker+controller on 127.0.0.1. Files live in\n"
            "$DATAMIN_HOME/kafka (default ./.datamin/kafka), the broker's log in server.log there.")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"], help="what to do")
    p.add_argument("--port", type=int, default=9092, help="client port (default 9092; the controller uses port+1)")

    add("topics", "create datamin's Kafka topics with their retention (safe to repeat)", _topics)

    p = add("process", "run the minimisation processor (raw topics -> minimised topics)", _process)
    p.add_argument("--instance", help="name of this instance (default: random); one transactional id each")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")

    add("sink", "run the warehouse sink (minimised topics -> Parquet partitions)", _sink)
    add("scheduler", "run daily expiry and compaction (catching up at start)", _scheduler)

    p = add("expire", "delete day partitions past each table's retention now", _expire)
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")

    p = add("query", "run a read-only SQL query against the warehouse catalog", _query,
            "Opens the DuckDB catalog read-only and prints the result. Tables: http_request, usage_event,\n"
            "device_report, consent_record, privacy_request; views: daily_requests, top_pages,\n"
            "referrer_domains, browser_share, os_share, device_share, countries, search_terms, error_rate,\n"
            "audit_log, duplicate_events (days on which a table repeats an event id).")
    p.add_argument("sql", help='e.g. "SELECT * FROM daily_requests"')
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")

    p = add("minimise", "dry-run the policy: raw JSON events on stdin -> minimised JSON on stdout", _minimise,
            'Each input line is one event in JSON form, e.g.\n'
            '  {"event": "http_request", "time": "2026-11-25T10:00:00Z", "client_ip": "203.0.113.7", ...}\n'
            "consent_record lines set the consent for the lines after them. Uses exactly the processor's code.")
    p.add_argument("--explain", action="store_true", help="also print, per field, the rule applied")

    p = add("schemas", "validate the event schemas and their privacy annotations", _schemas)
    p.add_argument("action", choices=["check", "list"], help="check: validate all; list: name every schema")

    p = add("policy", "print the record of processing generated from the schemas and the config", _policy)
    p.add_argument("--format", choices=["markdown", "json"], default="markdown", help="output format")

    p = add("ship-logs", "follow nginx/Apache access logs and publish them as http_request events", _ship_logs)
    p.add_argument("paths", nargs="+", metavar="PATH", help="access log files (combined format or JSON lines)")
    p.add_argument("--once", action="store_true", help="read to the end and stop instead of following")
    p.add_argument("--state-dir", default="data/shipper", help="where read positions are kept (default data/shipper)")

    p = add("rights", "carry out people's rights: access, erase, restrict, object, withdraw, lift, status", _rights,
            "The privacy officer's door. Each action is published as a privacy_request event (so every\n"
            "processor acts on it and the log is the record), carried out in the warehouse, and written to\n"
            "the rights trail with a one-month deadline. The subject key (logged-in user id or consent-cookie\n"
            "id) is never stored in clear; only an access export, handed to the person, contains it.\n\n"
            "  access    export everything linked to the subject (JSON; --format csv for one CSV per table)\n"
            "  erase     delete the subject's rows everywhere, stop replays bringing them back; prints a receipt\n"
            "  restrict  hide the subject's rows from every analyst query until lifted; drop new identifiers\n"
            "  object    like restrict: processing of the subject's identifiers stops\n"
            "  withdraw  withdraw consent: new events lose identifiers, consent-based identifiers are erased\n"
            "  lift      end a restriction or objection\n"
            "  status    list open and overdue requests with their deadlines")
    p.add_argument("action", choices=["access", "erase", "restrict", "object", "withdraw", "lift", "status"])
    p.add_argument("--subject", metavar="KEY", help="the subject key (required but for status)")
    p.add_argument("--out", default=".", help="folder for access exports (default: here)")
    p.add_argument("--format", choices=["json", "csv"], default="json",
                   help="access export: one JSON document (default) or one CSV file per table")

    p = add("audit", "scan the warehouse (and --topics) for leaked personal data", _audit,
            "Looks in every table for what must never be kept: full IPv4/IPv6 addresses (host bits beyond the\n"
            "configured prefix), e-mail addresses, phone and card numbers, MAC addresses, clear identifiers\n"
            "where only pseudonyms belong. Reports table, partition, column and count, never the value, and\n"
            "writes the result to the audit trail. Exit code 1 when anything is found. The scheduler runs it daily.")
    p.add_argument("--topics", action="store_true", help="also read the minimised Kafka topics")

    add("config", "print the configuration in force (secrets hidden)", _show_config)

    from datamin.cli_backup import register as register_backup
    register_backup(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING if not args.verbose else logging.INFO)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
        return int(args.handler(args, config) or 0)
    except DataminError as exc:
        print(f"datamin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for long-running commands to finish their work and exit."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


# -- handlers ---------------------------------------------------------------------------------------
def _kafka(args: argparse.Namespace, config: Config) -> int:
    from datamin.broker import LocalBroker

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

    created = provision(config)
    for spec in Topics(config).all():
        mark = "created" if spec.name in created else "exists "
        hours = spec.retention_ms / 3_600_000
        keep = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
        print(f"{mark}  {spec.name:<45} {spec.role:<17} retention {keep}{', compacted' if spec.compacted else ''}")
    return 0


def _process(args: argparse.Namespace, config: Config) -> int:
    from processors.loop import run_processor

    run_processor(config, instance=args.instance, stop=stop_on_signals(), metrics_port=args.metrics_port)
    return 0


def _sink(args: argparse.Namespace, config: Config) -> int:
    from warehouse.sink import run_sink

    run_sink(config, stop=stop_on_signals())
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


def _query(args: argparse.Namespace, config: Config) -> int:
    from warehouse.query import run_query

    run_query(Path(config.warehouse.catalog), args.sql, fmt=args.format, out=sys.stdout)
    return 0


def _minimise(args: argparse.Namespace, config: Config) -> int:
    from processors.dryrun import minimise_stream

    return minimise_stream(config, sys.stdin, sys.stdout, explain=args.explain, errfile=sys.stderr)


def _schemas(args: argparse.Namespace, config: Config) -> int:
    if args.action == "list":
        from schemas import default_registry

        for schema in default_registry():
            print(f"{schema.key:<32} {len(schema.field_names):>3} fields  fingerprint {schema.fingerprint.hex()}")
        return 0
    from schemas.check import check_schemas

    problems = check_schemas()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the schemas", file=sys.stderr)
        return 1
    print("schemas ok: every field annotated, minimised counterparts consistent, versions compatible")
    return 0


def _policy(args: argparse.Namespace, config: Config) -> int:
    from schemas import default_registry
    from schemas.policy import policy_report

    print(policy_report(default_registry(), config, fmt=args.format))
    return 0


def _ship_logs(args: argparse.Namespace, config: Config) -> int:
    from producers.shipper import ship_logs, stderr_progress

    result = ship_logs(config, [Path(p) for p in args.paths], state_dir=Path(args.state_dir),
                       follow=not args.once, stop=stop_on_signals(), progress=stderr_progress())
    print(f"\nshipped {result.events:,} events from {result.lines:,} lines; {result.bad_lines:,} unparsable "
          "lines went to the dead-letter topic (with their line numbers, not their text)", file=sys.stderr)
    return 0


def _rights(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from datamin.rights import rights_command, status_report

    now = datetime.now(UTC)
    if args.action == "status":
        print(status_report(config, now))
        return 0
    if not args.subject:
        print("datamin: error: --subject KEY is required for this action (the logged-in user id or "
              "consent-cookie id the person proved to you)", file=sys.stderr)
        return 2
    return rights_command(config, args.action, args.subject, out_dir=args.out, now=now, fmt=args.format)


def _audit(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from warehouse.leak_audit import run_leak_audit

    report = run_leak_audit(config, now=datetime.now(UTC), include_topics=args.topics)
    print(report.format())
    return 0 if report.clean else 1


def _show_config(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(config.redacted(), indent=2, default=dict))
    return 0


def _demo(args: argparse.Namespace, config: Config) -> int:
    from datamin.demo import run_demo

    return run_demo(config, events=args.events, keep_running=args.keep_running)


if __name__ == "__main__":
    sys.exit(main())
