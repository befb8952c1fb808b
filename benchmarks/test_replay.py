"""Suite 5, replay: rebuild the views from the event store's notification log.

Target (issue 4): a rebuild (``Replayer.rebuild(resume=False)``: read the facts cache page by
page, decode, fold, flush every few pages into the shadow table set) runs at >= 100,000 events/s
on SQLite; PostgreSQL is reported beside it. Target (issue 14): a province-year (345,000
dossiers; ≈ 3,100,000 events since handovers) in <= 12 s. Also reported: its peak memory, that
the replay's memory does not grow with the number of dossiers, and (issue 11) the delays query
on the province-year's rebuilt views (< 50 ms).

The stores are simulated provinces of 100 units and 300 procedures over 2026, recorded by the
real engine and cached (``benchmarks/replay_store.py``; building costs ≈ 10 s for 116,000
events, ≈ 1 min for 500,000 and ≈ 4 min for 2,000,000). The province-year is replayed when its
store is cached (``python benchmarks/replay_store.py province-year`` builds it;
``MOTCUA_BENCH_BUILD_YEAR=1`` lets the run build it); otherwise its time is extrapolated from
the 500,000-event replay, and the table says so.

Each replay runs in a fresh subprocess (``replay_store.py --child``): its peak memory is the
process's ``VmHWM`` after the rebuild minus its ``VmRSS`` just before it (interpreter, modules,
the engine and the store connections excluded), so the two sizes compare like for like.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import replay_store as RS
from support import check, record

TARGET = 100_000.0  # events/s on SQLite
PROVINCE_YEAR_TARGET_S = 12.0  # issue 14 (was 20 s, i.e. 2,000,000 events at TARGET)
DELAYS_TARGET_MS = 50.0  # issue 11: the delays query for a province-year
MEMORY_GROWTH_LIMIT = 1.25  # peak at ≥ 4× the dossiers, relative to the small store's
PROVINCE_YEAR_EVENTS = 2_000_000
HERE = Path(__file__).resolve().parent


def _child(url: str, views: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "replay_store.py"), "--child", url,
                          "--views", views, *extra], capture_output=True, timeout=300,
                         cwd=HERE.parent)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def _psycopg_impl() -> str:
    import psycopg

    return str(psycopg.pq.__impl__)


def _mib(kib: float) -> float:
    return kib / 1024


@pytest.fixture(scope="module")
def stores() -> dict[str, Path]:
    """The small (116,004 events) and medium (≈ 500,000 events) stores; the province-year's
    when cached (or when MOTCUA_BENCH_BUILD_YEAR=1)."""
    out = {name: RS.build(RS.SIZES[name], log=sys.stderr) for name in ("small", "medium")}
    year = RS.cached(RS.SIZES["province-year"])
    if year is None and os.environ.get("MOTCUA_BENCH_BUILD_YEAR", "") not in ("", "0"):
        year = RS.build(RS.SIZES["province-year"], log=sys.stderr)
    if year is not None:
        out["province-year"] = year
    return out


@pytest.fixture(scope="module")
def sqlite_runs(stores: dict[str, Path], bench_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Replays on SQLite: medium twice (the throughput measure), small and the year once."""
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [("small", 1), ("medium", 2), ("province-year", 1)]
    for name, times in plan:
        if name not in stores:
            continue
        for i in range(times):
            views = f"sqlite:///{bench_dir / f'replay-views-{name}-{i}.db'}"
            # The province-year's (else the medium's) rebuilt views also time the delays query.
            last = name == "province-year" or (name == "medium" and "province-year" not in stores)
            extra = ("--delays",) if last and i == 0 else ()
            runs.setdefault(name, []).append(_child(f"sqlite:///{stores[name]}", views, *extra))
    return runs


def test_replay_sqlite(benchmark: Any, sqlite_runs: dict[str, list[dict[str, Any]]]) -> None:
    benchmark.group = "replay"
    medium = sqlite_runs["medium"]
    best = min(medium, key=lambda r: r["seconds"])
    rate = best["events"] / best["seconds"]
    worst = max(r["seconds"] for r in medium)
    ok = rate >= TARGET
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the timing is the child's
    benchmark.extra_info["runs"] = sqlite_runs
    record(benchmark, "replay", "sqlite_events_per_s", rate, "events/s",
           target=f">= {TARGET:,.0f}", passed=ok,
           note=f"best of {len(medium)} (worst {best['events'] / worst:,.0f}); "
                f"{best['events']:,} events, 87,000 dossiers, rebuild(resume=False) "
                f"in a subprocess, load {best['load1']:.1f}")
    small = sqlite_runs["small"][0]
    record(benchmark, "replay", "sqlite_events_per_s_small", small["events"] / small["seconds"],
           "events/s", note=f"{small['events']:,} events (the scoring province)")
    check(ok, f"SQLite replay {rate:,.0f} events/s < {TARGET:,.0f}")


