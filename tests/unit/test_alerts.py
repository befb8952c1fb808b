"""The alerting role on cases worked out by hand, with an injected clock and a real webhook
receiver on loopback.

Days that are not working days around the case: Sat 29, Sun 30, Mon 31 Aug 2026 (the day off
for the worked Saturday 22 Aug, which is a working day), Tue 1 and Wed 2 Sep (National Day).
Subscription: H15, every rule, within 2 working days.

- B: received Mon 10 Aug, due Thu 3 Sep 17:00, no apology.
  due_soon: the first day d with add_working_days(d, 2) ≥ 3 Sep is Thu 27 Aug (27 → Fri 28,
  Thu 3 Sep; Wed 26 only reaches Fri 28): from Thu 27 Aug 00:00.
  apology_due: an apology is in time until Wed 2 Sep 17:00 (one day before); the last working
  day on or before 2 Sep is Fri 28 Aug: from Fri 28 Aug 00:00.
  overdue: from Thu 3 Sep 17:00:01.
- C: as B, but an apology was issued on Tue 25 Aug: never apology_due.
- G: as B, but waiting on the applicant since Tue 25 Aug: nothing (its clock is stopped).
- FB1: a feedback received Mon 10 Aug, unanswered: the 15th working day after it is Fri 28 Aug
  (Sat 22 Aug counts): feedback_due from the first day within 2 working days of it, Wed 26 Aug
  (26 → 27, 28) 00:00.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from alert_support import Receiver, actions
from pipeline import Pipeline

from engine.relay import event_message
from kernel.lifecycle import load_lifecycle
from projections.alerts.deliver import Dispatcher
from projections.alerts.role import Decider
from projections.alerts.store import AlertStore


def at(text: str) -> float:
    return datetime.fromisoformat(f"2026-{text}+07:00").timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def case(tmp_path: Path) -> Iterator[tuple[Pipeline, list[tuple[int, dict[str, Any]]]]]:
    with Pipeline(tmp_path / "m.db") as p:
        p.send(actions())
        assert p.rejected() == []
        events = [(0, event_message(r)[1]) for r in p.engine.store.read_facts(1, 10**9)]
        yield p, events


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    s = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    yield s
    s.close()


def fired(store: AlertStore) -> list[tuple[str, str]]:
    return [(o["rule"], o["subject"]) for o in store.outbox()]


def test_alerts_fire_at_the_right_instants_across_the_weekend_and_national_day(
        case: Any, store: AlertStore) -> None:
    """Each alert begins exactly at its hand-worked instant, and not a second before."""
    _, events = case
    clock = Clock(at("08-25T12:00:00"))
    decider = Decider(store, load_lifecycle(), clock)
    store.add(["H15"], "webhook", "http://127.0.0.1:9/", "s")
    decider.follow(events)
    steps = [("08-25T12:00:00", []),
             ("08-25T23:59:59", []),
             ("08-26T00:00:00", [("feedback_due", "feedback:FB1")]),
             ("08-26T23:59:59", []),
             ("08-27T00:00:00", [("due_soon", "dossier:B"), ("due_soon", "dossier:C")]),
             ("08-27T23:59:59", []),
             ("08-28T00:00:00", [("apology_due", "dossier:B")]),
             ("09-03T17:00:00", []),
             ("09-03T17:00:01", [("overdue", "dossier:B"), ("overdue", "dossier:C")])]
    seen: list[tuple[str, str]] = []
    for when, new in steps:
        clock.t = at(when)
        decider.decide()
        now = fired(store)
        assert sorted(now[len(seen):]) == sorted(new), when
        seen = now


def test_an_alert_window_missed_while_down_is_not_sent_late(case: Any,
                                                            store: AlertStore) -> None:
    """Started for the first time after the due time, the role sends B and C overdue, not the
    due-soon and apology alerts whose moments have passed; FB1's last day has passed too."""
    _, events = case
    decider = Decider(store, load_lifecycle(), Clock(at("09-04T09:00:00")))
    store.add(["H15.3"], "webhook", "http://127.0.0.1:9/", None)
    decider.follow(events)
    decider.decide()
    assert sorted(fired(store)) == [("overdue", "dossier:B"), ("overdue", "dossier:C")]


