"""The projection's memory model (README, "How it works"), measured with tracemalloc.

A simulated province is recorded by the real engine; its ``motcua.events`` messages are folded
the way the projection folds them (decoded one by one, then a flush clears what it keeps of the
subjects folded since the last one). What the fold's ``Counters`` still hold is measured on
copies of the province that grow one thing at a time, each copy a new subject with the same
facts history under another id:

- 4× the dossiers in the same agencies, months and procedures: only the counts grow;
- 4× the procedures used: one vector more per (agency, month, procedure used);
- 4× the agencies (or the months): four times everything but the catalog.

The README's figures are the constants below. Memory is deterministic on one interpreter, so
it is asserted; time is not (benchmarks/).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson
import pytest

from engine.app import Message
from engine.relay import event_message
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.fold import Counters

# The README's memory model: bytes per (agency, month, procedure used) and per (agency, month)
# with its open-dossier histogram.
PER_PROCEDURE_USED = 512
PER_AGENCY_MONTH = 900
# ... and per (agency, month, unit or official) with a late dossier: its delays row.
PER_DELAYS_ROW = 300
PROVINCE = SimConfig(agencies=5, procedures=8, dossiers=300, seed=3, start=date(2026, 1, 5),
                     days=90)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The decoded ``motcua.events`` messages of the province, as the relay publishes them."""
    url = f"sqlite:///{tmp_path_factory.mktemp('memory') / 'm.db'}"
    engine = engine_at(url, hold_seconds=3600)
    try:
        lines = [orjson.dumps(a) for a in generate(PROVINCE)]
        for i in range(0, len(lines), 5000):
            engine.process("log", [Message("motcua.actions", 0, i + j, line)
                                   for j, line in enumerate(lines[i:i + 5000])])
        out: list[dict[str, Any]] = []
        pos = 0
        while rows := engine.store.read_facts(pos + 1, 10_000):
            out += [event_message(r)[1] for r in rows]
            pos = rows[-1][0]
        yield out
    finally:
        engine.close()


def copies(events: list[dict[str, Any]], k: int, *, rename: str | None = None) -> list[bytes]:
    """The catalog once, then every subject's events ``k`` times, each copy a new subject; with
    ``rename`` ("agency", "month" or "procedure") each copy also gets its own of those."""
    out = [e for e in events if e["kind"] in ("procedure", "agency")]
    for i in range(k):
        for e in events:
            if e["kind"] not in ("dossier", "feedback"):
                continue
            copy = {**e, "sid": f"{e['sid']}#{i}"}
            for key in ("prev", "facts"):
                if e[key] is not None:
                    copy[key] = renamed(e[key], e["kind"], i, rename)
            out.append(copy)
    return [orjson.dumps(e) for e in out]


def renamed(facts: list[Any], kind: str, i: int, what: str | None) -> list[Any]:
    f = list(facts)
    if what == "agency":
        f[0] = f"{f[0]}#{i}"
    elif what == "month":
        f[1] = f"{int(f[1][:4]) + 10 * i}{f[1][4:]}"
    elif what == "procedure" and kind == "dossier":
        f[2] = f"{f[2]}#{i}"
    return f


_held: dict[tuple[int, str | None], tuple[int, Counters]] = {}


def held(events: list[dict[str, Any]], k: int, rename: str | None = None) -> tuple[int, Counters]:
    """Bytes the counters hold after folding ``copies(events, k, rename=rename)`` (decoded one
    by one, as the projection does) and a flush; without the fold's memos (filled first)."""
    key = (k, rename)
    if key not in _held:
        messages = copies(events, k, rename=rename)
        # The fold's memos (transitions, shared by every Counters of a layout, and bit
        # positions) are filled first, so what is measured is only what the counters hold,
        # whatever other tests left in the memos.
        warm = Counters()
        for m in messages:
            warm.fold(orjson.loads(m))
        del warm
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            counters = Counters()
            for m in messages:
                counters.fold(orjson.loads(m))
            counters.clear_dirty()  # a flush: the subjects' facts go to the view store
            gc.collect()
            _held[key] = (tracemalloc.get_traced_memory()[0] - before, counters)
        finally:
            tracemalloc.stop()
    return _held[key]


