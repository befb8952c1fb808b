"""The alerting role keeps up with 1,000 actions/s, deciding with p99 latency under 1 s.

The ``motcua.events`` messages of the scoring province (100 units, 20,000 dossiers over 2026,
recorded by the real engine: about one event per action) are handed to the role's ``Decider``
(its real SQLite store, one subscription of the province, every rule, within 2) in polls of 50
every 50 ms, i.e. 1,000 events/s, as its consumer would get them; after each poll the role
applies it and decides, as ``AlertLoop.run`` does. The role's clock is fixed at 1 Jul 2026
10:00, so the dossiers of the first months that are still open on arrival are overdue or due
soon: alerts are decided as their events arrive. A poll's latency is from its scheduled arrival
to the end of its decisions (a role that falls behind accumulates it); each alert decided counts
its poll's latency. The burst phase hands the next 30,000 events as fast as the role takes them.

The role's CPU per event is measured from the message bytes (``AlertLoop.apply`` decoding them,
without Kafka), with and without a subscription: what the role costs ``motcua up``'s one GIL.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from support import check, record

from kernel.calendar import VN_TZ
from kernel.lifecycle import load_lifecycle
from projections.alerts.role import Decider
from projections.alerts.store import AlertStore

RATE = 1000
POLL = 50
PACED = 15_000
BURST = 30_000
TARGET_P99_S = 1.0
CLOCK = datetime(2026, 7, 1, 10, 0, tzinfo=VN_TZ).timestamp()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def test_alerting_keeps_up_at_1000_actions_per_second(
        benchmark: Any, scoring_province: list[bytes], bench_dir: Path) -> None:
    """Paced at 1,000 events/s then a burst: decision latency and sustained rate."""
    benchmark.group = "alerting"
    events = [(0, orjson.loads(raw)) for raw in scoring_province[:PACED + BURST]]
    store = AlertStore(f"sqlite:///{bench_dir / 'alerts-bench.db'}")
    store.add(["H15"], "webhook", "http://127.0.0.1:9/", "s")
    decider = Decider(store, load_lifecycle(), lambda: CLOCK)
    per_alert: list[float] = []
    per_poll: list[float] = []

    def paced() -> None:
        start = time.perf_counter()
        for i in range(0, PACED, POLL):
            due = start + i / RATE
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            decider.follow(events[i:i + POLL])
            added = decider.decide()
            lat = time.perf_counter() - due
            per_poll.append(lat)
            per_alert.extend([lat] * added)

    benchmark.pedantic(paced, rounds=1, iterations=1)
    t0 = time.perf_counter()
    for i in range(PACED, PACED + BURST, 500):
        decider.follow(events[i:i + 500])
        decider.decide()
    burst_s = time.perf_counter() - t0
    alerts = len(store.outbox())
    store.close()
    p99 = _pct(per_alert, 0.99)
    ok = p99 < TARGET_P99_S and bool(per_alert)
    record(benchmark, "alerting", "paced_alert_decision_p99_s", p99, "s",
           target=f"< {TARGET_P99_S:g}", passed=ok,
           note=f"{len(per_alert):,} alerts decided while {PACED:,} events came at {RATE:,}/s")
    record(benchmark, "alerting", "paced_alert_decision_p50_s", _pct(per_alert, 0.5), "s")
    record(benchmark, "alerting", "paced_poll_latency_max_s", max(per_poll), "s",
           note=f"{len(per_poll)} polls of {POLL}")
    record(benchmark, "alerting", "burst_events_per_s", BURST / burst_s, "events/s",
           target=f">= {RATE:,}", passed=BURST / burst_s >= RATE,
           note=f"{BURST:,} events in polls of 500, applied and decided; {alerts:,} alerts "
                "in the outbox at the end")
    check(ok, f"alert decision p99 {p99:.3f} s >= {TARGET_P99_S} s")


class _Record:
    """What the role reads of a consumer record."""

    __slots__ = ("offset", "value")

    def __init__(self, value: bytes, offset: int) -> None:
        self.value = value
        self.offset = offset


def _role_cpu_per_event(raw: list[bytes], url: str, subscribed: bool, poll: int,
                        per_tick: int) -> tuple[float, int]:
    """CPU µs per event of ``AlertLoop.apply`` (decode + follow) on polls of ``poll`` messages
    as bytes, deciding after every ``per_tick`` polls; and the alerts decided."""
    from kafka import TopicPartition

    from projections.alerts.role import AlertLoop

    store = AlertStore(url)
    if subscribed:
        store.add(["H15"], "webhook", "http://127.0.0.1:9/", "s")
    decider = Decider(store, load_lifecycle(), lambda: CLOCK)
    loop = AlertLoop(decider, None, "127.0.0.1:9", None)  # type: ignore[arg-type]
    loop.log_id = "bench"
    tp = TopicPartition("motcua.events", 0)
    polls = [{tp: [_Record(r, i + j) for j, r in enumerate(raw[i:i + poll])]}
             for i in range(0, len(raw), poll)]
    c0 = time.process_time()
    for k, polled in enumerate(polls, 1):
        loop.apply(polled)
        if k % per_tick == 0:
            decider.decide()
    decider.decide()
    cpu = time.process_time() - c0
    alerts = len(store.outbox())
    store.close()
    return cpu / len(raw) * 1e6, alerts


def test_alerting_role_cpu_per_event_from_the_wire(
        benchmark: Any, scoring_province: list[bytes], bench_dir: Path) -> None:
    """The role's CPU per ``motcua.events`` message, from the message bytes (decoded as
    ``AlertLoop.apply`` does) to the subjects recorded and decided: without a subscription (as
    ``motcua up`` runs before anyone subscribes) and with one of the whole province."""
    benchmark.group = "alerting"
    raw = scoring_province
    runs: dict[str, tuple[float, int]] = {}

    def measure() -> None:
        for subscribed in (False, True):
            name = "subscribed" if subscribed else "unsubscribed"
            url = f"sqlite:///{bench_dir / f'alerts-cpu-{name}.db'}"
            runs[name] = _role_cpu_per_event(raw, url, subscribed, poll=500, per_tick=4)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    for name, (us, alerts) in runs.items():
        record(benchmark, "alerting", f"role_cpu_us_per_event_{name}", us, "µs/event",
               note=f"{len(raw):,} messages in polls of 500, decided every 4 polls; "
                    f"{alerts:,} alerts")
