"""Shared helpers of the benchmarks: measures, targets, timers and simulated data."""

from __future__ import annotations

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


# The scoring suites' province: 100 units (33 departments + 67 communes under the province),
# 300 procedures, 20,000 dossiers received over 2026 (~117,000 actions, ~115,000 events). The
# seed is one where every unit receives dossiers in every month (1,199 of 1,200 cells).
SCORING_CFG = SimConfig(agencies=100, procedures=300, dossiers=20_000, seed=4,
                        start=date(2026, 1, 1), days=365)
