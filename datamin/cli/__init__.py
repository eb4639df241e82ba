"""The `datamin` command: one entry point, a subcommand per job, a module per command group.

    demo       the whole pipeline on synthetic traffic
    pipeline   kafka, topics, process, sink, scheduler, expire, ship-logs, agent, collector
    inspect    query, minimise, schemas, policy, audit (the leak scan), config
    rights     people's rights (warehouse.rights)
    retention  the retention inventory (warehouse.retention)
    report     the analysts' views as one self-contained HTML page of charts (warehouse.report)
    backup     backups that forget (warehouse.backup)

The one room allowed to import every stage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from datamin.cli import backup, demo, inspect, pipeline, report, retention, rights
from datamin.cli.command import Handler
from datamin.config import load_config
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
  datamin report --out report.html  charts of the analysts' views, one HTML file that opens offline

running the pipeline (each is a long-running process; run several for scale):
  datamin kafka start               a local Apache Kafka broker (fetched with Maven) on 127.0.0.1:9092
  datamin topics                    create datamin's topics with their retention
  datamin process                   the minimisation processor: raw topics -> minimised topics
  datamin sink                      the warehouse sink: minimised topics -> Parquet partitions
  datamin scheduler                 daily expiry and compaction, hourly retention of every other store
  datamin retention                 every store datamin keeps, its cap, its oldest item, its next deletion
  datamin collector                 the HTTP endpoint pages and apps post events and consent to
  datamin agent                     one per machine: sends the events of its web server processes
  datamin backup create DEST        a backup whose restore never brings an erased person back

configuration: ./datamin.toml (or --config / DATAMIN_CONFIG), DATAMIN__SECTION__KEY variables and
KAFKA_BOOTSTRAP_SERVERS; `datamin config` prints what is in force. Every subcommand has --help.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``datamin`` parser: a subcommand per job, registered by each command group's module."""
    parser = argparse.ArgumentParser(prog="datamin", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help="datamin.toml to read (default: ./datamin.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (debug level)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def add(name: str, help_: str, handler: Handler, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description or help_,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    for group in (demo, pipeline, inspect, rights, retention, report, backup):
        group.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return quiet_broken_pipe()


def quiet_broken_pipe() -> int:
    """The reader of our output went away (`datamin config | head`): stop quietly, as Unix tools do.
    stdout is pointed at /dev/null so that the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING if not args.verbose else logging.INFO)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
        from warehouse.permissions import apply_umask

        apply_umask(config)  # files 0600/0640, folders 0700/0750: see warehouse.permissions
        return int(args.handler(args, config) or 0)
    except DataminError as exc:
        print(f"datamin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
