"""The alerting role inside a running pipeline (as ``motcua up`` runs it): real bundled broker,
real engine and projection threads, the wall clock, a real webhook receiver on loopback.

The actions are those of tests/unit/test_alerts.py: B and C are due Thu 3 Sep 2026 17:00 and
open, G waits on the applicant, FB1's last day was Fri 28 Aug. Long after those dates, the only
alerts that hold are B's and C's ``overdue``: exactly two deliveries, signed, and no more."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pytest
from alert_support import Receiver, actions
from conftest import SettingsFor
from faults import wait_for

from kernel import kafka as K
from kernel.metrics import render
from kernel.settings import ACTIONS_TOPIC
from motcua.ingest import subject_key
from motcua.pipeline import Pipeline


@pytest.mark.parametrize("read_store", [True, False], ids=["from-store", "from-kafka"])
def test_up_decides_and_delivers_each_alert_once(read_store: bool, settings_for: SettingsFor,
                                                 tmp_path: Path) -> None:
    """Subscribed before the actions arrive, the receiver gets B's and C's overdue alerts once
    each; the outbox says delivered; /metrics counts them; whether the role reads the event
    store (as ``motcua up`` does) or motcua.events."""
    settings = settings_for(MOTCUA_HOLD_SECONDS="1")
    with Receiver() as rx, Pipeline(settings, roles=frozenset({"engine", "project", "alert"}),
                                    read_store=read_store) as p:
        p.wait_ready()
        p.alerts.decider.store.add(["H15"], "webhook", rx.url, "k", rules=["overdue",
                                                                           "due_soon"])
        producer = K.producer(p.bootstrap, settings.kafka_security)
        for a in actions():
            raw = orjson.dumps(a)
            producer.send(ACTIONS_TOPIC, key=subject_key(raw), value=raw)
        producer.flush()
        producer.close()
        wait_for(lambda: len(rx.got) >= 2, "two alerts to be delivered", timeout=60)
        wait_for(lambda: all(o["state"] == "delivered" for o in p.alerts.decider.store.outbox()),
                 "the deliveries to be recorded", timeout=30)
        outbox = p.alerts.decider.store.outbox()
    assert sorted((o["rule"], o["subject"]) for o in outbox) == [("overdue", "dossier:B"),
                                                                 ("overdue", "dossier:C")]
    assert sorted(r["headers"]["idempotency-key"] for r in rx.got) == sorted(
        o["alert_id"] for o in outbox)
    for r in rx.got:
        mac = hmac.new(b"k", r["body"], hashlib.sha256).hexdigest()
        assert r["headers"]["x-motcua-signature"] == f"sha256={mac}"
    assert b"motcua_alerts_delivered_total" in render()
