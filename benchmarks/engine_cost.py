"""The engine's CPU per action, by part: ``Engine.process`` over the ingest suite's province.

    python benchmarks/engine_cost.py [--url URL] [--held] [--tune-gc] [--rounds N] [--no-parts]

Runs the ingest workload (``test_ingest.py``: 20 agencies, 5,000 dossiers, batches of 5,000) on a
fresh store (SQLite by default; ``--url`` a fresh PostgreSQL database) and prints the process's
CPU time per action (``time.process_time``, so another process's load does not count), the wall
time, and a cProfile's split of that CPU time by part of the engine. ``--held`` first holds one
action for a dossier that never arrives, as a partitioned backlog always has some: every new
dossier then asks whether work waits for it. ``--tune-gc`` sets the garbage collector as the
``motcua`` command does (``motcua.cli.tune_gc``), which is what a served engine runs with.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import batches, province_lines  # noqa: E402

from engine.app import Message  # noqa: E402
from motcua.pipeline import engine_at  # noqa: E402
from producers.simulator import SimConfig  # noqa: E402

CFG = SimConfig(agencies=20, dossiers=5000, seed=1)
# (part, functions whose cumulative time it is, functions whose cumulative time it excludes)
PARTS = [
    ("parse + validate", ["parse_action"], []),
    ("key lookup", ["lookup_keys"], []),
    ("prefetch (existing)", ["prefetch"], []),
    ("held lookup (held_for)", ["held_for"], []),
    ("holds refresh", ["refresh"], []),
    ("facts derivation", ["__call__:facts.py"], []),
    ("domain + intake", ["handle"], ["__call__:facts.py", "held_for"]),
    ("collect (stored events, facts rows)", ["collect"], []),
    ("store insert + commit", ["insert_events"], []),
]


def _cum(stats: pstats.Stats, name: str) -> float:
    func, _, where = name.partition(":")
    total = 0.0
    for (file, _line, fn), (_cc, _nc, _tt, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        # Only the outermost calls: skip recursion through the same function.
        if (fn == func and (not where or file.endswith(where))
                and not any(c[2] == func for c in callers)):
            total += ct
    return total


def messages(held: bool) -> list[Message]:
    lines = list(province_lines(CFG))
    if held:
        for raw in lines:
            doc = orjson.loads(raw)
            if doc.get("type") == "digitized":
                doc["dossier_id"] = "NEVER-ARRIVES"
                doc["action_id"] = "held-1"
                lines.insert(0, orjson.dumps(doc))
                break
    return [Message("motcua.actions", 0, i, r) for i, r in enumerate(lines)]


def run(url: str, msgs: list[Message], profile: bool) -> tuple[float, float, dict[str, int],
                                                                 cProfile.Profile | None]:
    engine = engine_at(url, hold_seconds=3600.0)
    prof = cProfile.Profile(time.process_time) if profile else None
    totals: dict[str, int] = {}
    c0, w0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for b in batches(msgs, 5000):
        for k, v in engine.process("bench", b).items():
            totals[k] = totals.get(k, 0) + v
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    engine.close()
    return cpu, wall, totals, prof


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a fresh database per round: a PostgreSQL server URL ending "
                    "in a database name to create (default: SQLite in a temp dir)")
    ap.add_argument("--held", action="store_true", help="hold one action first")
    ap.add_argument("--tune-gc", action="store_true",
                    help="collect garbage as the motcua command does (motcua.cli.tune_gc)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-parts", action="store_true",
                    help="skip the profiled round (it runs several times slower)")
    args = ap.parse_args()
    msgs = messages(args.held)
    if args.tune_gc:
        from motcua.cli import tune_gc
        tune_gc()
    n = len(msgs)
    tmp = Path(tempfile.mkdtemp(prefix="motcua-cost-"))

    def new_url(i: int) -> str:
        if not args.url:
            return f"sqlite:///{tmp / f'{i}.db'}"
        import psycopg
        base, _, _ = args.url.rpartition("/")
        name = f"engcost_{os.getpid()}_{i}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{base}/{name}"

    best_cpu = best_wall = float("inf")
    for i in range(args.rounds):
        cpu, wall, totals, _ = run(new_url(i), msgs, profile=False)
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
        print(f"round {i}: {cpu / n * 1e6:.1f} µs CPU/action, {n / wall:,.0f} actions/s wall, "
              f"{totals}", flush=True)
    print(f"best: {best_cpu / n * 1e6:.1f} µs CPU/action; {n / best_wall:,.0f} actions/s "
          f"({n:,} actions; load {os.getloadavg()[0]:.2f})")
    if args.no_parts:
        return
    cpu, _, _, prof = run(new_url(args.rounds), msgs, profile=True)
    assert prof is not None
    stats = pstats.Stats(prof)
    print(f"profiled round: {cpu / n * 1e6:.1f} µs CPU/action (with the profiler's overhead); "
          "parts, scaled to the best unprofiled round:")
    scale = best_cpu / cpu
    accounted = 0.0
    for name, incl, excl in PARTS:
        t = sum(_cum(stats, f) for f in incl) - sum(_cum(stats, f) for f in excl)
        accounted += t
        print(f"  {name:38s} {t * scale / n * 1e6:7.1f} µs/action")
    print(f"  {'other':38s} {(cpu - accounted) * scale / n * 1e6:7.1f} µs/action")


if __name__ == "__main__":
    main()
