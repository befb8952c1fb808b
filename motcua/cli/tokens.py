"""``motcua tokens``: the bearer tokens of the sources that POST actions to the HTTP bridge
(write tokens) and of the readers of official-level data over HTTP (read tokens)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from motcua.cli import render
from motcua.cli.common import (
    Parser,
    Subparsers,
    add_command,
    load_settings,
    print_json,
    print_lines,
)

if TYPE_CHECKING:
    from kernel.grants import Grant


def register(sub: Subparsers) -> None:
    """Add ``tokens`` and its actions ``add``, ``rotate``, ``revoke`` and ``list``."""
    sp = add_command(sub, "tokens", "Bearer tokens: write tokens of the sources that POST "
                     "actions to the HTTP bridge (and scope their Kafka actions), read tokens for "
                     "official-level data over HTTP.", cmd_tokens)
    tokens = sp.add_subparsers(dest="tokens_command", metavar="ACTION", required=True,
                               parser_class=Parser)
    tp = tokens.add_parser("add", help="issue a source's token (printed once)")
    tp.add_argument("source", help="the source name its actions carry, e.g. daklak-igate")
    tp.add_argument("--agencies", required=True, help="agencies it may report for (or read), "
                    "comma separated; H15 also covers its units (H15.3, H15.3.7)")
    tp.add_argument("--read", action="store_true", help="a read token (official-level data "
                    "over HTTP) instead of a write token; it cannot send actions")
    tp = tokens.add_parser("rotate", help="replace a source's token (the old one stops "
                           "working; the new one is printed once)")
    tp.add_argument("source", help="the source whose token is replaced, as `tokens list` "
                    "shows it")
    tp = tokens.add_parser("revoke", help="delete a source's token")
    tp.add_argument("source", help="the source whose token is deleted, as `tokens list` "
                    "shows it")
    tp = tokens.add_parser("list", help="the sources with a token, its kind and their agencies")
    tp.add_argument("--json", action="store_true", help="print JSON")


def cmd_tokens(args: argparse.Namespace) -> int:
    """Add, rotate, revoke or list the sources' tokens; a new token is printed once."""
    from producers.tokens import TokenStore

    # Only issuing a token may create the database; the other actions need the real one.
    store = TokenStore(load_settings().database_url, create=args.tokens_command == "add")
    try:
        if args.tokens_command == "list":
            _list(store.grants(), args.json)
            return 0
        if args.tokens_command == "revoke":
            store.revoke(args.source)
            print(f"revoked the token of {args.source}", file=sys.stderr)
            return 0
        if args.tokens_command == "add":
            token = store.add(args.source, args.agencies, read=args.read)
        else:
            token = store.rotate(args.source)
    finally:
        store.close()
    print(token)
    print(f"the token of {args.source} is shown once: store it now", file=sys.stderr)
    return 0


def _list(grants: list[Grant], as_json: bool) -> None:
    if as_json:
        print_json([{"source": g.source, "kind": g.kind, "agencies": list(g.agencies),
                     "token_id": g.token_id, "created_at": g.created_at,
                     "rotated_at": g.rotated_at} for g in grants])
    elif not grants:
        print("no source has a token; add one with `motcua tokens add SOURCE --agencies H15`",
              file=sys.stderr)
    else:
        print_lines(render.token_lines(grants))