def test_a_subscription_added_after_the_events_gets_the_alerts_due_then_and_later(
        case: Any, store: AlertStore) -> None:
    """Events followed and decided while nobody subscribed decide nothing; a subscription added
    on Fri 28 Aug 09:00 gets what holds then (FB1's feedback_due, B's and C's due_soon, B's
    apology_due), and B's and C's overdue at Thu 3 Sep 17:00:01, as if it had been there."""
    _, events = case
    clock = Clock(at("08-20T09:00:00"))
    decider = Decider(store, load_lifecycle(), clock)
    half = len(events) // 2
    decider.follow(events[:half])
    assert decider.decide() == 0
    clock.t = at("08-27T09:00:00")
    decider.follow(events[half:])
    assert decider.decide() == 0
    assert fired(store) == []
    clock.t = at("08-28T09:00:00")
    store.add(["H15"], "webhook", "http://127.0.0.1:9/", "s")
    assert decider.decide() == 4
    assert sorted(fired(store)) == [("apology_due", "dossier:B"), ("due_soon", "dossier:B"),
                                    ("due_soon", "dossier:C"), ("feedback_due", "feedback:FB1")]
    clock.t = at("09-03T17:00:00")
    assert decider.decide() == 0
    clock.t = at("09-03T17:00:01")
    assert decider.decide() == 2
    assert sorted(fired(store)[4:]) == [("overdue", "dossier:B"), ("overdue", "dossier:C")]


def deliver_setup(events: Any, store: AlertStore, url: str,
                  clock: Clock) -> tuple[Decider, Dispatcher]:
    decider = Decider(store, load_lifecycle(), clock)
    store.add(["H15.3"], "webhook", url, "bí mật", rules=["overdue"])
    decider.follow(events)
    decider.decide()
    return decider, Dispatcher(store, clock, timeout=5, lease=30, base=60, cap=3600,
                               rng=random.Random(7))


def test_a_receiver_failing_three_times_then_answering_gets_one_delivery(
        case: Any, store: AlertStore) -> None:
    """Three 500s for each of B's and C's overdue alerts (tried in turn), then 200: four tries
    of the same signed body and key, each after a backoff of base·2^(k−1) scaled into [0.5, 1],
    and one delivered alert each."""
    _, events = case
    clock = Clock(at("09-04T09:00:00"))
    with Receiver([500] * 6) as rx:
        _, dispatcher = deliver_setup(events, store, rx.url, clock)
        assert len(store.outbox()) == 2
        delivered = 0
        for k in range(1, 5):
            delivered += dispatcher.run_once()
            if k < 4:
                waits = [o for o in _rows(store) if o["state"] == "pending"]
                for o in waits:
                    wait = o["next_at"] - clock.t
                    assert 0.5 * 60 * 2 ** (k - 1) <= wait <= 60 * 2 ** (k - 1)
                assert dispatcher.run_once() == 0  # nothing is due before the backoff ends
                clock.t = max(o["next_at"] for o in waits)
    assert delivered == 2
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in rx.got:
        by_key.setdefault(r["headers"]["idempotency-key"], []).append(r)
    ids = sorted(o["alert_id"] for o in store.outbox())
    assert sorted(by_key) == ids
    for key, reqs in by_key.items():
        assert len(reqs) == 4 and len({r["body"] for r in reqs}) == 1
        body = reqs[0]["body"]
        mac = hmac.new("bí mật".encode(), body, hashlib.sha256).hexdigest()
        assert reqs[0]["headers"]["x-motcua-signature"] == f"sha256={mac}"
        doc = orjson.loads(body)
        assert doc["alert_id"] == key and doc["rule"] == "overdue"
        assert doc["due_at"] == "2026-09-03T17:00:00+07:00" and doc["agency_id"] == "H15.3"
    assert [(o["state"], o["attempts"]) for o in store.outbox()] == [("delivered", 4)] * 2
    b = next(o for o in store.outbox() if o["subject"] == "dossier:B")
    assert b["body"]["holder"] == {"unit": "H15.3/kt", "official": "o1", "step": "process"}


def _rows(store: AlertStore) -> list[dict[str, Any]]:
    with store.db.tx(write=False) as c:
        c.execute("SELECT alert_id, state, next_at FROM alert_outbox")
        return [{"alert_id": r[0], "state": r[1], "next_at": r[2]} for r in c.fetchall()]


