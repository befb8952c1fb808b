"""Suites 2 and 3: the hot scoring path (fold) and the scorecard query.

2. Target (issue 14; was 1/3): the fold loop (orjson decode + ``Counters.fold``) runs at >= 0.4
   of the events/s of a bare loop that only decodes the same messages with orjson and
   increments one dict counter.
   Both loops run on the same bytes, interleaved round by round in the same process, so the
   machine's load hits both alike; the ratio is ASSERTED (the one default hard check). The fold
   runs with the garbage collector as the projection's process sets it (``support.served_gc``:
   the fold keeps every dossier's facts, and Python's default thresholds spend 15–20 % of the
   loop walking them); its ratio with Python's default settings is reported beside it.
3. Target: ``scorecard()`` for the province (100 units × 12 months) over the year < 20 ms.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from support import SCORING_CFG, check, record, served_gc

from projections.fold import Counters
from projections.periods import parse_period
from projections.ruleset import Ruleset
from projections.views import Tree, scorecard

FOLD_RATIO_TARGET = 0.4
SCORECARD_TARGET_MS = 20.0
# The view's end: after the simulated year, so every month is in the view.
NOW = datetime.fromisoformat("2026-12-31T23:59:59+07:00")


def _bare(msgs: list[bytes]) -> float:
    loads = orjson.loads
    counts = {"events": 0}
    t0 = time.perf_counter()
    for raw in msgs:
        ev = loads(raw)  # noqa: F841 - decoding is the work
        counts["events"] += 1
    return time.perf_counter() - t0


def _fold(msgs: list[bytes]) -> tuple[float, Counters]:
    loads = orjson.loads
    counters = Counters()
    fold = counters.fold
    t0 = time.perf_counter()
    for raw in msgs:
        fold(loads(raw))
    return time.perf_counter() - t0, counters


def test_fold_vs_bare_decode(benchmark: Any, scoring_province: list[bytes]) -> None:
    """Suite 2: events/s of the fold loop and of the bare decode loop, and their ratio."""
    benchmark.group = "scoring: fold"
    msgs = scoring_province
    bare_t: list[float] = []
    fold_t: list[float] = []
    default_t: list[float] = []

    def pair() -> None:
        gc.collect()
        bare_t.append(_bare(msgs))
        gc.collect()
        default_t.append(_fold(msgs)[0])
        with served_gc():
            gc.collect()
            fold_t.append(_fold(msgs)[0])

    load_before = os.getloadavg()[0]
    benchmark.pedantic(pair, rounds=7, warmup_rounds=1, iterations=1)
    loads = f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    n = len(msgs)
    per_round = sorted(b / f for b, f in zip(bare_t, fold_t, strict=True))
    ratio_best = min(bare_t) / min(fold_t)
    ratio_median = statistics.median(per_round)
    record(benchmark, "fold", "bare_decode_events_per_s", n / min(bare_t), "events/s",
           note=f"best of 7; {n:,} events")
    record(benchmark, "fold", "fold_events_per_s", n / min(fold_t), "events/s",
           note="decode + Counters.fold, best of 7, the served GC settings")
    record(benchmark, "fold", "fold_ratio_best", ratio_best, "x bare",
           target=f">= {FOLD_RATIO_TARGET}", passed=ratio_best >= FOLD_RATIO_TARGET,
           note=f"best fold round / best bare round (asserted); {loads}")
    record(benchmark, "fold", "fold_ratio_median_round", ratio_median, "x bare",
           target=f">= {FOLD_RATIO_TARGET}", passed=ratio_median >= FOLD_RATIO_TARGET,
           note=f"median of per-round ratios; range {per_round[0]:.3f}..{per_round[-1]:.3f}")
    record(benchmark, "fold", "fold_us_per_event", min(fold_t) / n * 1e6, "µs/event")
    record(benchmark, "fold", "fold_ratio_best_default_gc", min(bare_t) / min(default_t),
           "x bare", note="the same fold with Python's default GC settings (reported); "
           f"{n / min(default_t):,.0f} events/s")
    assert ratio_best >= FOLD_RATIO_TARGET, (
        f"fold runs at {ratio_best:.3f} of the bare decode loop (target >= "
        f"{FOLD_RATIO_TARGET}): "
        f"{n / min(fold_t):,.0f} vs {n / min(bare_t):,.0f} events/s")


@pytest.fixture(scope="module")
def year_counters(scoring_province: list[bytes]) -> Counters:
    _, counters = _fold(scoring_province)
    counters.clear_dirty()
    return counters


def test_scorecard_province_year(benchmark: Any, year_counters: Counters,
                                 ruleset: Ruleset) -> None:
    """Suite 3: the province's scorecard over 2026, tree built per call (as the API does)."""
    benchmark.group = "scoring: query"
    c = year_counters
    root = SCORING_CFG.province_id
    units = [a for a, e in c.agencies.items() if e.get("parent_id") == root]
    months = {m for _, m in c.cells}
    cells = sum(1 for a, m in c.cells if a in set(units))
    vectors = sum(len(v) for v in c.procs.values())
    assert len(units) == 100 and len(months) == 12, (len(units), sorted(months))
    period = parse_period("2026")
    card = scorecard(c, ruleset, root, period, NOW)
    assert card["agency_id"] == root and card["total"] > 0

    benchmark.pedantic(scorecard, args=(c, ruleset, root, period, NOW), rounds=60,
                       warmup_rounds=3, iterations=1)
    s = benchmark.stats.stats
    median_ms, best_ms = s.median * 1000, s.min * 1000
    ok = median_ms < SCORECARD_TARGET_MS
    shape = (f"{len(units)} units, {cells} unit-month cells, {vectors:,} procedure vectors, "
             f"{len(c.procedures)} procedures")
    record(benchmark, "scorecard", "scorecard_province_year_ms_median", median_ms, "ms",
           target=f"< {SCORECARD_TARGET_MS:g}", passed=ok, note=f"60 calls; {shape}")
    record(benchmark, "scorecard", "scorecard_province_year_ms_best", best_ms, "ms")
    record(benchmark, "scorecard", "scorecard_province_year_ms_max", s.max * 1000, "ms")
    check(ok, f"scorecard median {median_ms:.1f} ms >= {SCORECARD_TARGET_MS} ms")


def test_scorecard_tree_prebuilt(benchmark: Any, year_counters: Counters,
                                 ruleset: Ruleset) -> None:
    """The same query with the agency tree built once (what a ranking does per agency)."""
    benchmark.group = "scoring: query"
    c = year_counters
    tree = Tree.build(c)
    period = parse_period("2026")
    benchmark.pedantic(scorecard, args=(c, ruleset, SCORING_CFG.province_id, period, NOW),
                       kwargs={"tree": tree}, rounds=60, warmup_rounds=3, iterations=1)
    record(benchmark, "scorecard", "scorecard_prebuilt_tree_ms_median",
           benchmark.stats.stats.median * 1000, "ms")
