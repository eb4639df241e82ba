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


def _rights(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    from warehouse.rights import rights_command, status_report

    now = datetime.now(UTC)
    if args.action == "status":
        print(status_report(config, now))
        return 0
    if not args.subject:
        print("datamin: error: --subject KEY is required for this action (the logged-in user id or "
              "consent-cookie id the person proved to you)", file=sys.stderr)
        return 2
    return rights_command(config, args.action, args.subject, out_dir=args.out, now=now, fmt=args.format)
