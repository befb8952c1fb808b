"""The engine's cache of subjects (``MOTCUA_ENGINE_CACHE``): bounded, its memory as the README
says, and invisible in what is recorded."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from faults import lines_of, record_lines, simulate

from engine.app import Engine
from motcua.pipeline import engine_at


def _facts(engine: Engine) -> list[tuple[Any, ...]]:
    """Every facts cache row but its recording time."""
    return [r[:5] + r[6:] for r in engine.store.read_facts(1, 10**9)]


def test_a_small_engine_cache_records_what_the_default_one_does(tmp_path: Path) -> None:
    """1,500 dossiers through an engine that keeps 100 subjects (fewer than a batch touches):
    subjects pushed out are read back from the store when they act again, and every event and
    its facts are those of an engine with the default cache (the facts cache's rows, position
    by position)."""
    lines = lines_of(simulate(3, 1500))
    small = engine_at(f"sqlite:///{tmp_path / 'small.db'}", hold_seconds=3600, cache_size=100)
    default = engine_at(f"sqlite:///{tmp_path / 'default.db'}", hold_seconds=3600)
    reads = [0]
    get = small.cache.repository.get

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return get(*args, **kwargs)

    small.cache.repository.get = counted
    try:
        record_lines(small, lines)
        record_lines(default, lines)
        assert reads[0] > 100  # the small cache was exercised: many subjects read back
        assert len(small.cache._aggregates) <= 100 < len(default.cache._aggregates)
        got, want = _facts(small), _facts(default)
        assert len(want) > len(lines) // 2
        assert got == want
    finally:
        small.close()
        default.close()


def test_a_cached_subject_costs_about_five_kilobytes(tmp_path: Path) -> None:
    """The README's figure: about 5.5 KiB of Python objects per subject the engine keeps (its
    state, its facts, its control sheet), measured with tracemalloc as the cache is emptied;
    the default bound of 200,000 subjects is then about 1.1 GiB."""
    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}", hold_seconds=3600)
    try:
        tracemalloc.start()
        try:
            record_lines(engine, lines_of(simulate(3, 1000)))
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
            n = len(engine.cache._aggregates)
            engine.cache.clear()
            gc.collect()
            per = (held - tracemalloc.get_traced_memory()[0]) / n
        finally:
            tracemalloc.stop()
        assert n > 1000
        assert 3 * 1024 <= per <= 8 * 1024, per
    finally:
        engine.close()
