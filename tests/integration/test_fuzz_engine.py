"""Fuzz (issue 10 "Proof"): hypothesis streams of actions, mutated, into the engine and the
projection, on SQLite and on the real PostgreSQL server.

Mutations (tests/fuzzing.py): NUL anywhere, odd but valid unicode, a field of the wrong JSON type,
70–300 KB of text, integers past 64 bits, nesting past orjson's limit, times outside 1900–2099,
exact repeats, changed repeats, random bytes, a dropped field, the v2 schema; streams reordered and
cut into random batches. Whatever comes in:

- no exception escapes ``Engine.process`` or the timers;
- every message has exactly one outcome — accepted, duplicate, held, or rejected with a reason —
  and each rejected one has a dead letter with that reason; where the contract fixes the reason
  (NUL → ``invalid_field``, time → ``invalid_time``, size → ``too_large``), it is that one;
- the partition's stored position reaches the last offset (never stuck);
- the projection folds and stores every recorded event, and quarantines none.

Each example has its own log id and id prefix, so that examples share one store.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fuzzing import EXAMPLES, LONG, fuzzed_stream, record_stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.app import Engine, Message
from engine.relay import event_message
from motcua.pipeline import engine_at
from projections.fold import Counters
from projections.store import ViewStore, views_url

TOPIC = "motcua.actions"
OUTCOMES = {"accepted", "duplicate", "rejected"}  # held ones are expired at the end


def rows(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Plain SQL on the store, outside the engine's own transactions."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            return c.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(sql.replace("?", "%s"), params).fetchall()


class Store:
    """One engine and one view table set that every example of a test shares."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engine_at(url, hold_seconds=0.0)
        self.views = ViewStore(views_url(url), prefix="fuzz")
        self.examples = itertools.count()

    def close(self) -> None:
        self.views.close()
        self.engine.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                scope="module")
def store(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'm.db'}"
    else:
        import psycopg

        server = request.getfixturevalue("pg_server")
        name = f"motcua_fuzz_{next(itertools.count())}_{id(request)}"
        with psycopg.connect(server.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = server.url(name)
    s = Store(url)
    yield s
    s.close()


def _cut(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    """Batches [lo, hi) of n messages, cut at the drawn places."""
    edges = sorted({0, n, *(c % (n + 1) for c in cuts)})
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data(), cuts=st.lists(st.integers(0, 200), max_size=4))
def test_every_fuzzed_message_gets_exactly_one_outcome_and_no_partition_sticks(
        store: Store, data: st.DataObject, cuts: list[int]) -> None:
    """Random mutated streams: one outcome per message (rejections with their reason and dead
    letter), the contract's reason where it fixes one, the position at the last offset, and
    every recorded event folded and stored by the projection."""
    n = next(store.examples)
    log, prefix = f"fuzz-log-{n}", f"x{n}"
    sent = data.draw(fuzzed_stream(prefix))
    engine = store.engine
    # A fuzzed message may be a tombstone (no value), as Kafka may deliver one: the engine
    # must refuse it as it refuses any other bad action.
    messages = [Message(TOPIC, 0, i, s.raw) for i, s in enumerate(sent)]
    first_event = (engine.app.recorder.max_notification_id() or 0) + 1
    for lo, hi in _cut(len(messages), cuts):
        engine.process(log, messages[lo:hi])  # must not raise
    while engine.expire_holds():  # hold_seconds=0: whatever still waits is settled now
        pass
    engine.record_overdue()

    assert engine.position(log, TOPIC, 0) == len(messages) - 1, "the partition is stuck"
    outcome = {}
    for off, what, reason in rows(store.url, "SELECT off, outcome, reason FROM motcua_intake "
                                  "WHERE log=? AND off >= 0", (log,)):
        assert off not in outcome, f"offset {off} has two outcomes"
        assert what in OUTCOMES, f"offset {off} is {what}"
        assert (what == "rejected") == bool(reason), f"offset {off}: {what} with {reason!r}"
        outcome[off] = (what, reason)
    assert sorted(outcome) == list(range(len(messages))), "a message has no outcome"
    letters = Counter(r for (r,) in rows(store.url, "SELECT reason FROM motcua_dead_letters "
                                         "WHERE log=?", (log,)))
    assert letters == Counter(r for w, r in outcome.values() if w == "rejected")
    for off, s in enumerate(sent):
        if s.must_reject is not None:
            assert outcome[off] == ("rejected", s.must_reject), (s.what, outcome[off])
    stats = Counter(f"sent:{s.what}" for s in sent)
    stats.update(f"outcome:{w}" if w != "rejected" else f"rejected:{r}"
                 for w, r in outcome.values())
    record_stats(f"engine-{store.url.split(':')[0]}", {"messages": len(sent),
                                                       "batches": len(_cut(len(sent), cuts)),
                                                       **stats})

    # The projection takes every event this example recorded.
    counters = Counters()
    facts = engine.store.read_facts(first_event, 100_000)
    for row in facts:
        counters.fold(event_message(row)[1])
    store.views.flush(counters, {f"fuzz|{n}": len(facts)})
