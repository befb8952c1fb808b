"""The alerting role's tables: subscriptions, the open subjects it follows (with its own
positions, written in the same transaction), and the outbox of deliveries.

They live beside the views (``views_url``), SQLite or PostgreSQL through ``kernel.db``.

- ``alert_subscriptions``: id, agencies (JSON), channel (``webhook``/``email``), target, secret,
  rules (JSON), within, created_at, dead_at (set once deliveries failed for ``dead_after``).
- ``alert_subjects``: (kind, id) → agency, facts, ``next_at`` (when its alerts must be decided
  again; NULL: not until its facts change) and ``seen`` (when its last event was recorded).
- ``alert_positions``: ``pos|P`` and ``off|LOG|P`` per events partition, as the projection's.
- ``alert_outbox``: one row per alert, keyed by its ``alert_id`` (inserted once: a decision
  taken again changes nothing), with its body, state (``pending``, ``delivered``, ``dead``,
  ``cancelled``), attempts, ``next_at`` (the next try; a try in flight holds a lease), the first
  try, the last error and when it was delivered.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from kernel.db import Database
from kernel.errors import UserError
from kernel.grants import has_control_character, scope_entry_problem
from projections.alerts.rules import RULES, Decision, Subscription, payload

PENDING, DELIVERED, DEAD, CANCELLED = "pending", "delivered", "dead", "cancelled"
CHANNELS = ("webhook", "email")


class UnknownSubscriptionError(UserError):
    pass


@dataclass(frozen=True)
class Target:
    """Where one subscription's alerts go."""

    id: str
    channel: str
    target: str
    secret: str | None
    dead: bool


@dataclass(frozen=True)
class Pending:
    """One alert to try to deliver now."""

    alert_id: str
    subscription: str
    body: bytes
    attempts: int
    first_try: float | None
    created_at: float


def check_subscription(agencies: Sequence[str], channel: str, target: str,
                       rules: Sequence[str], within: int) -> None:
    """Refuse a subscription a user got wrong, in one sentence naming the bad input."""
    if not agencies:
        raise UserError("A subscription needs at least one agency, e.g. H15,H15.3.")
    for a in agencies:
        if (problem := scope_entry_problem(a)) is not None:
            raise UserError(f"Agency {a!r} is not an agency id ({problem}); agencies are comma "
                            "separated, e.g. H15,H15.3.")
    if channel not in CHANNELS:
        raise UserError(f"Channel {channel!r} is not one of {', '.join(CHANNELS)}.")
    if channel == "webhook":
        _check_webhook(target)
    elif "@" not in target.strip("@") or any(c.isspace() for c in target):
        raise UserError(f"E-mail address {target!r} is not an address like name@example.vn.")
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise UserError(f"Rule {(bad or [''])[0]!r} is not one of {', '.join(RULES)}.")
    if not 0 <= within <= 366:
        raise UserError(f"Within {within} is not a whole number of working days from 0 to 366.")


def _check_webhook(target: str) -> None:
    """A URL the sender can deliver to (``urllib.request``): http(s), a host, a port if any
    from 1 to 65535, no user name or password (not sent), no space or control character."""
    bad = f"Webhook {target!r} is not an http:// or https:// URL"
    if " " in target or has_control_character(target):
        raise UserError(f"{bad} (it has a space or a control character).")
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError as e:  # a bad bracketed host, a port that is not a number from 0 to 65535
        raise UserError(f"{bad} ({e}).") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UserError(f"{bad}.")
    if port == 0:
        raise UserError(f"{bad} (port 0 cannot be called).")
    if parts.username is not None or parts.password is not None:
        raise UserError(f"Webhook {target!r} has a user name or password, which deliveries do "
                        "not send; use the subscription's secret (deliveries are signed).")