def test_replay_province_year(benchmark: Any,
                              sqlite_runs: dict[str, list[dict[str, Any]]]) -> None:
    """A province-year: measured when its store is cached, else extrapolated (and said so)."""
    benchmark.group = "replay"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    medium = min(sqlite_runs["medium"], key=lambda r: r["seconds"])
    if "province-year" in sqlite_runs:
        y = sqlite_runs["province-year"][0]
        record(benchmark, "replay", "province_year_seconds", y["seconds"], "s",
               target=f"<= {PROVINCE_YEAR_TARGET_S:g}",
               passed=y["seconds"] <= PROVINCE_YEAR_TARGET_S,
               note=f"measured: {y['events']:,} events (345,000 dossiers), "
                    f"{y['events'] / y['seconds']:,.0f} events/s, load {y['load1']:.1f}")
        record(benchmark, "replay", "province_year_peak_mib", _mib(y["hwm_kib"]), "MiB",
               note=f"process VmHWM; the replay's own: "
                    f"{_mib(y['hwm_kib'] - y['rss_before_kib']):.0f} MiB over its "
                    f"{_mib(y['rss_before_kib']):.0f} MiB start")
    else:
        secs = PROVINCE_YEAR_EVENTS * medium["seconds"] / medium["events"]
        # Not judged: an estimate must not read as a pass (a full run's table once showed the
        # estimate as the province-year's "pass" after the store cache's key moved).
        record(benchmark, "replay", "province_year_seconds", secs, "s",
               target=f"<= {PROVINCE_YEAR_TARGET_S:g}, not judged: EXTRAPOLATED",
               note="EXTRAPOLATED from the 500,000-event replay (no cached province-year "
                    "store for this code: `python benchmarks/replay_store.py province-year`)")
        record(benchmark, "replay", "province_year_peak_mib", _mib(medium["hwm_kib"]), "MiB",
               note="EXTRAPOLATED: the 500,000-event replay's peak (memory is flat in size, "
                    "see replay_memory_growth)")


def test_delays_province_year(benchmark: Any,
                              sqlite_runs: dict[str, list[dict[str, Any]]]) -> None:
    """Issue 11: ``motcua delays H15`` on the province-year's rebuilt views (the medium store's
    when the year is not cached), for the year and for October, by unit and by official:
    ``projections.delays.delays`` on the counters and the view store, as CLI and HTTP run it
    (median of 15 calls in the replay's child, ``replay_store.time_delays``)."""
    benchmark.group = "replay"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    name = "province-year" if "province-year" in sqlite_runs else "medium"
    run = sqlite_runs[name][0]
    for key, m in run["delays"].items():
        period, by = key.split("/")
        ok = m["median_ms"] < DELAYS_TARGET_MS
        record(benchmark, "delays", f"delays_{period.replace('-', '_')}_by_{by}_ms",
               m["median_ms"], "ms", target=f"< {DELAYS_TARGET_MS:g}", passed=ok,
               note=f"{name} views ({run['events']:,} events); period {period}, by {by}: "
                    f"{m['rows']} rows, {m['late_dossiers']:,} late dossiers; best "
                    f"{m['best_ms']:.1f}, max {m['max_ms']:.1f} ms, CPU median "
                    f"{m.get('cpu_median_ms', float('nan')):.1f} ms; load {run['load1']:.1f}")
        check(ok, f"delays {key} {m['median_ms']:.1f} ms >= {DELAYS_TARGET_MS:g}")


def test_replay_memory_flat(benchmark: Any,
                            sqlite_runs: dict[str, list[dict[str, Any]]]) -> None:
    """The replay's own peak (VmHWM − VmRSS before) at 20,000 vs 87,000 (vs 345,000) dossiers.

    The target (peak at ≥ 4× the dossiers within 1.25× the small store's) is the claim of
    ``projections.fold`` that memory grows with agencies × months × procedures, not dossiers;
    the note gives the number of (agency, month, procedure) vectors, which does grow with
    activity until every unit has used every procedure every month."""
    benchmark.group = "replay"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)

    def own(r: dict[str, Any]) -> float:
        return float(r["hwm_kib"] - r["rss_before_kib"])

    small = sqlite_runs["small"][0]
    big_name = "province-year" if "province-year" in sqlite_runs else "medium"
    big = sqlite_runs[big_name][0]
    medium = sqlite_runs["medium"][0]
    for name, r in (("small", small), ("medium", medium)) + (
            (("province_year", big),) if big_name == "province-year" else ()):
        record(benchmark, "replay", f"replay_own_peak_mib_{name}", _mib(own(r)), "MiB",
               note=f"{r['events']:,} events, {r['vectors']:,} (agency, month, procedure) "
                    f"vectors; process VmHWM {_mib(r['hwm_kib']):.0f} MiB")
    growth = own(big) / own(small)
    ok = growth <= MEMORY_GROWTH_LIMIT
    record(benchmark, "replay", "replay_memory_growth", growth, "x small",
           target=f"<= {MEMORY_GROWTH_LIMIT}", passed=ok,
           note=f"{big_name} ({big['events']:,} events) / small ({small['events']:,}): "
                f"{big['events'] / small['events']:.1f}× the events and dossiers")
    check(ok, f"replay memory grows {growth:.2f}× from small to {big_name}")


@pytest.mark.postgres
def test_replay_postgres(benchmark: Any, stores: dict[str, Path],
                         fresh_pg_url: Callable[[], str]) -> None:
    """The small store's log (116,004 events) copied (COPY) into a fresh PostgreSQL event
    store; the views there too. (Small, to keep the run short: at PostgreSQL's rate the medium
    store would add ≈ 40 s.)"""
    benchmark.group = "replay"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    url = fresh_pg_url()
    n = RS.copy_to_postgres(stores["small"], url)
    r = _child(url, url)
    assert r["events"] == n, (r, n)
    rate = r["events"] / r["seconds"]
    record(benchmark, "replay", "postgres_events_per_s", rate, "events/s",
           note=f"{n:,} events (small store), one run (reported; the target is for SQLite); "
                f"psycopg {_psycopg_impl()} implementation; server "
                f"fsync=off, loopback; load {r['load1']:.1f}")
    record(benchmark, "replay", "postgres_replay_own_peak_mib",
           _mib(r["hwm_kib"] - r["rss_before_kib"]), "MiB")
