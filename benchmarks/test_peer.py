"""Suite 8, the peer benchmark: ``motcua up`` against what a Python team would build instead.

One bundled broker of this module's own and one backlog on ``motcua.actions`` (issue 14's
province: ``motcua simulate --agencies 20 --dossiers 15000``, ≈ 88,000 actions), published
before any pipeline starts. Then, ``ROUNDS`` times in turn, each pipeline reads the whole
backlog (see ``peer.py`` and ``peer_apps.py`` for how each is run and what "processed" means):

1. ``motcua up`` (a real subprocess: engine + relay + projection + API, SQLite, exactly once),
   from process start to *engine recorded all* and to *projection folded all*; and, unless
   ``MOTCUA_BENCH_PEER_SPLIT=0``, the same store and measure with the one-role commands
   (``motcua engine``, ``motcua project``, ``motcua serve``: three processes);
2. a Quix Streams application (per-dossier state in a stateful function, per-(agency,
   reception month) counters; at-least-once), from its first message to its last (its consumer
   group first waits for tansu's JoinGroup delay);
3. a bare kafka-python loop with ``orjson.loads`` per message, first message to last, its
   records read by motcua's loop (``kernel/kafka_fetch.py``) and, as ``bare_library``, by
   kafka-python's own;
4. the same bare loop on confluent-kafka (librdkafka), for the Kafka client choice.

Reported: each pipeline's best and median rate (actions/s), the ratios motcua / Quix and
motcua / bare (of the best rounds, and per round), motcua's start-up and stop times. Needs the
``bench`` extra (``pip install -e '.[bench]'``); skipped without it. No target is asserted here:
issue 14's goal (≥ 15,000 actions/s, ≥ 0.4 × Quix) is reported as pass/MISS.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from peer import SPLIT, Backlog, MotcuaRun, make_backlog, run_motcua, run_peer
from support import check, record

from kernel.broker import BundledBroker

pytest.importorskip("quixstreams", reason="the peer benchmark needs the bench extra")
pytest.importorskip("confluent_kafka", reason="the peer benchmark needs the bench extra")

ROUNDS = int(os.environ.get("MOTCUA_BENCH_PEER_ROUNDS", "3"))
# Also run the one-role commands (engine, project, serve: three processes, as docker-compose.yml
# deploys them) on the same backlog: what using both cores by processes buys today.
SPLIT_TOO = os.environ.get("MOTCUA_BENCH_PEER_SPLIT", "1") not in ("", "0")
TARGET_RATE = 15_000.0  # issue 14: motcua up end to end
TARGET_VS_QUIX = 0.4


@dataclass
class Rounds:
    motcua: list[MotcuaRun] = field(default_factory=list)
    split: list[MotcuaRun] = field(default_factory=list)
    peers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)


@pytest.fixture(scope="module")
def peer_broker(bench_dir: Path) -> Iterator[BundledBroker]:
    with BundledBroker(bench_dir / "peer-broker") as b:
        yield b


@pytest.fixture(scope="module")
def backlog(peer_broker: BundledBroker, bench_dir: Path) -> Backlog:
    return make_backlog(peer_broker.bootstrap, bench_dir)


def _rate(count: int, seconds: float) -> float:
    return count / seconds


def _span(out: dict[str, Any]) -> float:
    return float(out["t_last"] - out["t_first"])


@pytest.mark.timeout(3600)  # 3 rounds take 5–10 min on this machine, more under load
def test_peer_throughput(benchmark: Any, peer_broker: BundledBroker, backlog: Backlog,
                         bench_dir: Path) -> None:
    """Each pipeline on the same backlog, ROUNDS times in turn: rates and ratios."""
    benchmark.group = "peer"
    rounds = Rounds()

    def one_round() -> None:
        rounds.loads.append(os.getloadavg()[0])
        run = run_motcua(peer_broker.bootstrap, backlog, bench_dir)
        assert run.healthz_position == run.events, "healthz disagrees with the view store"
        rounds.motcua.append(run)
        if SPLIT_TOO:
            rounds.split.append(run_motcua(peer_broker.bootstrap, backlog, bench_dir,
                                           shape=SPLIT))
        for what in ("quix", "bare", "bare-library", "confluent"):
            out = run_peer(what, peer_broker.bootstrap, backlog, bench_dir)
            assert out["n"] == backlog.count, f"{what} saw {out['n']} of {backlog.count}"
            rounds.peers.setdefault(what, []).append(out)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    _report(benchmark, backlog, rounds)


def _report(benchmark: Any, backlog: Backlog, r: Rounds) -> None:
    n = backlog.count
    loads = ", ".join(f"{x:.1f}" for x in r.loads)
    folded = [_rate(n, m.folded_s) for m in r.motcua]
    recorded = [_rate(n, m.recorded_s) for m in r.motcua]
    quix = [_rate(n, _span(o)) for o in r.peers["quix"]]
    bare = [_rate(n, _span(o)) for o in r.peers["bare"]]
    bare_lib = [_rate(n, _span(o)) for o in r.peers["bare-library"]]
    conf = [_rate(n, _span(o)) for o in r.peers["confluent"]]
    events = ", ".join(f"{e:,}" for e in sorted({m.events for m in r.motcua}))
    common = f"{n:,} actions; {len(r.motcua)} rounds; 1-min load at each round's start {loads}"
    ok = max(folded) >= TARGET_RATE
    record(benchmark, "peer", "motcua_up_folded_actions_per_s", max(folded), "actions/s",
           target=f">= {TARGET_RATE:,.0f}", passed=ok,
           note=f"best; process start → projection folded all ({events} events); {common}")
    record(benchmark, "peer", "motcua_up_folded_actions_per_s_median", statistics.median(
           folded), "actions/s", note="median; rounds: " + _list(folded))
    record(benchmark, "peer", "motcua_up_recorded_actions_per_s", max(recorded), "actions/s",
           note="best; process start → engine recorded all; rounds: " + _list(recorded))
    from_ready = [_rate(n, m.folded_s - m.ready_s) for m in r.motcua]
    record(benchmark, "peer", "motcua_up_from_ready_actions_per_s", max(from_ready),
           "actions/s", note="best; engine_ready (consumer assigned) → folded all, the "
           "peers' clock; rounds: " + _list(from_ready))
    _motcua_times(benchmark, r.motcua)
    record(benchmark, "peer", "quix_actions_per_s", max(quix), "actions/s",
           note="best; first message → last; rounds: " + _list(quix) + "; first message "
                f"{statistics.median(o['t_first'] - o['t_start'] for o in r.peers['quix']):.1f}"
                " s after start (median, JoinGroup delay); to the final checkpoint: "
                + _list([_rate(n, o["t_closed"] - o["t_first"]) for o in r.peers["quix"]]))
    record(benchmark, "peer", "quix_actions_per_s_median", statistics.median(quix), "actions/s")
    record(benchmark, "peer", "bare_kafka_python_actions_per_s", max(bare), "actions/s",
           note="best; kafka-python read by motcua's record loop + orjson.loads; rounds: "
           + _list(bare))
    record(benchmark, "peer", "bare_kafka_python_actions_per_s_median", statistics.median(bare),
           "actions/s")
    record(benchmark, "peer", "bare_kafka_python_library_actions_per_s", max(bare_lib),
           "actions/s", note="best; kafka-python's own record loop + orjson.loads; rounds: "
           + _list(bare_lib))
    record(benchmark, "peer", "bare_confluent_actions_per_s", max(conf), "actions/s",
           note="best; confluent-kafka (librdkafka) + orjson.loads; rounds: " + _list(conf))
    vs_quix = [f / q for f, q in zip(folded, quix, strict=True)]
    vs_bare = [f / b for f, b in zip(folded, bare, strict=True)]
    ok_quix = max(folded) / max(quix) >= TARGET_VS_QUIX
    record(benchmark, "peer", "motcua_vs_quix", max(folded) / max(quix), "x Quix",
           target=f">= {TARGET_VS_QUIX}", passed=ok_quix,
           note="best / best; per round " + ", ".join(f"{x:.3f}" for x in vs_quix))
    record(benchmark, "peer", "motcua_vs_bare", max(folded) / max(bare), "x bare",
           note="best / best; per round " + ", ".join(f"{x:.3f}" for x in vs_bare))
    _cpu(benchmark, n, r)
    record(benchmark, "peer", "backlog_publish_s", backlog.publish_s, "s",
           note=f"{n:,} actions published once by motcua.ingest.publish (keyed by subject)")
    if r.split:
        split = [_rate(n, m.folded_s) for m in r.split]
        record(benchmark, "peer", "motcua_split_folded_actions_per_s", max(split), "actions/s",
               note="best; `motcua engine` + `motcua project` + `motcua serve` (3 processes), "
                    "start → folded all; rounds: " + _list(split) + "; CPU µs/action "
                    + ", ".join(f"{m.cpu_s / n * 1e6:.1f}" for m in r.split))
    check(ok, f"motcua up {max(folded):,.0f} actions/s < {TARGET_RATE:,.0f}")
    check(ok_quix, f"motcua / Quix {max(folded) / max(quix):.3f} < {TARGET_VS_QUIX}")


def _cpu(benchmark: Any, n: int, r: Rounds) -> None:
    """CPU per action (every thread of the process): what the load average moves least."""
    rows = [("motcua_up", [m.cpu_s for m in r.motcua], "process start → folded all, "
             "start-up included")]
    rows += [(name, [o["cpu_last"] - o["cpu_first"] for o in r.peers[what]],
              "first message → last") for what, name in
             (("quix", "quix"), ("bare", "bare_kafka_python"),
              ("bare-library", "bare_kafka_python_library"), ("confluent", "bare_confluent"))]
    for name, cpus, span in rows:
        us = [c / n * 1e6 for c in cpus]
        record(benchmark, "peer", f"{name}_cpu_us_per_action", min(us), "µs/action",
               note=f"least; {span}; rounds: " + ", ".join(f"{x:.1f}" for x in us))


def _motcua_times(benchmark: Any, runs: list[MotcuaRun]) -> None:
    best = min(runs, key=lambda m: m.folded_s)
    record(benchmark, "peer", "motcua_up_folded_s", best.folded_s, "s",
           note=f"best round: engine_ready {best.ready_s:.1f} s, first batch recorded "
                f"{best.first_s:.1f} s, engine recorded all {best.recorded_s:.1f} s")
    record(benchmark, "peer", "motcua_up_stop_s", statistics.median(m.stop_s for m in runs), "s",
           note="SIGINT → exit, median; exit codes "
                + ", ".join(str(m.exit_code) for m in runs))


def _list(xs: list[float]) -> str:
    return ", ".join(f"{x:,.0f}" for x in xs)
