"""``motcua demo``: the whole product in one process, fed by a simulated province.

It uses its own store under ``MOTCUA_HOME/demo`` (reset at every start, so a rerun is clean),
the bundled broker, the engine, the projection and the API; a feeder publishes the province's
history up to now as a backlog, then the rest at a live pace, so the scoreboard moves.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from kernel import kafka as K
from kernel.settings import ACTIONS_TOPIC, Settings
from motcua.ingest import subject_key
from motcua.serving import api, run_until_signal, serve_http, stop_http


def _feed(bootstrap: str, settings: Settings, args: argparse.Namespace,
          stop: threading.Event, stats: dict[str, int]) -> None:
    from producers.simulator import SimConfig, simulate_live

    cfg = SimConfig(agencies=args.agencies, dossiers=args.dossiers, seed=args.seed, days=300)
    actions = [a for _, a in simulate_live(cfg, datetime.now(UTC), ahead_days=0)]
    stats["total"] = len(actions)
    backlog = int(len(actions) * 0.85)
    stats["backlog"] = backlog
    producer = K.producer(bootstrap, settings.kafka_security)
    try:
        for i, a in enumerate(actions):
            if stop.is_set():
                return
            raw = orjson.dumps(a)
            producer.send(ACTIONS_TOPIC, key=subject_key(raw), value=raw)
            stats["published"] = i + 1
            if i >= backlog:
                producer.flush()
                time.sleep(1.0 / max(args.rate, 0.1))
        producer.flush()
    finally:
        producer.close()


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from motcua.pipeline import Pipeline

    home = settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    demo_settings = replace(settings, home=home,
                            database_url=f"sqlite:///{home / 'motcua.db'}")
    if settings.kafka_bootstrap is not None or settings.is_postgres:
        demo_settings = replace(settings, home=home)
    t0 = time.monotonic()
    p = Pipeline(demo_settings, roles=frozenset({"engine", "project", "alert"}),
                 engine_child=settings.engine_process).start()
    server: Any = None
    receiver = _receiver()
    stop = threading.Event()
    stats: dict[str, int] = {"published": 0, "total": 0}
    try:
        p.wait_ready()
        host = args.host or settings.http_host
        port = args.port or settings.http_port
        server, _ = serve_http(api(p, demo_settings, live=True), host, port)
        url = f"http://{host}:{port}/"
        feeder = threading.Thread(target=_feed, args=(p.bootstrap, demo_settings, args, stop,
                                                      stats), name="feeder", daemon=True)
        feeder.start()
        print(f"motcua demo: scoreboard at {url}  (Ctrl-C to stop)", flush=True)
        threading.Thread(target=_subscribe_when_live, args=(p, receiver, args, stats, stop),
                         name="demo-alerts", daemon=True).start()
        reporter = threading.Thread(target=_report, args=(p, stats, stop, t0), daemon=True)
        reporter.start()

        def shutdown() -> None:
            stop.set()
            stop_http(server)
            p.stop()
            receiver.close()

        run_until_signal(shutdown)
    except BaseException:
        stop.set()
        if server is not None:
            stop_http(server)
        p.stop()
        receiver.close()
        raise
    print("motcua demo: stopped.", file=sys.stderr)
    return 0


def _receiver() -> Any:
    from motcua.alerting import DemoReceiver

    return DemoReceiver(lambda line: print(line, flush=True))


def _subscribe_when_live(p: Any, receiver: Any, args: argparse.Namespace,
                         stats: dict[str, int], stop: threading.Event) -> None:
    """Subscribe the local receiver to every alert of the simulated province once the
    history is in (published, and applied by the alerting role): the backlog replays months
    of dossiers whose later events are still on their way, and alerting on them would cry
    wolf; from then on the alerts are those of the live province."""
    from engine.relay import Relay
    from producers.simulator import SimConfig

    while not stop.wait(0.2):
        if stats.get("total") and stats["published"] >= stats.get("backlog", 1 << 62):
            break
    # The history is in when the relay publishes no faster than the live pace and the
    # alerting role has applied what it published.
    before = -1
    while not stop.wait(0.5):
        relayed = p.engine.store.get_position(Relay.EVENTS)
        applied = max((v for k, v in p.alerts.decider.positions.items()
                       if k.startswith("pos|")), default=0)
        if before >= 0 and relayed - before <= max(20, args.rate) and applied >= relayed > 0:
            break
        before = relayed
    if stop.is_set():
        return
    root = SimConfig(agencies=args.agencies, dossiers=args.dossiers, seed=args.seed).province_id
    p.alerts.decider.store.add([root], "webhook", receiver.url, "demo-secret")
    print(f"motcua demo: alerts of {root} now go to {receiver.url}", flush=True)


def _report(p: Any, stats: dict[str, int], stop: threading.Event, t0: float) -> None:
    announced = False
    while not stop.wait(2.0):
        agencies = len(p.projection.counters.agencies) if p.projection else 0
        folded = p.projection.version if p.projection else 0
        if not announced and agencies and folded:
            announced = True
            print(f"motcua demo: ranking of {agencies} agencies live after "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  published {stats['published']:,}/{stats['total']:,} "
                             "actions   ")
            sys.stderr.flush()
