"""Issue 11, what the control sheet costs: the fold of a province with handovers against the same
province without them.

The scoring province (``support.SCORING_CFG``: 100 units, 300 procedures, 20,000 dossiers over
2026) is simulated twice with the same seed, once with handovers (the default: 2–4 steps per
dossier, each a ``handed_over`` action, the control sheet in every dossier's facts) and once with
``SimConfig(handovers=False)``; each is recorded by the real engine and turned into the relay's
``motcua.events`` messages (``support.relay_messages``). Both are folded the way the projection
folds them (``orjson.loads`` + ``Counters.fold`` per message), in interleaved rounds in this
process (7 each, ``gc.collect()`` before each), so the machine's load hits both alike.

Target (issue 11): handovers add at most 25 % to the fold's cost per event. Reported beside it:
the cost per dossier (handovers add events: the whole province's fold time over its dossiers),
and the events each province has. The delays query's time is in the replay suite (it needs a
province-year's views): ``test_replay.py::test_delays_province_year``.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from support import SCORING_CFG, check, record, relay_messages

from projections.fold import Counters

HANDOVER_COST_LIMIT = 1.25  # issue 11: per event, with handovers / without


def _fold(msgs: list[bytes]) -> float:
    loads = orjson.loads
    fold = Counters().fold
    t0 = time.perf_counter()
    for raw in msgs:
        fold(loads(raw))
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def without_handovers(fresh_sqlite_url: Callable[[], str]) -> list[bytes]:
    """The scoring province's messages, simulated with ``handovers=False``."""
    return relay_messages(dataclasses.replace(SCORING_CFG, handovers=False), fresh_sqlite_url())


def test_fold_with_handovers_vs_without(benchmark: Any, scoring_province: list[bytes],
                                        without_handovers: list[bytes]) -> None:
    """µs per event (decode + fold) of the province with handovers / without: <= 1.25."""
    benchmark.group = "accountability: fold"
    with_h, without = scoring_province, without_handovers
    t_with: list[float] = []
    t_without: list[float] = []

    def pair() -> None:
        gc.collect()
        t_without.append(_fold(without))
        gc.collect()
        t_with.append(_fold(with_h))

    load_before = os.getloadavg()[0]
    benchmark.pedantic(pair, rounds=7, warmup_rounds=1, iterations=1)
    per_event_with = min(t_with) / len(with_h) * 1e6
    per_event_without = min(t_without) / len(without) * 1e6
    ratio = per_event_with / per_event_without
    per_round = sorted((w / len(with_h)) / (o / len(without))
                       for w, o in zip(t_with, t_without, strict=True))
    per_dossier = min(t_with) / min(t_without)
    ok = ratio <= HANDOVER_COST_LIMIT
    loads = f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    record(benchmark, "handovers", "fold_us_per_event_with_handovers", per_event_with,
           "µs/event", note=f"best of 7; {len(with_h):,} events (decode + Counters.fold)")
    record(benchmark, "handovers", "fold_us_per_event_without_handovers", per_event_without,
           "µs/event", note=f"best of 7; {len(without):,} events; SimConfig(handovers=False)")
    record(benchmark, "handovers", "fold_cost_per_event_ratio", ratio, "x without",
           target=f"<= {HANDOVER_COST_LIMIT}", passed=ok,
           note=f"best / best; per round {per_round[0]:.3f}..{per_round[-1]:.3f}; {loads}")
    record(benchmark, "handovers", "fold_cost_per_dossier_ratio", per_dossier, "x without",
           note=f"the whole province's fold, 20,000 dossiers each: {len(with_h) / len(without):.2f}"
                "× the events")
    check(ok, f"handovers make the fold {ratio:.2f}× as costly per event (limit "
              f"{HANDOVER_COST_LIMIT})")
