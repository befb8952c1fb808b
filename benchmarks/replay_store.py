"""Event stores of simulated provinces for the replay benchmark, built once and cached.

A replay reads the engine's notification log; building that log (simulate → ``Engine.process``)
costs far more than replaying it (≈ 15,000 actions/s against ≈ 100,000+ events/s), so the stores
are built once and kept under ``$MOTCUA_BENCH_CACHE`` (default ``/tmp/motcua-bench-cache``),
named by the simulation and a hash of the code that decides what an event looks like (engine
domain, facts, store, relay topics). Delete the directory to rebuild.

    python benchmarks/replay_store.py small|medium|province-year   # build (or find) one, print it
    python benchmarks/replay_store.py --child URL [--views URL] [--tracemalloc] [--swap] [--delays]

The child mode is what the benchmark runs in a subprocess, so that the peak RSS it reports is
the replay's alone (``VmHWM`` of a fresh process, against its ``VmRSS`` before the replay).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from producers.simulator import SimConfig  # noqa: E402

CACHE = Path(os.environ.get("MOTCUA_BENCH_CACHE", "/tmp/motcua-bench-cache"))
# What the stored events and their facts are depends on these (the domain, the intake, the facts
# cache and its rules, the simulation): a change rebuilds the stores.
FORMAT_SOURCES = ("engine/domain", "engine/intake.py", "engine/store.py", "engine/facts_cache.py",
                  "projections/facts.py", "kernel/contract", "kernel/rules", "producers/simulator")


@dataclass(frozen=True)
class Size:
    name: str
    cfg: SimConfig
    note: str


def _province(dossiers: int, seed: int = 4) -> SimConfig:
    """A province of 100 units (33 departments + 67 communes) and 300 procedures, one year."""
    return SimConfig(agencies=100, procedures=300, dossiers=dossiers, seed=seed,
                     start=date(2026, 1, 1), days=365)


# ≈ 5.8 events per dossier (received, processing steps, result, ratings, feedback).
SIZES = {
    # The scoring suites' province (support.SCORING_CFG): 20,000 dossiers, 116,004 events.
    "small": Size("small", _province(20_000), "≈ 116,000 events"),
    "medium": Size("medium", _province(87_000), "≈ 500,000 events"),
    # A province-year: Đắk Lắk publishes ≈ 350,000 dossiers a year on its portal.
    "province-year": Size("province-year", _province(345_000), "≈ 2,000,000 events"),
}


def code_hash() -> str:
    h = hashlib.sha256()
    for rel in FORMAT_SOURCES:
        p = ROOT / rel
        files = sorted(f for f in p.rglob("*") if f.suffix in (".py", ".json")) \
            if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def store_path(size: Size) -> Path:
    c = size.cfg
    return CACHE / (f"replay-{size.name}-a{c.agencies}-p{c.procedures}-d{c.dossiers}-s{c.seed}"
                    f"-{code_hash()}.db")


def cached(size: Size) -> Path | None:
    p = store_path(size)
    return p if p.exists() else None


def build(size: Size, log: Any = None) -> Path:
    """The SQLite event store of ``size`` (built through the real engine unless cached)."""
    import orjson

    from engine.app import Message
    from motcua.pipeline import engine_at
    from producers.simulator import generate

    path = store_path(size)
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".building-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    engine = engine_at(f"sqlite:///{tmp}", hold_seconds=3600.0)
    t0 = time.perf_counter()
    n = 0
    batch: list[Any] = []
    try:
        for action in generate(size.cfg):
            batch.append(Message("motcua.actions", 0, n, orjson.dumps(action)))
            n += 1
            if len(batch) == 5000:
                engine.process("bench", batch)
                batch = []
                if log and n % 100_000 == 0:
                    print(f"  {size.name}: {n:,} actions in {time.perf_counter() - t0:.0f} s",
                          file=log, flush=True)
        if batch:
            engine.process("bench", batch)
    finally:
        engine.close()
    import sqlite3

    conn = sqlite3.connect(tmp)  # fold the WAL into the file: one file to rename
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    if log:
        print(f"  {size.name}: {n:,} actions recorded in {time.perf_counter() - t0:.0f} s "
              f"-> {path}", file=log, flush=True)
    return path


def copy_to_postgres(sqlite_path: Path, pg_url: str) -> int:
    """Copy a SQLite store's events and facts cache into a fresh PostgreSQL event store (COPY):
    same log, same positions, without recording the province again at PostgreSQL's ingest
    rate."""
    import sqlite3
    from uuid import UUID

    import psycopg

    from motcua.pipeline import engine_at

    engine = engine_at(pg_url)  # the schema, as the engine makes it
    table = engine.app.recorder.events_table_name  # type: ignore[attr-defined]
    engine.close()
    engine = engine_at(f"sqlite:///{sqlite_path}")
    src_table = engine.app.recorder.events_table_name  # type: ignore[attr-defined]
    engine.close()
    src = sqlite3.connect(sqlite_path)
    n = 0
    with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} (originator_id, originator_version, topic, state) "
                      "FROM STDIN") as cp:
            for oid, ver, topic, state in src.execute(
                    "SELECT originator_id, originator_version, topic, state FROM "
                    f"{src_table} ORDER BY rowid"):
                cp.write_row((UUID(oid), ver, topic, state))
                n += 1
        # The facts cache beside the log (what a replay reads), under the same positions.
        with cur.copy("COPY motcua_facts (pos, kind, type, sid, at, recorded_us, prev, facts) "
                      "FROM STDIN") as cp:
            for row in src.execute("SELECT pos, kind, type, sid, at, recorded_us, prev, facts "
                                   "FROM motcua_facts ORDER BY pos"):
                cp.write_row(row)
        conn.commit()
    src.close()
    return n


# --------------------------------------------------------------------------- the child


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


DELAYS_NOW = "2026-12-31T23:59:59+07:00"  # after the simulated year: every month in view


def time_delays(counters: Any, views: Any, rounds: int = 15) -> dict[str, Any]:
    """Issue 11: ``motcua delays`` of the province (``projections.delays.delays`` on the rebuilt
    counters and the view store's unfinished late dossiers, as the CLI and HTTP run it) for
    the year and for one month, by unit and by official: ms per query over ``rounds`` calls."""
    from datetime import datetime

    from projections.delays import delays
    from projections.periods import parse_period
    from projections.ruleset import load_ruleset

    rules = load_ruleset("portal-2026")
    now = datetime.fromisoformat(DELAYS_NOW)
    root = SIZES["small"].cfg.province_id
    out: dict[str, Any] = {}
    for label in ("2026", "2026-10"):
        for by in ("unit", "official"):
            times, cpu = [], []
            for _ in range(rounds):
                c0, t0 = time.process_time(), time.perf_counter()
                doc = delays(counters, views.unfinished_late_rows, rules, root,
                             parse_period(label), now, by)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            times.sort()
            cpu.sort()
            # CPU time beside the wall clock: on the shared 2-core machine the load of others
            # stretches the wall clock (this process's own CPU moves much less).
            out[f"{label}/{by}"] = {"median_ms": times[len(times) // 2], "best_ms": times[0],
                                    "max_ms": times[-1], "cpu_median_ms": cpu[len(cpu) // 2],
                                    "rows": len(doc["rows"]),
                                    "late_dossiers": doc["late_dossiers"]}
    return out


def child(url: str, views_at: str | None, trace: bool, swap: bool = False,
          delays_query: bool = False) -> dict[str, Any]:
    """One full rebuild of the views of the store at ``url`` (into ``views_at``, default the
    store's own views), measured."""
    import gc
    import tracemalloc

    from motcua.pipeline import engine_at
    from projections.replay import Replayer
    from projections.store import ViewStore, views_url

    engine = engine_at(url)
    views = ViewStore(views_at or views_url(url))
    replayer = Replayer(engine.store, views, source_url=url)  # as `motcua replay` does
    gc.collect()
    rss_before = _status_kib("VmRSS")
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    shadow, counters, done = replayer.rebuild(resume=False)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "events": replayer.stats["events"], "seconds": seconds,
        "fold_seconds": replayer.stats["seconds"], "last_position": done,
        "rss_before_kib": rss_before, "hwm_kib": _status_kib("VmHWM"),
        "cells": len(counters.cells), "load1": os.getloadavg()[0],
        # the worker process's own peak, when the rebuild was split (Replayer.rebuild)
        "worker_peak_kib": replayer.stats.get("worker_peak_kib"),
        "split": {k: replayer.stats[k] for k in (
            "first_half_seconds", "first_half_cpu_seconds", "worker_cpu_seconds",
            "merge_seconds", "index_seconds") if k in replayer.stats},
        # (agency, month, procedure) vectors: the one term of the counters that grows with
        # the province's activity (bounded by agencies × months × procedures)
        "vectors": sum(len(v) for v in counters.procs.values()),
    }
    if trace:
        out["tracemalloc_peak_kib"] = tracemalloc.get_traced_memory()[1] // 1024
        tracemalloc.stop()
    if delays_query:
        out["delays"] = time_delays(counters, shadow)
    if swap:  # make the rebuild the live views (what `motcua replay` does next)
        t1 = time.perf_counter()
        replayer.swap(shadow, counters, done)
        out["swap_seconds"] = time.perf_counter() - t1
    shadow.close()
    views.close()
    engine.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("size", nargs="?", choices=sorted(SIZES))
    ap.add_argument("--child")
    ap.add_argument("--views", help="the views' URL (default: beside the store)")
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--swap", action="store_true", help="then swap the rebuild in as live views")
    ap.add_argument("--delays", action="store_true",
                    help="then time the delays query of the province (issue 11)")
    args = ap.parse_args()
    if args.child:
        import orjson

        result = child(args.child, args.views, args.tracemalloc, args.swap, args.delays)
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        return
    if not args.size:
        ap.error("a size, or --child URL")
    print(build(SIZES[args.size], log=sys.stderr))


if __name__ == "__main__":
    main()
