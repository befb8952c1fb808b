"""The province's actions in global time order, as dicts, as NDJSON or timed for a live feed.

Each dossier's whole lifecycle is drawn when it is received and its actions wait in a heap until
the generator's clock (the next reception) passes them, so memory holds only the open dossiers.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from producers.simulator.catalog import Popularity, publish_catalog
from producers.simulator.clock import TZ, format_time, to_datetime
from producers.simulator.config import SimConfig
from producers.simulator.dossiers import Dossiers
from producers.simulator.feedback import FeedbackDesk
from producers.simulator.province import Province, Scheduled
from producers.simulator.receptions import receptions

SCHEMA = "motcua.action/1"
_WRITE_BATCH = 8192  # lines joined per write


def generate(cfg: SimConfig) -> Iterator[dict[str, Any]]:
    """The province's actions, as dicts, in a realistic global time order."""
    for _, action in _timed_actions(cfg):
        yield action


def write_ndjson(cfg: SimConfig, path: str | Path) -> int:
    """Write the actions to ``path``, one JSON object per line; returns how many."""
    count = 0
    buffer: list[bytes] = []
    dumps = orjson.dumps
    with open(path, "wb") as out:
        for action in generate(cfg):
            buffer.append(dumps(action))
            count += 1
            if len(buffer) >= _WRITE_BATCH:
                buffer.append(b"")
                out.write(b"\n".join(buffer))
                buffer.clear()
        if buffer:
            buffer.append(b"")
            out.write(b"\n".join(buffer))
    return count


def simulate_live(
    cfg: SimConfig, now: datetime, ahead_days: int = 1
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """The province with its window ending ``ahead_days`` after ``now``'s date, as (time, action).

    A live feeder publishes what is at or before ``now`` at once and sleeps until each later one.
    """
    today = now.astimezone(TZ).date()
    start = today - timedelta(days=cfg.days - ahead_days)
    for t, action in _timed_actions(replace(cfg, start=start)):
        yield to_datetime(t), action


def _timed_actions(cfg: SimConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    """(local-seconds time, action) of everything the province sends, in time order."""
    province = Province(cfg)
    popularity = Popularity(province, publish_catalog(province))
    dossiers = Dossiers(province, FeedbackDesk(province))
    prefix = f"sim-{cfg.seed}-"
    n = 0
    heap = province.heap
    pop = heapq.heappop

    def action(item: Scheduled) -> tuple[int, dict[str, Any]]:
        nonlocal n
        t, _, type_, subject_field, subject, data = item
        n += 1
        return t, {
            "schema": SCHEMA,
            "action_id": f"{prefix}{n}",
            "source": cfg.source,
            "type": type_,
            "occurred_at": format_time(t),
            subject_field: subject,
            "data": data,
        }

    for t0, channel in receptions(province):
        dossiers.receive(t0, channel, popularity.pick(t0))
        while heap and heap[0][0] <= t0:
            yield action(pop(heap))
    while heap:
        yield action(pop(heap))
