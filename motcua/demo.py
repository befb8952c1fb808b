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
    p = Pipeline(demo_settings, roles=frozenset({"engine", "project", "alert"})).start()
    server: Any = None
    receiver = _subscribe_receiver(p, args)
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


def _subscribe_receiver(p: Any, args: argparse.Namespace) -> Any:
    """A local webhook receiver that prints the alerts of the simulated province, subscribed
    to every rule (the demo's store is new at every start)."""
    from motcua.alerting import DemoReceiver
    from producers.simulator import SimConfig

    receiver = DemoReceiver(lambda line: print(line, flush=True))
    root = SimConfig(agencies=args.agencies, dossiers=args.dossiers, seed=args.seed).province_id
    p.alerts.decider.store.add([root], "webhook", receiver.url, "demo-secret")
    print(f"motcua demo: alerts of {root} go to {receiver.url}", flush=True)
    return receiver


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
