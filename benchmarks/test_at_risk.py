"""The at-risk list (accountability §5) of a province of 100 units with 20,000 open dossiers.

Target: ``at_risk(…, "H15", now, within=2)`` under 50 ms, store query included. The headline
median is measured with Python's default garbage collector (pytest's process); the same calls
are measured again with the settings every ``motcua`` process serves them with
(``motcua.cli.tune_gc``: freeze what exists, thresholds 500,000/20/100), restored afterwards.

The counters are those of the scoring province (100 units, 300 procedures, 20,000 dossiers over
2026, folded from the real engine's events). The view store's dossiers table is then given
20,000 OPEN dossiers of those units (the facts of the province's dossiers, made unfinished: no
end, judged open), their due times spread as a live province's are: 95 % over the next 20
calendar days, 5 % past due by up to 10 days. ``now`` is Tue 15 Dec 2026 10:00; within 2
working days is Thu 17 Dec.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import SCORING_CFG, check, record, served_gc

from kernel.calendar import VN_TZ, local_date
from motcua.cli import GC_THRESHOLDS
from projections import facts as F
from projections.atrisk import at_risk
from projections.fold import Counters
from projections.ruleset import Ruleset
from projections.store import ViewStore

TARGET_MS = 50.0
NOW = datetime(2026, 12, 15, 10, 0, tzinfo=VN_TZ)
OPEN = 20_000


@pytest.fixture(scope="module")
def open_store(scoring_province: list[bytes], bench_dir: Path) -> tuple[Counters, ViewStore]:
    counters = Counters()
    last: dict[str, list[Any]] = {}
    for raw in scoring_province:
        ev = orjson.loads(raw)
        counters.fold(ev)
        if ev["kind"] == "dossier" and ev["facts"] is not None:
            last[ev["sid"]] = ev["facts"]
    counters.clear_dirty()
    rng = random.Random(12)
    rows: dict[str, list[Any]] = {}
    for sid, f in list(last.items())[:OPEN]:
        d = F.DossierFacts._make(f)
        past = rng.random() < 0.05
        offset = -rng.uniform(60, 10 * 86400) if past else rng.uniform(60, 20 * 86400)
        due = NOW + timedelta(seconds=offset)
        flags = d.flags & ~(F.FINISHED | F.RESOLVED | F.WAITING_ON_APPLICANT)
        rows[sid] = list(d._replace(flags=flags, judged=F.OPEN,
                                    due_day=local_date(due).toordinal(), processing_days=-1,
                                    end_day=-1, due_s=int(due.timestamp()),
                                    sheet=d.sheet or [], attrib=None))
    assert len(rows) == OPEN
    store = ViewStore(f"sqlite:///{bench_dir / 'at-risk-views.db'}")
    counters.dossiers = rows
    store.flush(counters, {"pos|0": 1})
    counters.clear_dirty()
    return counters, store


def test_at_risk_province(benchmark: Any, open_store: tuple[Counters, ViewStore],
                          ruleset: Ruleset) -> None:
    """The province's at-risk list within 2 working days: rows, stakes, store query."""
    benchmark.group = "accountability: at-risk"
    counters, store = open_store
    root = SCORING_CFG.province_id

    def run() -> dict[str, Any]:
        return at_risk(counters, store.open_rows, lambda _p: ruleset, root, NOW, 2)

    out = run()
    assert out["due_soon"] and out["overdue_open"]
    benchmark.pedantic(run, rounds=30, warmup_rounds=2, iterations=1)
    s = benchmark.stats.stats
    median_ms = s.median * 1000
    ok = median_ms < TARGET_MS
    shape = (f"{OPEN:,} open dossiers of 100 units; {len(out['due_soon']):,} due soon and "
             f"{len(out['overdue_open']):,} open past due listed, each with two stakes")
    record(benchmark, "at-risk", "at_risk_province_ms_median", median_ms, "ms",
           target=f"< {TARGET_MS:g}", passed=ok, note=f"30 calls; {shape}")
    record(benchmark, "at-risk", "at_risk_province_ms_max", s.max * 1000, "ms")
    # CPU time of the same calls: what a quiet machine would take (this one is shared).
    cpu = []
    for _ in range(15):
        c0 = time.process_time()
        run()
        cpu.append(time.process_time() - c0)
    cpu.sort()
    record(benchmark, "at-risk", "at_risk_province_cpu_ms_median", cpu[len(cpu) // 2] * 1000,
           "ms", target=f"< {TARGET_MS:g}", passed=cpu[len(cpu) // 2] * 1000 < TARGET_MS,
           note="process CPU time per call (15 calls): the wall time without waiting for a "
                "core on the shared machine")
    served = _served_gc_ms(run)
    record(benchmark, "at-risk", "at_risk_province_served_gc_ms_median", statistics.median(served),
           "ms", target=f"< {TARGET_MS:g}", passed=statistics.median(served) < TARGET_MS,
           note=f"30 calls with the motcua process's GC settings (tune_gc: freeze, thresholds "
                f"{'/'.join(map(str, GC_THRESHOLDS))}); max {max(served):.1f} ms")
    unit = next(r["agency_id"] for r in out["due_soon"])
    benchmark_unit = at_risk(counters, store.open_rows, lambda _p: ruleset, unit, NOW, 2)
    assert benchmark_unit["agency_id"] == unit
    check(ok, f"at-risk median {median_ms:.1f} ms >= {TARGET_MS} ms")


def _served_gc_ms(run: Callable[[], Any], rounds: int = 30) -> list[float]:
    """Wall times (ms) of ``rounds`` calls under the GC settings of a served motcua process
    (``support.served_gc``)."""
    out = []
    with served_gc():
        for _ in range(rounds):
            t0 = time.perf_counter()
            run()
            out.append((time.perf_counter() - t0) * 1000)
    return out