def vectors(c: Counters) -> int:
    return sum(len(v) for v in c.procs.values())


def test_four_times_the_dossiers_in_the_same_units_add_only_bigger_counts(
    events: list[dict[str, Any]],
) -> None:
    """Four copies of every dossier (same agencies, months, procedures, due days): the counters
    keep the same cells and vectors and grow by under 5 % (counts past 256 are boxed ints)."""
    small, s = held(events, 1)
    large, big = held(events, 4)
    assert (len(big.cells), vectors(big)) == (len(s.cells), vectors(s)) and vectors(s) > 0
    assert sum(1 for e in events if e["kind"] == "dossier" and e["prev"] is None) == 300
    assert large <= small * 1.05, (small, large)


def test_memory_grows_by_half_a_kilobyte_per_procedure_used(
    events: list[dict[str, Any]],
) -> None:
    """Four times the procedures used by the same dossiers: the growth divided by the new
    (agency, month, procedure) vectors is the README's 0.5 KB, within a fifth."""
    one, c1 = held(events, 4)
    four, c4 = held(events, 4, "procedure")
    assert len(c4.cells) == len(c1.cells) and vectors(c4) == 4 * vectors(c1)
    per_vector = (four - one) / (vectors(c4) - vectors(c1))
    assert 0.8 * PER_PROCEDURE_USED <= per_vector <= 1.2 * PER_PROCEDURE_USED, per_vector


@pytest.mark.parametrize("what", ["agency", "month"])
def test_memory_is_proportional_to_agencies_and_months(events: list[dict[str, Any]],
                                                      what: str) -> None:
    """Four times the agencies (or months): four times the memory beyond the catalog, and
    the README's model (0.9 KB per agency-month, 0.5 KB per procedure used, 0.3 KB per delays
    row) within a quarter."""
    catalog, _ = held(events, 0)
    one, c1 = held(events, 1)
    four, c4 = held(events, 4, what)
    assert len(c4.cells) == 4 * len(c1.cells) and vectors(c4) == 4 * vectors(c1)
    assert 3.8 <= (four - catalog) / (one - catalog) <= 4.2, (catalog, one, four)
    rows = sum(len(d) for d in c1.delays.values())
    assert rows > 0
    model = (PER_AGENCY_MONTH * len(c1.cells) + PER_PROCEDURE_USED * vectors(c1)
             + PER_DELAYS_ROW * rows)
    assert 0.75 * model <= one - catalog <= 1.25 * model, (one - catalog, model)


def test_the_fold_memo_of_transitions_is_bounded(events: list[dict[str, Any]]) -> None:
    """The fold's memo of transitions between facts is emptied past 65,536 entries, so it
    never holds more whatever the stream."""
    step = next(e for e in events if e["kind"] == "dossier" and e["prev"] is not None
                and e["prev"][:3] == e["facts"][:3] and e["prev"][3] != e["facts"][3])
    c = Counters()
    c._trans.clear()  # shared by every Counters of the layout: other tests filled it
    c._trans.update({-k: ((), (), None) for k in range(1, 65_538)})  # other transitions
    c.fold_dossier(step["sid"], None, step["prev"])
    c.fold_dossier(step["sid"], step["prev"], step["facts"])  # a transition not memoized yet
    assert len(c._trans) == 1


def test_a_flush_leaves_no_dossier_in_memory(events: list[dict[str, Any]]) -> None:
    """Between flushes the projection keeps the facts of the subjects it folded (for the view
    store's late lists); a flush lets them go."""
    c = Counters()
    for e in events:
        c.fold(e)
    assert len(c.dossiers) == 300
    c.clear_dirty()
    assert c.dossiers == {} and c.feedback == {}


