"""Held work written by another engine on the same store is still released when its subject
arrives (the engine knows in memory which subjects have held work: engine.holds.HoldBook).

Two engines on one SQLite file, each told which actions partitions it owns as the runner does
(``Engine.owned``). Dates: dossier D1 received Mon 5 Oct 2026 08:00 (+07:00), due Mon 12 Oct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from acts import builder

from engine.app import Engine, Message
from motcua.pipeline import engine_at

TOPIC = "motcua.actions"
LOG = "cluster-1"
D1 = {"dossier_id": "D1"}


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """``engines()``: another engine process on the same store (all closed at the end)."""
    made: list[Engine] = []

    def make() -> Engine:
        e = engine_at(f"sqlite:///{tmp_path}/m.db", hold_seconds=60.0, record_uncatalogued=True)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


act: Callable[..., dict[str, Any]] = builder("h", dates="2026-10-")
offsets: dict[int, int] = {}


def send(engine: Engine, partition: int, *actions: dict[str, Any]) -> dict[str, int]:
    """One batch of ``actions`` on an actions partition; the outcome counts without zeros."""
    messages = []
    for a in actions:
        off = offsets[partition] = offsets.get(partition, -1) + 1
        messages.append(Message(TOPIC, partition, off, orjson.dumps(a)))
    return {k: n for k, n in engine.process(LOG, messages).items() if n}


def received() -> dict[str, Any]:
    return act("received", "05T08:00", D1, agency_id="H15.15", procedure_id="1.001612",
               channel="online", due_at="2026-10-12T17:00:00+07:00")


def types(engine: Engine) -> list[str]:
    return [h["type"] for h in engine.history("dossier", "D1") or []]


def test_work_another_engine_held_on_my_partitions_is_released_here(
        engines: Callable[[], Engine]) -> None:
    """Engine B (started after A) holds a digitized for D1; A then receives D1 and applies it."""
    a, b = engines(), engines()
    assert send(a, 0, act("agency_registered", "01T08:00", {"agency_id": "H15.99"},
                          name="X", level="commune")) == {"accepted": 1}
    assert send(b, 0, act("digitized", "05T09:00", D1, components=2)) == {"held": 1}
    assert send(a, 0, received()) == {"accepted": 1}
    assert types(a) == ["Received", "Digitized"]
    assert a.store.held_count() == 0


def test_a_link_held_by_the_engine_of_another_partition_is_applied_on_arrival(
        engines: Callable[[], Engine]) -> None:
    """B (partition 1) holds a feedback's link to D1; A (partition 0) then receives D1, which
    is recorded with the link in the same batch."""
    a, b = engines(), engines()
    a.owned, b.owned = {0}, {1}
    assert send(a, 0, act("agency_registered", "01T08:00", {"agency_id": "H15.99"},
                          name="X", level="commune")) == {"accepted": 1}
    assert send(b, 1, act("feedback_received", "06T09:00", {"feedback_id": "F1"},
                          agency_id="H15.15", classification="procedure",
                          dossier_id="D1")) == {"accepted": 1}
    assert send(a, 0, received()) == {"accepted": 1}
    assert types(a) == ["Received", "FeedbackLinked"]


def test_a_partition_taken_over_brings_the_work_held_on_it(
        engines: Callable[[], Engine]) -> None:
    """B held a digitized for D1 on partition 1; A takes partition 1 over and receives D1 on it:
    the digitized is applied."""
    a, b = engines(), engines()
    a.owned, b.owned = {0}, {1}
    assert send(a, 0, act("agency_registered", "01T08:00", {"agency_id": "H15.99"},
                          name="X", level="commune")) == {"accepted": 1}
    assert send(b, 1, act("digitized", "05T09:00", D1, components=2)) == {"held": 1}
    a.owned = {0, 1}
    assert send(a, 1, received()) == {"accepted": 1}
    assert types(a) == ["Received", "Digitized"]
