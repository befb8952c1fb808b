"""Prometheus metrics of every role, in one registry that ``/metrics`` serves."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter("motcua_actions_total", "Consumed actions by outcome",
                               ["outcome"], registry=registry)
        self.rejected = Counter("motcua_rejected_actions_total", "Refused actions by reason",
                                ["reason"], registry=registry)
        self.batch_seconds = Histogram("motcua_engine_batch_seconds",
                                       "Time to record one engine batch", registry=registry)
        self.checkpoint_seconds = Histogram(
            "motcua_engine_checkpoint_seconds", "Time to copy the event store's WAL into its "
            "database file, beside the engine's batches (SQLite; engine.checkpoint)",
            registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.engine_position = Gauge("motcua_engine_position",
                                     "Last recorded offset of motcua.actions", ["partition"],
                                     registry=registry)
        self.events_folded = Counter("motcua_events_folded_total",
                                     "Events folded into the views", registry=registry)
        self.events_quarantined = Counter(
            "motcua_events_quarantined_total", "Events the projection could not fold or store "
            "and stepped over (see /healthz)", registry=registry)
        self.events_skipped = Counter("motcua_events_skipped_total",
                                      "Events already applied (redelivered)", registry=registry)
        self.events_ahead = Counter(
            "motcua_events_ahead_total", "Events left out for being ahead of events a new log "
            "lost (published again in turn by the relay)", registry=registry)
        self.projection_lag = Gauge("motcua_projection_lag_messages",
                                    "Messages of motcua.events not yet folded", ["partition"],
                                    registry=registry)
        self.projection_position = Gauge("motcua_projection_position",
                                         "Store position folded, per events partition",
                                         ["partition"], registry=registry)
        self.query_seconds = Histogram("motcua_query_seconds", "Query latency", ["query"],
                                       registry=registry)
        self.http_refusals = Counter("motcua_bridge_refusals_total",
                                     "Refused HTTP bridge requests", ["status"],
                                     registry=registry)
        self.dependency_up = Gauge("motcua_dependency_up",
                                   "1 while a part of this process reaches a dependency, 0 "
                                   "while it cannot (database, kafka, internal)",
                                   ["part", "dependency"], registry=registry)
        self.spooled = Counter("motcua_spooled_actions_total",
                               "Actions committed to the durable intake (spool)",
                               registry=registry)
        self.forwarded = Counter("motcua_forwarded_actions_total",
                                 "Spooled actions forwarded to motcua.actions (repeats included)",
                                 registry=registry)
        self.spool_backlog = Gauge("motcua_spool_backlog",
                                   "Spooled actions the engine has not recorded yet",
                                   registry=registry)
        # The alerting role (projections.alerts).
        self.alerts_decided = Counter("motcua_alerts_decided_total",
                                      "Alerts put in the outbox, by rule", ["rule"],
                                      registry=registry)
        self.alert_decision_seconds = Histogram(
            "motcua_alert_decision_seconds", "From when an alert became due (or its event was "
            "recorded, if later) to its decision", registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.alerts_delivered = Counter("motcua_alerts_delivered_total",
                                        "Alerts delivered (2xx, or accepted by SMTP)",
                                        ["channel"], registry=registry)
        self.alerts_failed = Counter("motcua_alert_delivery_failures_total",
                                     "Failed delivery attempts (retried with backoff)",
                                     ["channel"], registry=registry)
        self.alerts_dead = Counter("motcua_alerts_dead_total",
                                   "Alerts given up after failing for the dead-after time "
                                   "(their subscription flagged dead)", registry=registry)


METRICS = _Metrics(REGISTRY)


# Metrics files of this process's children (motcua.engine_process), merged into ``render``.
FOREIGN: list[Path] = []


def _process(namespace: str) -> bytes:
    """This process's own figures (CPU seconds, resident memory, open files and their limit,
    start time: Prometheus' process collector, read from /proc), named ``<namespace>_process_*``:
    they are per process, so a child's take a name of their own rather than being merged."""
    registry = CollectorRegistry()
    ProcessCollector(namespace=namespace, registry=registry)
    return generate_latest(registry)


def render() -> bytes:
    """This process's metrics, with those of its children merged in: counters and histograms
    summed, gauges by their largest value (a child's gauges are ones this process does not
    set, or the same reading, as the spool's backlog). The process's own figures are
    ``motcua_process_*``; a child engine's, ``motcua_engine_process_*`` (``write_metrics``)."""
    own = generate_latest(REGISTRY) + _process("motcua")
    texts = []
    for path in FOREIGN:
        try:
            texts.append(path.read_text())
        except OSError:  # not written yet, or being replaced
            continue
    if not texts:
        return own
    return merge([own.decode(), *texts]).encode()


def write_metrics(path: Path) -> None:
    """Write this process's metrics for a parent to merge (replaced atomically); its own
    figures as a child engine's, ``motcua_engine_process_*``."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(generate_latest(REGISTRY) + _process("motcua_engine"))
    os.replace(tmp, path)


def merge(texts: list[str]) -> str:
    """Prometheus text expositions merged into one: samples of the same name and labels summed
    (counters, histograms), or their largest value taken (gauges, ``_created`` times: the
    smallest)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            families.setdefault(fam.name, fam)
            got = values.setdefault(fam.name, {})
            for sample in fam.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in got:
                    got[key] = sample.value
                elif sample.name.endswith("_created"):
                    got[key] = min(got[key], sample.value)
                elif fam.type == "gauge":
                    got[key] = max(got[key], sample.value)
                else:
                    got[key] = got[key] + sample.value
    out = []
    for name, fam in families.items():
        merged = Metric(fam.name, fam.documentation, fam.type)
        for (sname, labels), v in values[name].items():
            merged.add_sample(sname, dict(labels), v)
        out.append(merged)
    registry = CollectorRegistry()
    registry.register(_Fixed(out))
    return generate_latest(registry).decode()


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
