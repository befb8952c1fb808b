"""``motcua alerts``: subscriptions to the alerts of some agencies (accountability §5,
contract/interface.md "Alert delivery"), and their deliveries."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from motcua.cli import render
from motcua.cli.common import (
    Parser,
    Subparsers,
    add_command,
    int_from,
    load_settings,
    print_json,
    print_lines,
)

RULES = "due_soon,apology_due,overdue,feedback_due"


def register(sub: Subparsers) -> None:
    """Add ``alerts`` and its actions ``add``, ``list`` and ``remove``."""
    sp = add_command(sub, "alerts", "Alert subscriptions: webhooks (signed) or e-mail for "
                     "dossiers falling due, apologies due, dossiers overdue and feedback due; "
                     "deliveries are durable, retried, and never repeated for one alert.",
                     cmd_alerts)
    alerts = sp.add_subparsers(dest="alerts_command", metavar="ACTION", required=True,
                               parser_class=Parser)
    ap = alerts.add_parser("add", help="subscribe a webhook or an e-mail address (its id is "
                           "printed)")
    ap.add_argument("--agencies", required=True, help="agencies, comma separated; H15 also "
                    "covers H15.*")
    to = ap.add_mutually_exclusive_group(required=True)
    to.add_argument("--webhook", metavar="URL", help="POST each alert here (http:// or "
                    "https://)")
    to.add_argument("--email", metavar="ADDR", help="e-mail each alert here (through "
                    "MOTCUA_SMTP_URL)")
    ap.add_argument("--secret", help="sign webhook bodies: X-Motcua-Signature: sha256=HMAC")
    ap.add_argument("--rules", default=RULES, help=f"which alerts (default {RULES})")
    ap.add_argument("--within", type=int_from(0, 366), default=2, metavar="N",
                    help="due_soon and feedback_due: N working days ahead (default 2)")
    lp = alerts.add_parser("list", help="the subscriptions and their deliveries by state")
    lp.add_argument("--json", action="store_true", help="print JSON")
    rp = alerts.add_parser("remove", help="remove a subscription (its undelivered alerts are "
                           "cancelled)")
    rp.add_argument("id", help="the subscription id (see `motcua alerts list`)")


def cmd_alerts(args: argparse.Namespace) -> int:
    """Add, list or remove alert subscriptions."""
    from kernel.errors import UserError
    from projections.alerts.store import AlertStore
    from projections.store import views_url

    settings = load_settings()
    url = views_url(settings.database_url)
    if args.alerts_command != "add" and not settings.is_postgres \
            and not Path(url.removeprefix("sqlite:///")).is_file():
        # Listing or removing must not create a store: a missing file is a mistyped setting.
        raise UserError(f"The database {url.removeprefix('sqlite:///')} does not exist: no "
                        "alert subscription was recorded there (check MOTCUA_HOME and "
                        "MOTCUA_DATABASE_URL).")
    if args.alerts_command == "add" and args.secret is not None and args.email:
        raise UserError("--secret signs webhooks; an e-mail subscription has none.")
    store = AlertStore(url)
    try:
        if args.alerts_command == "add":
            agencies = [a.strip() for a in args.agencies.split(",")]
            rules = [r.strip() for r in args.rules.split(",")]
            channel, target = (("webhook", args.webhook) if args.webhook
                               else ("email", args.email))
            sub_id = store.add(agencies, channel, target, args.secret, rules, args.within)
            print(sub_id)
            return 0
        if args.alerts_command == "remove":
            store.remove(args.id)
            print(f"removed subscription {args.id}", file=sys.stderr)
            return 0
        subs = store.listing()
    finally:
        store.close()
    if args.json:
        print_json(subs)
    else:
        print_lines(render.alert_lines(subs))
    return 0