def test_a_receiver_down_for_a_day_is_retried_then_its_subscription_flagged_dead(
        case: Any, store: AlertStore) -> None:
    """Always 503: tried again and again for 24 h (never more than an hour apart), then the
    alerts are given up and the subscription is listed dead."""
    _, events = case
    clock = Clock(at("09-04T09:00:00"))
    start = clock.t
    with Receiver([503] * 1000) as rx:
        _, dispatcher = deliver_setup(events, store, rx.url, clock)
        while store.listing()[0]["state"] == "active":
            dispatcher.run_once()
            pending = [o["next_at"] for o in _rows(store) if o["state"] == "pending"]
            if pending:
                assert min(pending) - clock.t <= 3600
                clock.t = min(pending)
            assert clock.t - start < 26 * 3600
    assert clock.t - start >= 24 * 3600
    sub = store.listing()[0]
    assert sub["state"] == "dead" and sub["deliveries"]["dead"] >= 1
    tries = len(rx.got)
    clock.t += 7200
    assert dispatcher.run_once() == 0 and len(rx.got) == tries  # a dead subscription rests


KILLED_DISPATCHER = """
import sys, time
from projections.alerts.deliver import Dispatcher
from projections.alerts.store import AlertStore
store = AlertStore(sys.argv[1])
Dispatcher(store, time.time, timeout=30, lease=float(sys.argv[2])).run_once()
"""


def test_a_kill_between_the_call_and_its_record_repeats_the_same_alert_once(
        case: Any, tmp_path: Path) -> None:
    """The receiver SIGKILLs the delivering process as the first request arrives, before it
    answers: after the lease the alert is delivered again with the same Idempotency-Key, and
    there is still one alert per subject."""
    _, events = case
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(url)
    clock = Clock(datetime.now().timestamp())
    victim: list[subprocess.Popen[bytes]] = []

    def kill(_req: dict[str, Any]) -> None:
        if victim and victim[0].poll() is None:
            os.kill(victim[0].pid, signal.SIGKILL)
            victim[0].wait(10)

    with Receiver([], on_request=kill) as rx:
        decider = Decider(store, load_lifecycle(), clock)
        store.add(["H15.3"], "webhook", rx.url, "s", rules=["overdue"])
        decider.follow(events)
        decider.decide()
        ids = sorted(o["alert_id"] for o in store.outbox())
        assert len(ids) == 2
        root = Path(__file__).resolve().parents[2]
        victim.append(subprocess.Popen([sys.executable, "-c", KILLED_DISPATCHER, url, "5"],
                                       cwd=root))
        assert rx.wait_for(1)
        assert victim[0].wait(10) == -signal.SIGKILL
        first_key = rx.got[0]["headers"]["idempotency-key"]
        clock.t = time.time() + 6  # past the lease of the killed try
        delivered = Dispatcher(store, clock, timeout=5, lease=5).run_once()
    assert delivered == 2
    keys = [r["headers"]["idempotency-key"] for r in rx.got]
    assert sorted(set(keys)) == ids and keys.count(first_key) == 2 and len(keys) == 3
    assert sorted(o["alert_id"] for o in store.outbox()) == ids
    assert {o["state"] for o in store.outbox()} == {"delivered"}
    store.close()


def test_a_replay_of_every_event_sends_nothing(case: Any, store: AlertStore) -> None:
    """After delivery, the role's own state is rebuilt from the whole event log and decided
    again later: the same alert ids, nothing new in the outbox, nothing sent."""
    _, events = case
    clock = Clock(at("09-04T09:00:00"))
    with Receiver() as rx:
        _, dispatcher = deliver_setup(events, store, rx.url, clock)
        assert dispatcher.run_once() == 2
        before = store.outbox()
        with store.db.tx() as c:
            c.execute("DELETE FROM alert_subjects")
            c.execute("DELETE FROM alert_positions")
        clock.t += 3600
        decider = Decider(store, load_lifecycle(), clock)
        assert decider.follow(events) == len(events)
        decider.decide()
        assert dispatcher.run_once() == 0
    assert store.outbox() == before and len(rx.got) == 2


def test_events_already_applied_are_not_applied_again(case: Any, store: AlertStore) -> None:
    """A redelivered batch (positions at or below the stored one) changes nothing."""
    _, events = case
    decider = Decider(store, load_lifecycle(), Clock(at("08-25T12:00:00")))
    assert decider.follow(events) == len(events)
    assert Decider(store, load_lifecycle()).follow(events) == 0


