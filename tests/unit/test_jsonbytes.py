"""JSON bytes that are kept are allocated to their length (kernel/jsonbytes.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson

from kernel.jsonbytes import dumps_kept

# A dossier's facts as the engine keeps them on its cached aggregate (engine.intake._json).
FACTS = ["H15.1", "2026-01", "3.013855", 1053318, 1, 739624, 1, 739622, 1767866400,
         ["H15.1", "cb-H15.1-03", "return"], None, None]


def _bytes_held_each(make: Callable[[], bytes], n: int = 2000) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(n)]
        return (tracemalloc.get_traced_memory()[0] - before - 8 * n) / len(kept)
    finally:
        tracemalloc.stop()


def test_kept_json_is_the_same_bytes_in_an_allocation_of_their_size() -> None:
    raw = orjson.dumps(FACTS)
    assert dumps_kept(FACTS) == raw and type(dumps_kept(FACTS)) is bytes
    # A bytes object is its header (33 bytes) and its content, rounded up by the allocator;
    # orjson 3.12+ would hold 4 KiB here.
    held = _bytes_held_each(lambda: dumps_kept(FACTS))
    assert held <= len(raw) + 33 + 16, held
