"""``motcua replay --rederive``: recompute the facts cache from the domain events.

The facts beside each event (``motcua_facts``) are a cache of what the projections' rules
(``projections.facts``, ``kernel.lifecycle``) make of the domain state after it. When those
rules change, the cache is recomputed for all of history: every subject's events are read back
in order, applied to a fresh aggregate with the domain's own code, and annotated after each, as
the engine did when it recorded them. The new cache replaces the old one in one transaction,
with the new rules' version; the views are then rebuilt from it (``Replayer``).

The engine must not record meanwhile: its facts would be derived by the old rules. Engines of
another rules version refuse to start; a running one is detected by its heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from engine.app import FACTS_VERSION, HEARTBEAT
from engine.intake import KIND_OF_CLASS, recorded_us
from kernel.errors import UserError

Progress = Callable[[int, int], None]


class EngineRunningError(UserError):
    """An engine recorded recently: rederiving now would mix two rules' facts."""


def rederive(engine: Any, *, page: int = 500, progress: Progress | None = None,
             heartbeat_within: float = 5.0) -> int:
    """Recompute every facts row of ``engine``'s store with its annotator; returns how many."""
    store = engine.store
    beat = store.get_position(HEARTBEAT)
    if beat and time.time() - beat < heartbeat_within:
        raise EngineRunningError(
            "An engine is recording into this store (its heartbeat is "
            f"{time.time() - beat:.0f} s old): stop `motcua up`, `engine` and `demo` first.")
    annotate = engine.annotate
    mapper = engine.app.mapper
    total = store.last_fact() or 1
    done = 0
    after = None
    first = True
    while True:
        ids = store.subjects_after(after, page)
        rows: list[tuple[Any, ...]] = []
        agg: Any = None
        current = None
        for pos, oid, _version, topic, state in store.events_of(ids):
            if oid != current:
                agg, current, prev = None, oid, None
            event: Any = mapper.to_domain_event(_stored(oid, _version, topic, state))
            agg = event.mutate(agg)
            facts = annotate(agg)
            rows.append((pos, KIND_OF_CLASS[type(agg)], type(event).__name__, agg.sid,
                         event.at, recorded_us(event.timestamp),
                         None if prev is None else orjson.dumps(prev),
                         None if facts is None else orjson.dumps(facts)))
            prev = facts
        store.write_next_facts(rows, first=first)
        first = False
        done += len(rows)
        if progress is not None:
            progress(done, total)
        if len(ids) < page:
            break
        after = ids[-1]
    store.swap_facts(FACTS_VERSION, engine.facts_version)
    return done


def _stored(oid: Any, version: int, topic: str, state: bytes) -> Any:
    from eventsourcing.persistence import StoredEvent

    return StoredEvent(originator_id=oid, originator_version=version, topic=topic, state=state)