def test_events_ahead_of_one_never_received_wait_for_it(case: Any, store: AlertStore) -> None:
    """Events published after one this role never got (a log that lost it) are left out;
    given again in turn, with the missing one, every one is applied (kernel.event_order)."""
    _, events = case
    chained = [(0, {**ev, "follows": events[i - 1][1]["pos"] if i else 0})
               for i, (_, ev) in enumerate(events)]
    decider = Decider(store, load_lifecycle(), Clock(at("08-25T12:00:00")))
    k = len(chained) // 2
    assert decider.follow(chained[:k]) == k
    assert decider.gaps.waiting == {}
    assert decider.follow(chained[k + 1:]) == 0
    assert decider.gaps.waiting == {0: chained[k - 1][1]["pos"]}  # after the last applied
    assert decider.follow(chained[k:]) == len(chained) - k
    assert decider.gaps.waiting == {}


def test_healthz_says_degraded_while_the_role_waits_for_events_its_log_lost(
        case: Any, store: AlertStore) -> None:
    """The role's loop marks its part of ``/healthz`` (``alerts``, on ``motcua.events``) while
    a partition's messages are ahead of events it never got, and clears it once they came, as
    the projection does. Fed as its consumer hands it a poll (no broker: the broker side of a
    lost log is ``test_faults.py``'s)."""
    from collections import namedtuple

    from kafka import TopicPartition

    from kernel.health import HEALTH
    from kernel.settings import EVENTS_TOPIC
    from projections.alerts.role import PART, AlertLoop, _Listener

    Record = namedtuple("Record", "offset value")
    _, events = case
    chained = [{**ev, "follows": events[i - 1][1]["pos"] if i else 0}
               for i, (_, ev) in enumerate(events)]
    loop = AlertLoop(Decider(store, load_lifecycle(), Clock(at("08-25T12:00:00"))),
                     Dispatcher(store, time.time), "127.0.0.1:1", None)

    def poll(first: int, evs: list[dict[str, Any]]) -> None:
        loop.apply({TopicPartition(EVENTS_TOPIC, 0): [
            Record(first + i, orjson.dumps(ev)) for i, ev in enumerate(evs)]})

    def marked() -> list[str]:
        return [d["error"] for d in HEALTH.report()["degraded"]
                if (d["part"], d["dependency"]) == (PART, EVENTS_TOPIC)]

    k = len(chained) // 2
    try:
        poll(0, chained[:k])
        assert marked() == []
        poll(k + 1, chained[k + 1:])
        assert marked() == ["EventsGapError: Events partition 0 lacks the events after store "
                            f"position {chained[k - 1]['pos']}; waiting for the relay to "
                            "publish them again"]
        poll(k, chained[k:])  # the relay's republication, in turn
        assert marked() == []
        assert loop.decider.positions["pos|0"] == chained[-1]["pos"]
        # A partition given to another process while it waits no longer marks this one.
        loop.decider.gaps.ahead(0, chained[-1]["pos"])
        loop.decider.gaps.report()
        assert len(marked()) == 1
        _Listener(loop).on_partitions_revoked([TopicPartition(EVENTS_TOPIC, 0)])
        assert (loop.decider.gaps.waiting, marked()) == ({}, [])
    finally:
        HEALTH.up(PART)
        loop.identity.close()


def test_an_email_alert_arrives_through_a_real_smtp_server_in_vietnamese(
        case: Any, store: AlertStore) -> None:
    """An e-mail subscription's alert goes through an in-process aiosmtpd server: one
    message, with a Vietnamese subject and body and the alert id as its Message-ID."""
    from email import message_from_bytes
    from email.policy import default

    from aiosmtpd.controller import Controller

    got: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            got.append(envelope.content)
            return "250 OK"

    _, events = case
    from kernel.broker import free_port

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = Clock(at("09-04T09:00:00"))
        decider = Decider(store, load_lifecycle(), clock)
        store.add(["H15.3"], "email", "truong.phong@h15.gov.vn", None, rules=["overdue"])
        decider.follow(events)
        decider.decide()
        sent = Dispatcher(store, clock, smtp_url=f"smtp://127.0.0.1:{port}").run_once()
    finally:
        controller.stop()
    assert sent == 2 and len(got) == 2
    msgs = sorted((message_from_bytes(m, policy=default) for m in got),
                  key=lambda m: str(m["Subject"]))
    assert str(msgs[0]["Subject"]) == ("[motcua] Hồ sơ B đã quá hạn trả kết quả "
                                       "(17:00 03/09/2026)")
    assert msgs[0]["To"] == "truong.phong@h15.gov.vn"
    body = msgs[0].get_content()
    assert "Đang giữ hồ sơ: H15.3/kt, cán bộ o1 (bước process)." in body
    ids = {o["alert_id"] for o in store.outbox()}
    assert {str(m["Message-ID"]).strip("<>").split("@")[0] for m in msgs} == ids
