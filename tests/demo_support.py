"""What the browser tests of ``motcua demo`` share: how big its feed is, and when all of it is
recorded and folded into what the API serves (a condition, not a pause)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from faults import Probe

from kernel import kafka as K
from kernel.settings import ACTIONS_TOPIC
from producers.simulator import SimConfig, simulate_live


def feed_size(agencies: int, dossiers: int, seed: int) -> int:
    """How many actions ``motcua demo --agencies A --dossiers D --seed S`` feeds today."""
    cfg = SimConfig(agencies=agencies, dossiers=dossiers, seed=seed, days=300)
    return sum(1 for _ in simulate_live(cfg, datetime.now(UTC), ahead_days=0))


def settled(home: Path, url: str, sizes: set[int]) -> bool:
    """The whole feed is on the topic, recorded, and folded into what the API serves."""
    bootstrap = orjson.loads((home / "broker.json").read_bytes())["bootstrap"]
    fed = sum(K.end_offsets(bootstrap, ACTIONS_TOPIC).values())
    probe = Probe(f"sqlite:///{home / 'motcua.db'}")
    return (fed in sizes and probe.intake() == fed
            and ("held", None) not in probe.outcomes()
            and httpx.get(f"{url}/healthz").json()["position"] == probe.last_position())
