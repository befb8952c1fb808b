"""One ``bootstrap``: wire the broker, the stores and the roles from the settings.

The embedded default (no ``MOTCUA_KAFKA_BOOTSTRAP``) starts the bundled broker and writes its
address to ``MOTCUA_HOME/broker.json`` so that other commands (``ingest``) find it; the broker is
stopped when the pipeline stops.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from engine.app import HEARTBEAT, Engine
from engine.relay_loop import RelayLoop
from engine.runner import EngineLoop, recorded_offset
from kernel.broker import BundledBroker
from kernel.errors import UserError
from kernel.health import HEALTH
from kernel.kafka import wait_until_reachable
from kernel.lifecycle import LifecycleRules, load_lifecycle
from kernel.metrics import write_metrics
from kernel.settings import Settings
from motcua.engine_process import EngineProcess, health_file, metrics_file
from producers.forwarder import Intake
from projections.facts import Annotator
from projections.feed import ALERTING_COLUMNS, PROJECTION_COLUMNS, StoreFeed
from projections.ruleset import Rulesets, default_rulesets
from projections.runner import ProjectionLoop
from projections.store import ViewStore, views_url

log = structlog.get_logger("motcua")

def engine_at(database_url: str, *, rules: LifecycleRules | None = None, **kw: Any) -> Engine:
    """An engine on a store, wired to the projections' facts: the one place that tells the
    engine how its events are annotated (and with which lifecycle rules).

    For in-process use (tools, tests, benchmarks) a dossier of a procedure not seen yet is
    recorded at once unless ``record_uncatalogued=False``; the roles' engines
    (``make_engine``) wait for the catalog as ``MOTCUA_RECORD_UNCATALOGUED`` says."""
    rules = rules or load_lifecycle()
    kw.setdefault("record_uncatalogued", True)
    annotator = Annotator(rules)
    return Engine(database_url, annotate=annotator, facts_version=annotator.version,
                  calendar=rules.calendar, **kw)


def make_engine(settings: Settings, **kw: Any) -> Engine:
    """The engine of these settings."""
    return engine_at(settings.database_url, rules=load_lifecycle(settings.lifecycle_rules),
                     hold_seconds=settings.hold_seconds, hold_limit=settings.hold_limit,
                     cache_size=settings.engine_cache, require_grants=settings.require_grants,
                     record_uncatalogued=settings.record_uncatalogued, **kw)


def make_rulesets(settings: Settings) -> Rulesets:
    """The rulesets this process scores with: shipped ones plus ``MOTCUA_RULESET_DIR``."""
    rulesets = default_rulesets((settings.ruleset_dir,) if settings.ruleset_dir else ())
    if settings.ruleset:
        rulesets.get(settings.ruleset)  # a pinned name must exist: fail at start, not later
    return rulesets


def broker_file(settings: Settings) -> Path:
    return settings.home / "broker.json"


def running_embedded_broker(settings: Settings) -> str | None:
    """The bootstrap of an embedded broker another motcua process runs here, if any."""
    path = broker_file(settings)
    try:
        info = orjson.loads(path.read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
        return None
    return str(info["bootstrap"])


def intake_for(settings: Settings, bootstrap: str, engine: Engine) -> Intake:
    """The durable intake of a process that has the engine's store: its forwarder also sends
    again what the engine read past without recording."""
    return Intake.open(settings, bootstrap,
                       recorded=lambda log_id, part: recorded_offset(engine, log_id, part))


@dataclass
class Pipeline:
    """The roles of one process and what they share."""

    settings: Settings
    roles: frozenset[str] = frozenset({"engine", "project"})
    clock: Any = None
    broker: BundledBroker | None = None
    bootstrap: str = ""
    rulesets: Rulesets | None = None
    engine: Engine | None = None
    engine_loop: EngineLoop | None = None
    views: ViewStore | None = None
    projection: ProjectionLoop | None = None
    # The durable intake and its forwarder (with the engine or the API, see intake_for).
    intake: Intake | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    owns_broker_file: bool = False
    # Consumer-group mode (many processes share the partitions) for the one-role commands;
    # an all-in-one process assigns itself every partition.
    group: bool = False
    # The alerting role (motcua.alerting), when "alert" is one of the roles.
    alerts: Any = None
    # Run the engine role in a child process (motcua.engine_process) instead of a thread.
    engine_child: bool = False
    engine_process: EngineProcess | None = None
    # This is the child engine of a `motcua up` (motcua.engine_process): the parent relays for
    # it and serves its metrics and health, which it writes every second.
    child: bool = False
    relay_loop: RelayLoop | None = None
    # The projection and the alerting read the events from the event store when this process
    # holds it and owns every partition (projections.feed); False: from motcua.events (tests
    # of that path).
    read_store: bool = True

    def start(self) -> Pipeline:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        self.rulesets = make_rulesets(s)
        if s.kafka_bootstrap is None:
            existing = running_embedded_broker(s)
            if existing is not None and "engine" not in self.roles:
                self.bootstrap = existing
            else:
                self.broker = BundledBroker(s.home / "broker").start()
                self.bootstrap = self.broker.bootstrap
                broker_file(s).write_bytes(orjson.dumps(
                    {"bootstrap": self.bootstrap, "pid": os.getpid()}))
                self.owns_broker_file = True
                log.info("bundled_broker_started", bootstrap=self.bootstrap,
                         pid=self.broker.pid)
                self._spawn("broker", self._supervise_broker)
        else:
            self.bootstrap = s.kafka_bootstrap
            wait_until_reachable(self.bootstrap, s.kafka_security, timeout=15)
        sec = s.kafka_security
        if "engine" in self.roles or "serve" in self.roles:
            kwargs: dict[str, Any] = {}
            if self.clock is not None:
                kwargs["clock"] = self.clock
            self.engine = make_engine(s, **kwargs)
        if "engine" in self.roles and self.engine_child:
            from motcua.logs import CONFIGURED

            assert self.engine is not None  # made here first: the child finds the tables made
            self.engine_process = EngineProcess(s, self.bootstrap, self.engine,
                                                CONFIGURED["level"], CONFIGURED["format"])
            self.engine_process.start()
            self._spawn("engine-process", self.engine_process.supervise)
            # The child does not relay: publishing is done here, on this process's core.
            self.relay_loop = RelayLoop(self.engine.store, self.bootstrap, sec,
                                        partitions=s.partitions)
            self._spawn("relay", self.relay_loop.run)
        elif "engine" in self.roles:
            assert self.engine is not None
            self.engine_loop = EngineLoop(
                self.engine, self.bootstrap, sec, partitions=s.partitions,
                on_batch=self._heartbeat,
                group=f"{s.consumer_group}-engine" if self.group else None,
                session_timeout_ms=s.session_timeout_ms, relay=not self.child)
            self._spawn("engine", self.engine_loop.run)
        if self.engine is not None:
            self.intake = intake_for(s, self.bootstrap, self.engine).start()
        if "project" in self.roles or "serve" in self.roles:
            self.views = ViewStore(views_url(s.database_url))
        feed_store = (self.engine.store if self.engine is not None and self.read_store
                      and not self.group else None)
        if "project" in self.roles:
            assert self.views is not None
            self.projection = ProjectionLoop(
                self.views, self.bootstrap, sec, partitions=s.partitions,
                group=f"{s.consumer_group}-projection" if self.group else None,
                session_timeout_ms=s.session_timeout_ms,
                feed=None if feed_store is None else StoreFeed(feed_store, PROJECTION_COLUMNS))
            self._spawn("projection", self.projection.run)
        if self.child:
            self._spawn("metrics-out", self._export)
        if "alert" in self.roles:
            from motcua.alerting import alert_loop

            self.alerts = alert_loop(s, self.bootstrap, self.group, None if feed_store is None
                                     else StoreFeed(feed_store, ALERTING_COLUMNS))
            self._spawn("alerts", self.alerts.run)
            self._spawn("alert-delivery", self.alerts.deliver)
        return self

    _last_beat: float = 0.0

    def _heartbeat(self) -> None:
        now = time.time()
        if now - self._last_beat >= 1.0 and self.engine is not None:
            self._last_beat = now
            self.engine.store.set_position(HEARTBEAT, int(now))

    def _export(self, stop: threading.Event) -> None:
        """A child engine's metrics and health, written every second for its parent (also
        while the store is away: that is when the parent must hear of it)."""
        while not stop.wait(1.0):
            try:
                write_metrics(metrics_file(self.settings))
                HEALTH.write(health_file(self.settings))
            except OSError as e:
                log.warning("metrics_not_written", error=str(e))

    def _supervise_broker(self, stop: threading.Event) -> None:
        """Start the bundled broker again (same port) if it dies: it comes back empty, and the
        forwarder sends whatever the engine has not recorded yet."""
        while not stop.wait(0.5):
            broker = self.broker
            if broker is None or broker.running or stop.is_set():
                continue
            log.warning("bundled_broker_exited", bootstrap=broker.bootstrap)
            try:
                broker.start(any_thread=True)  # this thread lives as long as the broker
            except UserError as e:
                log.warning("bundled_broker_not_restarted", error=str(e))
                continue
            log.info("bundled_broker_restarted", bootstrap=broker.bootstrap, pid=broker.pid)

    def _spawn(self, name: str, target: Any) -> None:
        t = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for loop in (self.engine_loop, self.engine_process, self.projection):
            if loop is not None:
                loop.ready.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.stop_event.set()
        if self.engine_process is not None:
            self.engine_process.stop()
        for t in self.threads:
            t.join(timeout=10)
        if self.intake is not None:
            self.intake.close()
        if self.engine is not None:
            if self.engine_loop is not None:  # no engine records here any more
                self.engine.store.set_position(HEARTBEAT, 0)
            self.engine.close()
        if self.views is not None:
            self.views.close()
        if self.alerts is not None:
            self.alerts.decider.store.close()
        if self.broker is not None:
            self.broker.stop()
            if self.owns_broker_file:
                broker_file(self.settings).unlink(missing_ok=True)
            log.info("bundled_broker_stopped")

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
