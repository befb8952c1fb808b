"""The whole scoring pipeline in one process, for tests: actions → engine → events → counters.

No broker: actions go to ``Engine.process`` as messages of one partition, the recorded events are
read back from the store's notification log and turned into ``motcua.events`` messages exactly as
the relay does, and the projection's fold takes them. Tests then ask the real views for counts,
scorecards and late lists.

    p = Pipeline(tmp_path / "m.db")
    p.send([action, ...])
    p.counts("H15", parse_period("2026-10"), now)["ON_TIME"]   # (numerator, denominator)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from engine.app import Message
from engine.relay import event_message
from motcua.pipeline import engine_at
from projections.atrisk import at_risk
from projections.delays import delays
from projections.facts import open_row
from projections.fold import Counters
from projections.layout import DEFAULT_LAYOUT, Layout
from projections.periods import Period
from projections.ruleset import Ruleset, load_ruleset
from projections.views import Tree, counts_for, overdue_list, ranking, scorecard

TOPIC = "motcua.actions"
LOG_ID = "test-log"


class Pipeline:
    """One engine (SQLite file) and one in-memory projection fed from its notification log."""

    def __init__(
        self,
        db_path: str | Path,
        ruleset: Ruleset | str = "portal-2026",
        *,
        hold_seconds: float = 3600.0,
        clock: datetime | None = None,
        layout: Layout = DEFAULT_LAYOUT,
        record_uncatalogued: bool = True,
    ) -> None:
        self.ruleset = load_ruleset(ruleset) if isinstance(ruleset, str) else ruleset
        self.now = clock or datetime.now(UTC)
        # Most streams here name procedures they never publish: record them at once (as
        # MOTCUA_RECORD_UNCATALOGUED=1 does), unless a test looks at the wait for the catalog.
        self.engine = engine_at(f"sqlite:///{db_path}", hold_seconds=hold_seconds,
                                clock=lambda: self.now, record_uncatalogued=record_uncatalogued)
        self.counters = Counters(layout)
        # Last facts of every dossier, by dossier id (the view store keeps only the late ones).
        self.dossier_facts: dict[str, list[Any]] = {}
        self.outcomes: dict[str, int] = {}
        self._offset = 0
        self._pos = 0
        self._sent: dict[tuple[str, str], dict[str, Any]] = {}
        self._applied: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- in ------------------------------------------------------------------------------

    def send(self, actions: Iterable[dict[str, Any] | bytes], batch: int = 1000) -> dict[str, int]:
        """Process actions in batches of one partition, then fold what was recorded."""
        messages: list[Message] = []
        totals: dict[str, int] = {}
        for a in actions:
            raw = a if isinstance(a, bytes) else orjson.dumps(a)
            if isinstance(a, dict):
                self._sent.setdefault((str(a.get("source")), str(a.get("action_id"))), a)
            messages.append(Message(TOPIC, 0, self._offset, raw))
            self._offset += 1
            if len(messages) >= batch:
                _add(totals, self.engine.process(LOG_ID, messages))
                messages = []
        if messages:
            _add(totals, self.engine.process(LOG_ID, messages))
        _add(self.outcomes, totals)
        self.sync()
        return totals

    def expire_holds(self) -> int:
        """Settle every held action as the engine does once its hold has passed (a dossier
        received with a due_at is recorded without its missing procedure; the rest are
        refused), then fold what was recorded."""
        hold, self.engine.hold_seconds = self.engine.hold_seconds, -1.0
        try:
            n = self.engine.expire_holds(self.outcomes)
        finally:
            self.engine.hold_seconds = hold
        self.sync()
        return n

    def record_overdue(self, now: datetime) -> int:
        """Run the engine's deadline watcher as of ``now`` and fold its ``BecameOverdue`` facts."""
        self.now = now
        n = 0
        while True:
            k = self.engine.record_overdue()
            n += k
            if k == 0:
                break
        self.sync()
        return n

    def sync(self) -> int:
        """Fold every event recorded since the last sync, as the projection would (from the
        facts cache, message by message as the relay publishes it)."""
        recorder = self.engine.app.recorder
        n = 0
        while True:
            rows = self.engine.store.read_facts(self._pos + 1, 10_000)
            if not rows:
                return n
            notes = {note.id: note for note in recorder.select_notifications(
                self._pos + 1, 10_000, stop=rows[-1][0])}
            for row in rows:
                _, msg = event_message(row)
                self.counters.fold(msg)
                if msg["kind"] == "dossier":
                    self.dossier_facts[msg["sid"]] = msg["facts"]
                cause = orjson.loads(notes[row[0]].state).get("cause") or {}
                key = (str(cause.get("source")), str(cause.get("action_id")))
                if cause.get("source") not in (None, "motcua"):
                    self._applied.setdefault(key, row[0])
                n += 1
            self._pos = rows[-1][0]

    # ----- out -----------------------------------------------------------------------------

    def accepted(self) -> list[dict[str, Any]]:
        """The sent actions the engine applied, each once, in the order it recorded them."""
        keys = sorted(self._applied, key=self._applied.__getitem__)
        return [self._sent[k] for k in keys if k in self._sent]

    def rejected(self) -> list[dict[str, Any]]:
        """The dead letters: ``reason``, ``akey``, ``message`` and the original bytes."""
        return self.engine.store.dead_letters_after(0, 10**9)

    def counts(self, agency_id: str, period: Period,
               now: datetime) -> dict[str, tuple[int, int]]:
        """Every criterion's (numerator, denominator) from the real views."""
        tree = Tree.build(self.counters)
        counts, _ = counts_for(self.counters, self.ruleset, tree, agency_id, period, now)
        return counts

    def scorecard(self, agency_id: str, period: Period, now: datetime) -> dict[str, Any]:
        return scorecard(self.counters, self.ruleset, agency_id, period, now)

    def ranking(self, period: Period, now: datetime, level: str | None = None) -> dict[str, Any]:
        return ranking(self.counters, self.ruleset, period, now, level=level)

    def overdue(self, agency_id: str, period: Period, now: datetime) -> dict[str, Any]:
        """The late list over this projection's own per-dossier facts (subtree, period months)."""
        tree = Tree.build(self.counters)
        agencies = tree.subtree(agency_id)
        months = set(period.months)
        rows = [(sid, f) for sid, f in sorted(self.dossier_facts.items())
                if f[0] in agencies and f[1] in months]
        return overdue_list(rows, self.counters, self.ruleset, agency_id, period, now)


    def unfinished_late_rows(self, agencies: Iterable[str], months: Iterable[str],
                             before_day: int) -> list[tuple[str, list[Any]]]:
        """As the view store's query: not finished, and late for good or open past due."""
        ags, ms = set(agencies), set(months)
        return [(sid, f) for sid, f in sorted(self.dossier_facts.items())
                if f[0] in ags and f[1] in ms and f[7] < 0
                and (f[4] == 0 or (f[4] == -1 and f[5] < before_day))]

    def delays(self, agency_id: str, period: Period, now: datetime,
               by: str = "unit") -> dict[str, Any]:
        """The delays list from the real fold and the real delays view."""
        return delays(self.counters, self.unfinished_late_rows, self.ruleset, agency_id,
                      period, now, by)  # type: ignore[arg-type]


    def open_rows(self, agencies: Iterable[str], due_by_day: int) -> list[tuple[Any, ...]]:
        """As the view store's query: unfinished, due on or before a day (``OPEN_ROW``s)."""
        ags = set(agencies)
        return [open_row(sid, f) for sid, f in sorted(self.dossier_facts.items())
                if f[0] in ags and f[7] < 0 and f[5] <= due_by_day]

    def at_risk(self, agency_id: str, now: datetime, within: int = 2) -> dict[str, Any]:
        """The at-risk list from the real fold and the real at-risk view."""
        return at_risk(self.counters, self.open_rows, lambda _p: self.ruleset, agency_id,
                       now, within)


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def points(card: dict[str, Any]) -> dict[str, float]:
    """Criterion code → points of a scorecard."""
    return {c["code"]: c["points"] for g in card["groups"] for c in g["criteria"]}


def ratio(card: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Criterion code → (numerator, denominator) of a scorecard."""
    return {c["code"]: (c["numerator"], c["denominator"])
            for g in card["groups"] for c in g["criteria"]}
