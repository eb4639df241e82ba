"""Looking inside: analysts' queries, the policy dry run, the schemas, the record of processing, the leak
scan and the configuration in force."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datamin.cli.command import Add
from datamin.config import Config


def register(add: Add) -> None:
    p = add("query", "run a read-only SQL query against the warehouse catalog", _query,
            "Opens the DuckDB catalog read-only and prints the result. Tables: http_request, usage_event,\n"
            "device_report, consent_record, privacy_request; views: daily_requests, top_pages,\n"
            "referrer_domains, browser_share, os_share, device_share, countries, search_terms, error_rate,\n"
            "audit_log, duplicate_events (days on which a table repeats an event id).\n\n"
            "The analyst boundary: only reading statements run (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN);\n"
            "only the tables' folders can be read (no read_blob of keys, no COPY ... TO, no extensions, no\n"
            "SET). To keep a result, use --format csv or json and redirect the output.")
    p.add_argument("sql", help='e.g. "SELECT * FROM daily_requests"')
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")

    p = add("minimise", "dry-run the policy: raw JSON events on stdin -> minimised JSON on stdout", _minimise,
            'Each input line is one event in JSON form, e.g.\n'
            '  {"event": "http_request", "time": "2026-11-25T10:00:00Z", "client_ip": "203.0.113.7", ...}\n'
            "consent_record lines set the consent for the lines after them. Uses exactly the processor's code,\n"
            "event-time check included: a line dated beyond minimise.clock_skew_seconds in the future or older\n"
            "than its table's retention (judged now) is reported as a bad line, as the processor dead-letters it.")
    p.add_argument("--explain", action="store_true", help="also print, per field, the rule applied")

    p = add("schemas", "validate the event schemas and their privacy annotations", _schemas)
    p.add_argument("action", choices=["check", "list"], help="check: validate all; list: name every schema")

    p = add("policy", "print the record of processing generated from the schemas and the config", _policy)
    p.add_argument("--format", choices=["markdown", "json"], default="markdown", help="output format")

    p = add("audit", "the leak scan: search the warehouse (and --topics) for leaked personal data", _leak_scan,
            "The leak scan (not the audit trail, which is the audit_log view: see `datamin query`).\n"
            "Looks in every table for what must never be kept: full IPv4/IPv6 addresses (host bits beyond the\n"
            "configured prefix), e-mail addresses, phone and card numbers, MAC addresses, clear identifiers\n"
            "where only pseudonyms belong. Reports table, partition, column and count, never the value, and\n"
            "writes the result to the audit trail. Exit code 1 when anything is found. The scheduler runs it daily.")
    p.add_argument("--topics", action="store_true", help="also read the minimised Kafka topics")

    add("config", "print the configuration in force (secrets hidden)", _show_config)


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
    from warehouse.retention import full_inventory

    print(policy_report(default_registry(), config, fmt=args.format, stores=full_inventory(config)))
    return 0


def _leak_scan(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from warehouse.leak_scan import run_leak_scan

    report = run_leak_scan(config, now=datetime.now(UTC), include_topics=args.topics)
    print(report.format())
    return 0 if report.clean else 1


def _show_config(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(config.redacted(), indent=2, default=dict))
    return 0
