"""``benchmarks/run -k X`` replaces X's rows of the results table and keeps the others, each
saying which run it comes from (benchmarks/report.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]

OLD = """<!-- results:begin -->

| Machine | |
|---|---|
| Date (`date -u`) | 2026-12-01 10:00:00 UTC |

| Suite | Measure | Target | Measured | Result | Note |
|---|---|---|---|---|---|
| ingest | `ingest_actions_per_s` | >= 15,000 | 2,000 actions/s | **MISS** | load 1 |
| fold | `fold_ratio` | >= 0.4 | 0.390 × bare | **MISS** |  |
| fold | `fold_us` |  | 8.00 µs/event |  | from the run of 2026-11-30 09:00:00 UTC; x |

<!-- results:end -->
"""


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks/report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


def test_a_partial_run_keeps_the_other_suites_rows_with_their_runs_date() -> None:
    """A run of the ingest suite keeps both fold rows: the one from the table's own run gets
    its date, the one already carried over keeps the date it had."""
    rows = _report().earlier_rows(OLD, {"ingest"})
    assert rows == [
        "| fold | `fold_ratio` | >= 0.4 | 0.390 × bare | **MISS** | from the run of "
        "2026-12-01 10:00:00 UTC |",
        "| fold | `fold_us` |  | 8.00 µs/event |  | from the run of 2026-11-30 09:00:00 UTC; x |",
    ]


def test_a_run_of_every_suite_keeps_nothing_and_an_empty_file_has_nothing() -> None:
    """Nothing is kept of suites this run measured, and a file without the table has none."""
    report = _report()
    assert report.earlier_rows(OLD, {"ingest", "fold"}) == []
    assert report.earlier_rows("# Benchmark results\n", {"ingest"}) == []
