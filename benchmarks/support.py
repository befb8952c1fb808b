"""Shared helpers of the benchmarks: measures, targets, timers and simulated data."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import orjson

from producers.simulator import SimConfig, generate

STRICT = os.environ.get("MOTCUA_BENCH_STRICT", "") not in ("", "0")

# --------------------------------------------------------------------------- results


@dataclass
class Measure:
    suite: str
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None  # None: reported only, no target
    note: str = ""


RESULTS: list[Measure] = []


def record(benchmark: Any, suite: str, name: str, value: float, unit: str, *,
           target: str = "", passed: bool | None = None, note: str = "") -> Measure:
    """Report one measure: into the benchmark's JSON ``extra_info``, the summary, and stdout."""
    m = Measure(suite, name, float(value), unit, target, passed, note)
    RESULTS.append(m)
    if benchmark is not None:
        benchmark.extra_info[name] = round(float(value), 6)
        benchmark.extra_info.setdefault("measures", []).append(asdict(m))
        benchmark.extra_info["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    verdict = "" if passed is None else ("  PASS" if passed else "  MISS")
    print(f"\n[{suite}] {name}: {value:,.3f} {unit}"
          + (f"  (target {target})" if target else "") + verdict
          + (f"  -- {note}" if note else ""))
    return m


def check(passed: bool, message: str) -> None:
    """An absolute target: asserted only in strict mode (the machine is shared)."""
    if STRICT:
        assert passed, message


# --------------------------------------------------------------------------- data


@lru_cache(maxsize=8)
def province_lines(cfg: SimConfig) -> tuple[bytes, ...]:
    """A simulated province's actions as the bytes a consumer would get (cached per config)."""
    return tuple(orjson.dumps(a) for a in generate(cfg))


def batches(seq: Any, size: int) -> Iterator[Any]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class Timer:
    """A context manager adding each timed block's duration (perf_counter) to ``times``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.times.append(time.perf_counter() - self._t0)


def relay_messages(cfg: Any, url: str) -> list[bytes]:
    """The ``motcua.events`` messages of simulated province ``cfg``: its actions recorded by the
    real engine into a fresh store at ``url``, the store's facts turned into relay messages
    with ``engine.relay.event_message``."""
    from engine.app import Message
    from engine.relay import event_message
    from motcua.pipeline import engine_at

    lines = province_lines(cfg)
    engine = engine_at(url, hold_seconds=3600.0)
    try:
        msgs = [Message("motcua.actions", 0, i, raw) for i, raw in enumerate(lines)]
        for batch in batches(msgs, 5000):
            engine.process("bench", batch)
        out: list[bytes] = []
        pos = 0
        while True:
            rows = engine.store.read_facts(pos + 1, 10_000)
            if not rows:
                break
            for row in rows:
                _, value = event_message(row)
                out.append(orjson.dumps(value))
            pos = rows[-1][0]
    finally:
        engine.close()
    return out


# The scoring suites' province: 100 units (33 departments + 67 communes under the province),
# 300 procedures, 20,000 dossiers received over 2026 (~117,000 actions, ~115,000 events). The
# seed is one where every unit receives dossiers in every month (1,199 of 1,200 cells).
SCORING_CFG = SimConfig(agencies=100, procedures=300, dossiers=20_000, seed=4,
                        start=date(2026, 1, 1), days=365)


@contextlib.contextmanager
def served_gc() -> Iterator[None]:
    """The garbage collector as a served ``motcua`` process sets it (``motcua.cli.tune_gc``:
    what exists so far frozen, thresholds ``GC_THRESHOLDS``); this process's settings come
    back afterwards."""
    from motcua.cli import GC_THRESHOLDS

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)