class AlertStore:
    """The alerting tables on one connection (threads take turns, ``kernel.db``)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self._create()

    def close(self) -> None:
        self.db.close()

    def _create(self) -> None:
        blob = "BYTEA" if self.db.is_pg else "BLOB"
        real = "DOUBLE PRECISION" if self.db.is_pg else "REAL"
        with self.db.tx() as c:
            if self.db.is_pg:
                c.execute("SELECT pg_advisory_xact_lock(7660003)")
            c.execute("CREATE TABLE IF NOT EXISTS alert_subscriptions (id TEXT PRIMARY KEY, "
                      "agencies TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL, "
                      "secret TEXT, rules TEXT NOT NULL, within INTEGER NOT NULL, "
                      "created_at TEXT NOT NULL, dead_at TEXT)")
            c.execute("CREATE TABLE IF NOT EXISTS alert_subjects (kind TEXT NOT NULL, id TEXT "
                      f"NOT NULL, agency TEXT NOT NULL, facts {blob} NOT NULL, next_at BIGINT, "
                      f"seen {real}, PRIMARY KEY (kind, id))")
            c.execute("CREATE INDEX IF NOT EXISTS alert_subjects_next ON alert_subjects "
                      "(next_at)")
            c.execute("CREATE TABLE IF NOT EXISTS alert_positions (name TEXT PRIMARY KEY, "
                      "value BIGINT NOT NULL)")
            c.execute("CREATE TABLE IF NOT EXISTS alert_outbox (alert_id TEXT PRIMARY KEY, "
                      "subscription TEXT NOT NULL, rule TEXT NOT NULL, subject TEXT NOT NULL, "
                      f"body {blob} NOT NULL, created_at {real} NOT NULL, state TEXT NOT NULL, "
                      f"attempts INTEGER NOT NULL DEFAULT 0, next_at {real} NOT NULL, "
                      f"first_try {real}, last_error TEXT, delivered_at {real})")
            c.execute("CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox "
                      "(state, next_at)")

    def _q(self, sql: str) -> str:
        return self.db.q(sql)

    # ----- subscriptions -------------------------------------------------------------------

    def add(self, agencies: Sequence[str], channel: str, target: str, secret: str | None,
            rules: Sequence[str] = RULES, within: int = 2) -> str:
        """A new subscription's id; every followed subject is decided again for it."""
        check_subscription(agencies, channel, target, rules, within)
        rules = list(dict.fromkeys(rules))  # each rule once, in the order given
        sid = "sub-" + secrets.token_hex(6)
        with self.db.tx() as c:
            c.execute(self._q("INSERT INTO alert_subscriptions (id, agencies, channel, target, "
                              "secret, rules, within, created_at) VALUES (?,?,?,?,?,?,?,?)"),
                      (sid, orjson.dumps(list(agencies)).decode(), channel, target, secret,
                       orjson.dumps(list(rules)).decode(), within,
                       datetime.now(UTC).isoformat(timespec="seconds")))
            c.execute("UPDATE alert_subjects SET next_at = 0")
        return sid

    def remove(self, sub_id: str) -> None:
        """Remove a subscription; its alerts not delivered yet are cancelled."""
        with self.db.tx() as c:
            c.execute(self._q("DELETE FROM alert_subscriptions WHERE id=?"), (sub_id,))
            if c.rowcount == 0:
                raise UnknownSubscriptionError(f"Subscription {sub_id!r} does not exist "
                                               "(see `motcua alerts list`).")
            c.execute(self._q("UPDATE alert_outbox SET state=? WHERE subscription=? AND "
                              "state=?"), (CANCELLED, sub_id, PENDING))

    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions (not dead) as the rules read them."""
        with self.db.tx(write=False) as c:
            c.execute("SELECT id, agencies, rules, within FROM alert_subscriptions "
                      "WHERE dead_at IS NULL ORDER BY id")
            return [Subscription(r[0], tuple(orjson.loads(r[1])), tuple(orjson.loads(r[2])),
                                 int(r[3])) for r in c.fetchall()]

    def target(self, sub_id: str) -> Target | None:
        with self.db.tx(write=False) as c:
            c.execute(self._q("SELECT id, channel, target, secret, dead_at FROM "
                              "alert_subscriptions WHERE id=?"), (sub_id,))
            r = c.fetchone()
        return None if r is None else Target(r[0], r[1], r[2], r[3], r[4] is not None)

    def listing(self) -> list[dict[str, Any]]:
        """Every subscription with its deliveries by state (``alerts list``); no secrets."""
        with self.db.tx(write=False) as c:
            c.execute("SELECT id, agencies, channel, target, rules, within, created_at, "
                      "dead_at, secret FROM alert_subscriptions ORDER BY created_at, id")
            subs = c.fetchall()
            c.execute("SELECT subscription, state, count(*), max(last_error) FROM alert_outbox "
                      "GROUP BY subscription, state")
            counts: dict[str, dict[str, int]] = {}
            errors: dict[str, str] = {}
            for sub, state, n, err in c.fetchall():
                counts.setdefault(sub, {})[state] = int(n)
                if err and state == PENDING:
                    errors[sub] = err
        return [{"id": r[0], "agencies": orjson.loads(r[1]), "channel": r[2],
                 "target": r[3], "rules": orjson.loads(r[4]), "within": r[5],
                 "created_at": r[6], "state": "dead" if r[7] else "active", "dead_at": r[7],
                 "signed": bool(r[8]),
                 "deliveries": {s: counts.get(r[0], {}).get(s, 0)
                                for s in (PENDING, DELIVERED, DEAD, CANCELLED)},
                 "last_error": errors.get(r[0])} for r in subs]

    # ----- subjects and positions ----------------------------------------------------------

    def positions(self) -> dict[str, int]:
        with self.db.tx(write=False) as c:
            c.execute("SELECT name, value FROM alert_positions")
            return {r[0]: int(r[1]) for r in c.fetchall()}

    def follow(self, upserts: Iterable[tuple[str, str, str, list[Any], float]],
               drops: Iterable[tuple[str, str]], positions: dict[str, int]) -> None:
        """Record subjects' latest facts (due to be decided now), forget finished ones, and
        move the positions: one transaction."""
        ups = [(k, i, a, orjson.dumps(f), 0, seen) for k, i, a, f, seen in upserts]
        with self.db.tx() as c:
            if ups:
                c.executemany(self._q(
                    "INSERT INTO alert_subjects (kind, id, agency, facts, next_at, seen) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (kind, id) DO UPDATE SET "
                    "agency=excluded.agency, facts=excluded.facts, next_at=excluded.next_at, "
                    "seen=excluded.seen"), ups)
            gone = list(drops)
            if gone:
                c.executemany(self._q("DELETE FROM alert_subjects WHERE kind=? AND id=?"), gone)
            if positions:
                c.executemany(self._q(
                    "INSERT INTO alert_positions (name, value) VALUES (?,?) ON CONFLICT (name) "
                    "DO UPDATE SET value=excluded.value"), list(positions.items()))

    def due_subjects(self, now_s: int, limit: int = 5000) -> list[tuple[str, str, list[Any],
                                                                       float | None]]:
        """(kind, id, facts, seen) of the subjects whose alerts must be decided at ``now_s``."""
        with self.db.tx(write=False) as c:
            c.execute(self._q("SELECT kind, id, facts, seen FROM alert_subjects WHERE next_at "
                              "IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?"),
                      (now_s, limit))
            return [(r[0], r[1], orjson.loads(bytes(r[2])), r[3]) for r in c.fetchall()]

    def decided(self, decisions: Sequence[Decision], next_at: dict[tuple[str, str], int | None],
                now: float) -> list[str]:
        """Put new alerts in the outbox (an alert id already there is left as it is) and set
        when each subject is to be decided again: one transaction. The rules of the alerts
        added."""
        added: list[str] = []
        with self.db.tx() as c:
            for d in decisions:
                c.execute(self._q(
                    "INSERT INTO alert_outbox (alert_id, subscription, rule, subject, body, "
                    "created_at, state, attempts, next_at) VALUES (?,?,?,?,?,?,?,0,?) "
                    "ON CONFLICT (alert_id) DO NOTHING"),
                    (d.alert_id, d.subscription, d.rule, f"{d.subject.kind}:{d.subject.sid}",
                     orjson.dumps(payload(d, now)), now, PENDING, now))
                if c.rowcount == 1:
                    added.append(d.rule)
            c.executemany(self._q("UPDATE alert_subjects SET next_at=? WHERE kind=? AND id=?"),
                          [(n, k, i) for (k, i), n in next_at.items()])
        return added

    # ----- the outbox ----------------------------------------------------------------------

    def claim(self, now: float, lease: float, limit: int = 50) -> list[Pending]:
        """Alerts due for a try at ``now``, each leased to this caller until ``now + lease``
        (a compare-and-set: two dispatchers never take the same try)."""
        with self.db.tx() as c:
            c.execute(self._q(
                "SELECT o.alert_id, o.subscription, o.body, o.attempts, o.first_try, "
                "o.created_at, o.next_at FROM alert_outbox o JOIN alert_subscriptions s ON "
                "s.id = o.subscription WHERE o.state=? AND o.next_at <= ? AND s.dead_at IS NULL "
                "ORDER BY o.next_at LIMIT ?"), (PENDING, now, limit))
            rows = c.fetchall()
            out = []
            for r in rows:
                c.execute(self._q("UPDATE alert_outbox SET next_at=?, attempts=attempts+1, "
                                  "first_try=COALESCE(first_try, ?) WHERE alert_id=? AND "
                                  "next_at=? AND state=?"),
                          (now + lease, now, r[0], r[6], PENDING))
                if c.rowcount == 1:
                    out.append(Pending(r[0], r[1], bytes(r[2]), int(r[3]) + 1,
                                       r[4] if r[4] is not None else now, float(r[5])))
        return out

    def delivered(self, alert_id: str, now: float) -> None:
        with self.db.tx() as c:
            c.execute(self._q("UPDATE alert_outbox SET state=?, delivered_at=?, last_error=NULL "
                              "WHERE alert_id=?"), (DELIVERED, now, alert_id))

    def failed(self, alert_id: str, error: str, retry_at: float) -> None:
        with self.db.tx() as c:
            c.execute(self._q("UPDATE alert_outbox SET next_at=?, last_error=? WHERE "
                              "alert_id=? AND state=?"), (retry_at, error[:500], alert_id,
                                                          PENDING))

    def dead(self, alert_id: str, sub_id: str, error: str, now: float) -> None:
        """Give up an alert after failing for long enough, and flag its subscription dead."""
        with self.db.tx() as c:
            c.execute(self._q("UPDATE alert_outbox SET state=?, last_error=? WHERE alert_id=?"),
                      (DEAD, error[:500], alert_id))
            c.execute(self._q("UPDATE alert_subscriptions SET dead_at=? WHERE id=? AND dead_at "
                              "IS NULL"),
                      (datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"), sub_id))

    def outbox(self) -> list[dict[str, Any]]:
        """Every alert with its delivery state (tests, ``alerts list --deliveries``)."""
        with self.db.tx(write=False) as c:
            c.execute("SELECT alert_id, subscription, rule, subject, state, attempts, "
                      "last_error, body FROM alert_outbox ORDER BY created_at, alert_id")
            return [{"alert_id": r[0], "subscription": r[1], "rule": r[2], "subject": r[3],
                     "state": r[4], "attempts": r[5], "last_error": r[6],
                     "body": orjson.loads(bytes(r[7]))} for r in c.fetchall()]
