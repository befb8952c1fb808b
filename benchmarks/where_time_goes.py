"""cProfile of a benchmarked path, to see where the time goes when a target is missed.

    python benchmarks/where_time_goes.py ingest|domain|fold|scorecard|replay [--top N] [--sort KEY]

Same data as the benchmarks (``support``): ``ingest`` = ``Engine.process`` in batches of 5,000 on
a fresh SQLite store; ``domain`` = parse + apply without I/O; ``fold`` = decode + fold of the
scoring province's events; ``scorecard`` = the province's scorecard over 2026, 50 times;
``replay`` = ``Replayer.rebuild(resume=False)`` of the cached 500,000-event store
(``replay_store.py medium``; ``--size`` for another).
The end-to-end pipeline is profiled per thread with ``MOTCUA_BENCH_PROFILE=DIR`` on
``benchmarks/test_end_to_end.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import SCORING_CFG, batches, province_lines  # noqa: E402

from engine.app import Message  # noqa: E402
from engine.intake import KIND_OF_FIELD, cause_of  # noqa: E402
from kernel.contract.actions import parse_action  # noqa: E402
from motcua.pipeline import engine_at  # noqa: E402
from producers.simulator import SimConfig  # noqa: E402
from projections.ruleset import load_ruleset  # noqa: E402

INGEST_CFG = SimConfig(agencies=20, dossiers=5000, seed=1)


def scoring_events(tmp: Path) -> list[bytes]:
    from engine.relay import event_message

    engine = engine_at(f"sqlite:///{tmp / 'scoring.db'}",
                    hold_seconds=3600.0)
    lines = province_lines(SCORING_CFG)
    for b in batches([Message("a", 0, i, r) for i, r in enumerate(lines)], 5000):
        engine.process("bench", b)
    out, pos = [], 0
    while notes := engine.store.read_facts(pos + 1, 10_000):
        out += [orjson.dumps(event_message(n)[1]) for n in notes]
        pos = notes[-1][0]
    engine.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ingest", "domain", "fold", "scorecard", "replay"])
    ap.add_argument("--size", default="medium", help="replay: small, medium or province-year")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    rs = load_ruleset("portal-2026")
    tmp = Path(tempfile.mkdtemp(prefix="motcua-profile-"))
    prof = cProfile.Profile()
    if args.what in ("ingest", "domain"):
        msgs = [Message("motcua.actions", 0, i, r)
                for i, r in enumerate(province_lines(INGEST_CFG))]
        engine = engine_at(f"sqlite:///{tmp / 'ingest.db'}", hold_seconds=3600.0)
        if args.what == "ingest":
            prof.enable()
            for b in batches(msgs, 5000):
                engine.process("bench", b)
            prof.disable()
        else:  # as benchmarks/test_ingest.py::test_domain_step: no read, no save
            parsed = [parse_action(m.value) for m in msgs]
            absent = {engine.uuid(KIND_OF_FIELD[a.subject_field], a.subject_id) for a in parsed}
            absent |= {engine.uuid("procedure", a.data["procedure_id"])
                       for a in parsed if a.type == "received"}
            absent |= {engine.uuid("dossier", a.data["dossier_id"]) for a in parsed
                       if a.type == "feedback_received" and a.data.get("dossier_id")}
            engine.cache.assume_absent(absent)
            batch = engine.batch("bench")
            prof.enable()
            for m in msgs:
                a = parse_action(m.value)
                batch.apply(a, cause_of(a, m.topic, m.partition, m.offset))
            prof.disable()
        n = len(msgs)
        engine.close()
    elif args.what == "replay":
        import replay_store as RS

        from projections.replay import Replayer
        from projections.store import ViewStore

        engine = engine_at(f"sqlite:///{RS.build(RS.SIZES[args.size], log=sys.stderr)}")
        replayer = Replayer(engine.store,
                            ViewStore(f"sqlite:///{tmp / 'views.db'}"))
        prof.enable()
        replayer.rebuild(resume=False)
        prof.disable()
        n = int(replayer.stats["events"])
        engine.close()
    else:
        from projections.fold import Counters

        events = scoring_events(tmp)
        if args.what == "fold":
            counters = Counters()
            loads = orjson.loads
            prof.enable()
            for raw in events:
                counters.fold(loads(raw))
            prof.disable()
            n = len(events)
        else:
            from projections.periods import parse_period
            from projections.views import scorecard

            counters = Counters()
            for raw in events:
                counters.fold(orjson.loads(raw))
            now = datetime.fromisoformat("2026-12-31T23:59:59+07:00")
            period = parse_period("2026")
            n = 50
            prof.enable()
            for _ in range(n):
                scorecard(counters, rs, SCORING_CFG.province_id, period, now)
            prof.disable()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    st = pstats.Stats(prof)
    print(f"# {args.what}: {n:,} operations, sorted by {args.sort}")
    st.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
