"""``datamin rights``: the privacy officer's door to people's rights (see `warehouse.rights`)."""

from __future__ import annotations

import argparse
import sys

from datamin.cli.command import Add
from datamin.config import Config


def register(add: Add) -> None:
    p = add("rights", "carry out people's rights: access, erase, restrict, object, withdraw, lift, status", _rights,
            "The privacy officer's door. Each action is published as a privacy_request event (so every\n"
            "processor acts on it and the log is the record), carried out in the warehouse, and written to\n"
            "the rights trail with a one-month deadline. The subject is user:<user id> or visitor:<visitor id>\n"
            "(a bare key is a user id; case and surrounding spaces do not matter: see datamin.identity). Give\n"
            "it with --subject-file PATH or --subject - (read from stdin) to keep it out of shell history and\n"
            "ps. It is never stored in clear; only an access export, handed to the person, contains it.\n"
            "The command refuses to act when warehouse.root or pseudonymise.key_dir is missing or empty,\n"
            "never creates secrets, and checks that the topics exist first.\n\n"
            "  access    export everything linked to the subject (JSON; --format csv for one CSV per table)\n"
            "  erase     delete the subject's rows everywhere, stop replays bringing them back; prints a receipt\n"
            "  restrict  hide the subject's rows from every analyst query until lifted; drop new identifiers\n"
            "  object    like restrict: processing of the subject's identifiers stops\n"
            "  withdraw  withdraw consent: new events lose identifiers, consent-based identifiers are erased\n"
            "  lift      end a restriction or objection\n"
            "  status    list open and overdue requests with their deadlines\n"
            "  worker    run until stopped: carry out the self-service requests people post to the collector\n"
            "            (erasure, objection, restriction, withdrawal; access, rectification and lift are\n"
            "            queued for the officer), each exactly once, recorded in the trail; on a fresh install\n"
            "            it waits (and says so) until the processor and the sink have created their stores")
    p.add_argument("action", choices=["access", "erase", "restrict", "object", "withdraw", "lift", "status", "worker"])
    who = p.add_mutually_exclusive_group()
    who.add_argument("--subject", metavar="KEY", help="the subject key, or - to read it from stdin")
    who.add_argument("--subject-file", metavar="PATH", help="a file whose first line is the subject key")
    p.add_argument("--out", default=".", help="folder for access exports (default: here)")
    p.add_argument("--format", choices=["json", "csv"], default="json",
                   help="access export: one JSON document (default) or one CSV file per table")


def _rights(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from datamin.exceptions import DataminError
    from producers.spool_erasure import erase_subject_from_spool
    from warehouse.rights import rights_command, status_report

    now = datetime.now(UTC)
    if args.action in ("status", "worker"):
        try:
            if args.action == "worker":
                from warehouse.rights.worker import run_rights_worker

                run_rights_worker(config, spool_eraser=erase_subject_from_spool)
            else:
                print(status_report(config, now))
        except DataminError as exc:
            print(f"datamin: error: {exc}", file=sys.stderr)
            return 2
        return 0
    subject = _read_subject(args)
    if not subject:
        print("datamin: error: give the subject with --subject KEY, --subject - (stdin) or --subject-file PATH "
              "(user:<user id> or visitor:<visitor id>, as the person proved it to you)", file=sys.stderr)
        return 2
    return rights_command(config, args.action, subject, out_dir=args.out, now=now, fmt=args.format,
                          spool_eraser=erase_subject_from_spool)


def _read_subject(args: argparse.Namespace) -> str | None:
    """The subject key from --subject, stdin (--subject -) or --subject-file; its first line, unstripped
    (the identity rule strips it)."""
    if args.subject_file:
        try:
            with open(args.subject_file, encoding="utf-8") as f:
                text = f.readline()
        except OSError as exc:
            print(f"datamin: error: cannot read --subject-file {args.subject_file!r}: {exc.strerror}", file=sys.stderr)
            return None
    elif args.subject == "-":
        text = sys.stdin.readline()
    else:
        text = args.subject or ""
    text = text.rstrip("\r\n")
    return text if text.strip() else None
