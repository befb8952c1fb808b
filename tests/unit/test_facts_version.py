"""A store written before the facts cache existed (events, no ``facts_version``) is refused by
the engine until ``motcua replay --rederive`` has derived the cache (docs/schema-evolution.md,
"Events without index facts")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from test_delays import P1_STEPS, catalog, dossier

from engine.app import FactsVersionError, Message
from motcua.pipeline import engine_at
from projections.rederive import rederive


def test_events_without_a_facts_version_refuse_to_start_until_rederive(tmp_path: Path) -> None:
    """Recorded, then the version row removed as an older build left it: the engine refuses
    in one sentence naming ``replay --rederive``; after rederive it starts."""
    db = tmp_path / "m.db"
    url = f"sqlite:///{db}"
    engine = engine_at(url, record_uncatalogued=True)
    try:
        stream = catalog() + dossier("D1", "P1", "12T17:00", *P1_STEPS)
        engine.process("log", [Message("motcua.actions", 0, i, orjson.dumps(a))
                               for i, a in enumerate(stream)])
        events = int(engine.store.last_fact())
        assert events == len(stream)
    finally:
        engine.close()
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM motcua_meta WHERE name = 'facts_version'")
    with pytest.raises(FactsVersionError, match="without derived facts.*replay --rederive"):
        engine_at(url)
    engine = engine_at(url, check_facts=False)
    try:
        assert rederive(engine) == events
    finally:
        engine.close()
    engine_at(url).close()
