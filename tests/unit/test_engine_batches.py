"""Engine.process on raw action bytes: holds, idempotency, dead letters, due times, the watcher.

Each test runs on its own SQLite file in a temporary directory. Dates are read off a 2026 wall
calendar: Mon 5 Oct 2026 is the reception day and Mon 12 Oct 2026 17:00 (+07:00) the due time unless
a test says otherwise; Tue 24 Nov 2026 and Mon 16 – Fri 20 Feb 2026 are VN holidays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import Wall

from engine.app import Engine, Message
from engine.domain.dossier import Dossier
from engine.store import SQLiteStore
from motcua.pipeline import engine_at
from projections import facts as F

TOPIC = "motcua.actions"
LOG = "cluster-1"
RECEIVED_AT = "2026-10-05T08:00:00+07:00"
DUE_AT = "2026-10-12T17:00:00+07:00"


def _store(engine: Engine) -> SQLiteStore:
    """The engine's store: these tests open their engines on SQLite."""
    store = engine.store
    assert isinstance(store, SQLiteStore)
    return store


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Clock:
    """The engine's injected "now", moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def subject_field(type_: str) -> str:
    if type_.startswith("feedback_"):
        return "feedback_id"
    if type_.startswith("procedure_"):
        return "procedure_id"
    if type_.startswith("agency_"):
        return "agency_id"
    return "dossier_id"


def action(action_id: str, type_: str, at: str, subject: str = "D1",
           data: dict[str, Any] | None = None, source: str = "daklak-igate") -> bytes:
    obj: dict[str, Any] = {"schema": "motcua.action/1", "action_id": action_id, "source": source,
                           "type": type_, "occurred_at": at, subject_field(type_): subject}
    if data is not None:
        obj["data"] = data
    return orjson.dumps(obj)


def received(action_id: str = "r1", subject: str = "D1", at: str = RECEIVED_AT,
             due_at: str | None = DUE_AT, procedure_id: str = "1.001612") -> bytes:
    data: dict[str, Any] = {"agency_id": "H15.15", "procedure_id": procedure_id,
                            "channel": "online"}
    if due_at is not None:
        data["due_at"] = due_at
    return action(action_id, "received", at, subject, data)


def published(action_id: str, value: int, unit: str, procedure_id: str = "1.001612") -> bytes:
    return action(action_id, "procedure_published", "2026-01-10T09:00:00+07:00", procedure_id, {
        "authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-10",
        "legal_basis_effective_date": "2026-01-01", "implementing_agency_ids": ["H15.15"],
        "processing_time": {"value": value, "unit": unit}})


class Feed:
    """Sends batches to engines on one partition, with offsets that keep growing across restarts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.offset = 0

    def send(self, *values: bytes) -> dict[str, int]:
        """One batch; the outcome counts without the zeros a release leaves (``held: 0``)."""
        messages = []
        for v in values:
            messages.append(Message(TOPIC, 0, self.offset, v))
            self.offset += 1
        return {k: n for k, n in self.engine.process(LOG, messages).items() if n}

    def types(self, subject: str = "D1", kind: str = "dossier") -> list[str]:
        return [h["type"] for h in self.engine.history(kind, subject) or []]

    def last_facts(self, subject: str = "D1", kind: str = "dossier") -> Any:
        history = self.engine.history(kind, subject)
        assert history is not None
        return history[-1]["facts"]

    def dead(self) -> list[tuple[str, str | None, int]]:
        return [(d["reason"], d["field"], d["off"])
                for d in self.engine.store.dead_letters_after(0, 100)]


MakeEngine = Callable[..., Engine]


@pytest.fixture
def clock() -> Clock:
    return Clock(t(RECEIVED_AT))


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def make_engine(tmp_path: Path, clock: Clock) -> Iterator[MakeEngine]:
    """Engines on one SQLite file in tmp (a second call is a restart); all closed at the end."""
    made: list[Engine] = []

    def make(**kw: Any) -> Engine:
        kw.setdefault("hold_seconds", 60.0)
        # These tests name procedures they do not publish (see the catalog tests for the wait).
        kw.setdefault("record_uncatalogued", True)
        e = engine_at(f"sqlite:///{tmp_path}/m.db", clock=clock, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


@pytest.fixture
def feed(make_engine: MakeEngine) -> Feed:
    return Feed(make_engine())


# ----- holds ----------------------------------------------------------------------------------


def test_an_action_before_received_is_held_and_applied_when_received_comes_later(
    feed: Feed,
) -> None:
    """A ``digitized`` before its dossier is held, then applied after the later ``received``."""
    assert feed.send(action("a1", "digitized", "2026-10-05T09:00:00+07:00",
                            data={"components": 2})) == {"held": 1}
    assert feed.engine.history("dossier", "D1") is None
    assert feed.send(received()) == {"accepted": 1}
    history = feed.engine.history("dossier", "D1")
    assert history is not None
    assert [h["type"] for h in history] == ["Received", "Digitized"]
    assert history[1]["cause"]["offset"] == 0  # the held message, not the releasing one
    assert feed.dead() == []


def test_an_action_before_received_in_the_same_batch_is_applied_after_it(feed: Feed) -> None:
    """``digitized`` then ``received`` in one batch: both accepted, Received recorded first."""
    counts = feed.send(action("a1", "digitized", "2026-10-05T09:00:00+07:00",
                              data={"components": 2}), received())
    assert counts == {"accepted": 2}
    assert feed.types() == ["Received", "Digitized"]


def test_held_actions_are_applied_in_business_time_order(feed: Feed) -> None:
    """Held ``resolved`` (8 Oct) and ``digitized`` (6 Oct) are applied by time, not arrival."""
    feed.send(action("a1", "resolved", "2026-10-08T09:00:00+07:00", data={"outcome": "approved"}),
              action("a2", "digitized", "2026-10-06T09:00:00+07:00", data={"components": 1}))
    feed.send(received())
    assert feed.types() == ["Received", "Digitized", "Resolved"]


def test_a_held_action_that_breaks_a_rule_on_release_is_dead_lettered(feed: Feed) -> None:
    """A held ``resolved`` stamped 4 Oct, before the 5 Oct reception, is ``before_reception``."""
    feed.send(action("a1", "resolved", "2026-10-04T09:00:00+07:00", data={"outcome": "approved"}))
    assert feed.send(received()) == {"accepted": 1}
    assert feed.dead() == [("before_reception", None, 0)]
    assert feed.types() == ["Received"]


def test_a_held_action_refused_on_release_in_the_same_batch_counts_as_rejected(feed: Feed) -> None:
    """Held and released in one batch, the 4 Oct ``resolved`` counts as one rejection."""
    counts = feed.send(action("a1", "resolved", "2026-10-04T09:00:00+07:00",
                              data={"outcome": "approved"}), received())
    assert counts == {"accepted": 1, "rejected": 1, "rejected:before_reception": 1}
    assert feed.dead() == [("before_reception", None, 0)]


def test_a_held_action_whose_dossier_never_comes_is_rejected_as_unknown_dossier(
    make_engine: MakeEngine, wall: Wall,
) -> None:
    """After the hold (10 s here) ``expire_holds`` dead-letters the action with its bytes."""
    feed = Feed(make_engine(hold_seconds=10, wall=wall))
    raw = action("a1", "resolved", "2026-10-06T09:00:00+07:00", data={"outcome": "approved"})
    assert feed.send(raw) == {"held": 1}
    assert feed.engine.expire_holds() == 0  # still within its hold
    wall.ahead = 10.5
    assert feed.engine.expire_holds() == 1
    [letter] = feed.engine.store.dead_letters_after(0, 100)
    assert (letter["reason"], letter["off"], bytes(letter["raw"])) == ("unknown_dossier", 0, raw)
    assert feed.engine.expire_holds() == 0
    feed.send(received())  # too late: the expired action is not applied
    assert feed.types() == ["Received"]


def test_an_action_beyond_the_hold_limit_is_rejected_as_hold_full(make_engine: MakeEngine) -> None:
    """With room for one held action, a second orphan in the batch is ``hold_full``."""
    feed = Feed(make_engine(hold_limit=1))
    counts = feed.send(action("a1", "synced", "2026-10-06T09:00:00+07:00", "D8"),
                       action("a2", "synced", "2026-10-06T09:00:00+07:00", "D9"))
    assert counts == {"held": 1, "rejected": 1, "rejected:hold_full": 1}
    assert feed.dead() == [("hold_full", None, 1)]


# ----- idempotency and bad input --------------------------------------------------------------


def test_an_exact_repeat_is_a_duplicate_and_is_not_applied_twice(feed: Feed) -> None:
    """The same (source, action_id) with the same content, in the batch and later, is a no-op."""
    sync = action("a1", "synced", "2026-10-06T09:00:00+07:00")
    assert feed.send(received(), sync, sync) == {"accepted": 2, "duplicate": 1}
    assert feed.send(sync) == {"duplicate": 1}
    assert feed.types() == ["Received", "Synced"]
    assert feed.dead() == []


def test_the_same_key_with_other_content_is_rejected_as_conflicting_duplicate(feed: Feed) -> None:
    """A repeat of (source, action_id) with another business time is ``conflicting_duplicate``."""
    feed.send(received(), action("a1", "synced", "2026-10-06T09:00:00+07:00"))
    assert feed.send(action("a1", "synced", "2026-10-07T09:00:00+07:00")) == {
        "rejected": 1, "rejected:conflicting_duplicate": 1}
    assert feed.dead() == [("conflicting_duplicate", "action_id", 2)]
    assert feed.types() == ["Received", "Synced"]


def test_the_same_action_id_from_another_source_is_a_different_action(feed: Feed) -> None:
    """The idempotency key is (source, action_id): another source's ``a1`` is applied."""
    feed.send(received(), action("a1", "synced", "2026-10-06T09:00:00+07:00"))
    assert feed.send(action("a1", "rated", "2026-10-06T10:00:00+07:00",
                            data={"satisfied": True}, source="hcm-igate")) == {"accepted": 1}


def test_a_malformed_line_is_dead_lettered_and_the_batch_goes_on(feed: Feed) -> None:
    """A message that is not JSON is ``malformed_json``; the next message is still applied."""
    assert feed.send(b'{"schema": "motcua.action/1",', received()) == {
        "rejected": 1, "rejected:malformed_json": 1, "accepted": 1}
    assert feed.dead() == [("malformed_json", None, 0)]
    assert feed.types() == ["Received"]


def test_a_schema_failure_names_the_field(feed: Feed) -> None:
    """A ``received`` without ``data.agency_id`` is ``missing_field`` on that field."""
    raw = action("r1", "received", RECEIVED_AT, data={"procedure_id": "P", "channel": "direct"})
    assert feed.send(raw) == {"rejected": 1, "rejected:missing_field": 1}
    assert feed.dead() == [("missing_field", "data.agency_id", 0)]


def test_an_engine_failure_on_one_action_is_dead_lettered_as_internal_error(
    feed: Feed, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug raised while applying one action dead-letters it as ``internal_error``."""

    def broken(self: Dossier, *args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Dossier, "digitize", broken)
    counts = feed.send(received(), action("a1", "digitized", "2026-10-05T09:00:00+07:00",
                                          data={"components": 1}),
                       action("a2", "synced", "2026-10-05T10:00:00+07:00"))
    assert counts == {"accepted": 2, "rejected": 1, "rejected:internal_error": 1}
    assert feed.dead() == [("internal_error", None, 1)]
    assert feed.types() == ["Received", "Synced"]


# ----- lifecycle refusals through the engine --------------------------------------------------

REFUSALS: list[tuple[str, list[bytes], bytes, str]] = [
    ("already_received", [received()], received("r2"), "already_received"),
    ("withdrawn", [received(), action("w", "withdrawn", "2026-10-06T09:00:00+07:00")],
     action("e", "e_result_issued", "2026-10-07T09:00:00+07:00", data={"result_ref": "KQ"}),
     "dossier_withdrawn"),
    ("before_reception", [received()],
     action("d", "digitized", "2026-10-05T07:00:00+07:00", data={"components": 1}),
     "before_reception"),
    ("no_fee", [received()],
     action("p", "paid_online", "2026-10-05T09:00:00+07:00",
            data={"gateway": "national_portal", "amount_vnd": 1000}),
     "no_fee_obligation"),
    ("not_resolved", [received()], action("x", "result_returned", "2026-10-06T09:00:00+07:00"),
     "not_resolved"),
    ("no_request", [received()], action("x", "supplement_completed", "2026-10-06T09:00:00+07:00"),
     "no_supplement_request"),
    ("pending", [received(), action("s", "supplement_requested", "2026-10-06T09:00:00+07:00")],
     action("x", "supplement_requested", "2026-10-07T09:00:00+07:00"), "supplement_pending"),
    ("finished", [received(), action("v", "resolved", "2026-10-06T09:00:00+07:00",
                                     data={"outcome": "rejected"})],
     action("x", "withdrawn", "2026-10-07T09:00:00+07:00"), "dossier_finished"),
    ("repealed", [published("p1", 5, "working_days"),
                  action("p2", "procedure_repealed", "2026-09-01T09:00:00+07:00", "1.001612",
                         {"decision_date": "2026-09-01"})],
     action("p3", "procedure_repealed", "2026-09-02T09:00:00+07:00", "1.001612",
            {"decision_date": "2026-09-02"}),
     "procedure_repealed"),
    ("feedback_twice", [action("f1", "feedback_received", RECEIVED_AT, "F1",
                               {"agency_id": "H15.15", "classification": "other"})],
     action("f2", "feedback_received", RECEIVED_AT, "F1",
            {"agency_id": "H15.15", "classification": "other"}), "already_received"),
    ("answered_twice", [action("f1", "feedback_received", RECEIVED_AT, "F1",
                               {"agency_id": "H15.15", "classification": "other"}),
                        action("f2", "feedback_answered", "2026-10-06T09:00:00+07:00", "F1")],
     action("f3", "feedback_answered", "2026-10-07T09:00:00+07:00", "F1"),
     "feedback_already_answered"),
]


@pytest.mark.parametrize(("case", "before", "bad", "reason"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_a_lifecycle_break_is_dead_lettered_with_its_reason(
    feed: Feed, case: str, before: list[bytes], bad: bytes, reason: str,
) -> None:
    """An action the lifecycle forbids is rejected with its reason, and the batch goes on."""
    first = feed.send(*before)
    assert first == {"accepted": len(before)}
    after = action("z", "agency_registered", RECEIVED_AT, "H15.15",
                   {"name": "Sở Tư pháp", "level": "department"})
    assert feed.send(bad, after) == {"rejected": 1, f"rejected:{reason}": 1, "accepted": 1}
    assert [(r, o) for r, _, o in feed.dead()] == [(reason, len(before))]


# ----- due time from the catalog --------------------------------------------------------------

DUE_CASES = [
    # Mon 23 Nov + 2 working days skips Tue 24 Nov (Vietnam Cultural Day): Wed 25, Thu 26.
    ("cultural_day", 2, "working_days", "2026-11-23T10:00:00+07:00", "2026-11-26T23:59:59+07:00"),
    # Fri 13 Feb + 3 working days skips the weekend, Tet 16–20 Feb and the weekend: Mon 23..Wed 25.
    ("lunar_new_year", 3, "working_days", "2026-02-13T10:00:00+07:00",
     "2026-02-25T23:59:59+07:00"),
    # 5 Oct 08:14 + 30 h = 6 Oct 14:14.
    ("hours", 30, "hours", "2026-10-05T08:14:00+07:00", "2026-10-06T14:14:00+07:00"),
    # Fri 20 Nov + 5 calendar days = Wed 25 Nov (the holiday counts).
    ("days", 5, "days", "2026-11-20T10:00:00+07:00", "2026-11-25T23:59:59+07:00"),
    # 31 Jan + 1 month: there is no 31 Feb, so 28 Feb 2026.
    ("months", 1, "months", "2026-01-31T10:00:00+07:00", "2026-02-28T23:59:59+07:00"),
]


@pytest.mark.parametrize(("case", "value", "unit", "at", "expected"), DUE_CASES,
                         ids=[c[0] for c in DUE_CASES])
def test_without_due_at_the_due_time_comes_from_the_procedures_processing_time(
    feed: Feed, case: str, value: int, unit: str, at: str, expected: str,
) -> None:
    """A ``received`` without ``due_at`` takes its due time from the published processing time."""
    feed.send(published("p1", value, unit))
    assert feed.send(received(at=at, due_at=None)) == {"accepted": 1}
    history = feed.engine.history("dossier", "D1")
    assert history is not None
    assert t(history[0]["data"]["due_at"]) == t(expected)
    assert history[0]["facts"][F.DUE_DAY] == t(expected).date().toordinal()


def test_a_procedure_published_in_the_same_batch_gives_the_due_time(feed: Feed) -> None:
    """The catalog entry written earlier in the batch is already known to ``received``."""
    assert feed.send(published("p1", 1, "working_days"),
                     received(at="2026-11-23T10:00:00+07:00", due_at=None)) == {"accepted": 2}
    history = feed.engine.history("dossier", "D1")
    assert history is not None
    # Mon 23 Nov + 1 working day skips the Tue 24 Nov holiday: Wed 25 Nov.
    assert t(history[0]["data"]["due_at"]) == t("2026-11-25T23:59:59+07:00")


def test_an_amendment_dated_after_the_reception_does_not_change_the_due_time(
    feed: Feed,
) -> None:
    """The processing time in force at the reception gives the due time, even when a later
    amendment reached the engine first (catalog and dossiers travel on different partitions):
    1 working day from Mon 23 Nov 10:00 skips the Tue 24 Nov holiday (Wed 25 Nov), not the
    10 working days the procedure was given on 1 Dec."""
    later = orjson.loads(published("p2", 10, "working_days"))
    later["occurred_at"] = "2026-12-01T09:00:00+07:00"
    assert feed.send(published("p1", 1, "working_days"), orjson.dumps(later)) == {"accepted": 2}
    assert feed.send(received(at="2026-11-23T10:00:00+07:00", due_at=None)) == {"accepted": 1}
    history = feed.engine.history("dossier", "D1")
    assert history is not None
    assert t(history[0]["data"]["due_at"]) == t("2026-11-25T23:59:59+07:00")
    feed.send(received("r2", "D2", at="2026-12-02T10:00:00+07:00", due_at=None))
    second = feed.engine.history("dossier", "D2")
    assert second is not None  # Wed 2 Dec + 10 working days: Wed 16 Dec
    assert t(second[0]["data"]["due_at"]) == t("2026-12-16T23:59:59+07:00")


def test_no_due_at_and_a_procedure_that_never_comes_is_rejected_as_no_due_time(
    make_engine: MakeEngine, wall: Wall,
) -> None:
    """Without ``due_at``, ``received`` waits for its procedure; after the hold, ``no_due_time``."""
    feed = Feed(make_engine(hold_seconds=10, wall=wall))
    assert feed.send(received(due_at=None, procedure_id="9.999999")) == {"held": 1}
    assert feed.engine.expire_holds() == 0  # still within its hold
    wall.ahead = 10.5
    assert feed.engine.expire_holds() == 1
    assert feed.dead() == [("no_due_time", None, 0)]
    assert feed.engine.history("dossier", "D1") is None


def test_a_received_waiting_for_its_procedure_is_applied_when_the_procedure_comes(
    feed: Feed,
) -> None:
    """The held ``received`` (and what waits on its dossier) is applied once the catalog has it."""
    assert feed.send(received(at="2026-11-23T10:00:00+07:00", due_at=None),
                     action("a1", "synced", "2026-11-23T11:00:00+07:00")) == {"held": 2}
    assert feed.send(published("p1", 1, "working_days")) == {"accepted": 1}
    assert feed.types() == ["Received", "Synced"]
    history = feed.engine.history("dossier", "D1")
    assert history is not None
    # Mon 23 Nov + 1 working day skips the Tue 24 Nov holiday: Wed 25 Nov.
    assert t(history[0]["data"]["due_at"]) == t("2026-11-25T23:59:59+07:00")
    assert feed.dead() == []


def test_a_dossier_of_an_unknown_procedure_with_due_at_is_accepted_when_so_configured(
    feed: Feed,
) -> None:
    """With ``record_uncatalogued`` (MOTCUA_RECORD_UNCATALOGUED=1) a procedure the catalog does
    not know yet does not hold a dossier that has ``due_at``."""
    assert feed.send(received(procedure_id="9.999999")) == {"accepted": 1}


def internal(action_id: str) -> bytes:
    """Procedure 1.001612 with an internal process: ``process`` has 8 office hours."""
    return action(action_id, "procedure_published", "2026-01-10T09:00:00+07:00", "1.001612", {
        "authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-10",
        "legal_basis_effective_date": "2026-01-01", "implementing_agency_ids": ["H15.15"],
        "processing_time": {"value": 5, "unit": "working_days"},
        "internal_process": [{"step": "process", "working_hours": 8}]})


def handed(action_id: str) -> bytes:
    return action(action_id, "handed_over", "2026-10-05T09:00:00+07:00",
                  data={"to_unit": "X", "step": "process"})


def test_a_dossier_with_due_at_waits_for_its_procedure_so_its_steps_have_budgets(
    make_engine: MakeEngine,
) -> None:
    """By default a dossier whose procedure has not arrived is held with what follows it, and
    recorded when the procedure comes: its ``process`` step then gets the catalog's 8 office
    hours (Mon 5 Oct 09:00 + 8 h = Tue 6 Oct 09:00), as if the catalog had come first."""
    feed = Feed(make_engine(record_uncatalogued=False))
    assert feed.send(received(), handed("h1")) == {"held": 2}
    assert feed.send(internal("p1")) == {"accepted": 1}
    assert feed.types() == ["Received", "HandedOver"]
    sheet = feed.last_facts()[F.DossierFacts._fields.index("sheet")]
    assert sheet[-1][:2] == ["process", "X"]
    assert sheet[-1][4] == int(t("2026-10-06T09:00:00+07:00").timestamp())


def test_a_dossier_with_due_at_whose_procedure_never_comes_is_recorded_after_the_hold(
    make_engine: MakeEngine, wall: Wall,
) -> None:
    """After the hold the dossier is recorded without the catalog (no step budget), and the
    actions held behind it are applied, not refused as unknown."""
    feed = Feed(make_engine(hold_seconds=10, wall=wall, record_uncatalogued=False))
    assert feed.send(received(procedure_id="9.999999"), handed("h1")) == {"held": 2}
    assert feed.engine.expire_holds() == 0  # still within its hold
    wall.ahead = 10.5
    assert feed.engine.expire_holds() == 2
    assert feed.types() == ["Received", "HandedOver"] and feed.dead() == []
    sheet = feed.last_facts()[F.DossierFacts._fields.index("sheet")]
    assert sheet[-1][:2] == ["process", "X"] and sheet[-1][4] is None
    assert feed.engine.store.held_count() == 0


# ----- the deadline watcher -------------------------------------------------------------------


def overdue_events(feed: Feed) -> list[dict[str, Any]]:
    return [h for h in feed.engine.history("dossier", "D1") or [] if h["type"] == "BecameOverdue"]


def test_the_watcher_records_overdue_at_the_due_time_exactly_once(
    feed: Feed, clock: Clock, make_engine: MakeEngine,
) -> None:
    """BecameOverdue is recorded at 12 Oct 17:00, not a second before, and never twice."""
    feed.send(received())
    clock.now = t(DUE_AT) - timedelta(seconds=1)
    assert feed.engine.record_overdue() == 0
    clock.now = t(DUE_AT)
    assert feed.engine.record_overdue() == 1
    [event] = overdue_events(feed)
    assert event["at"] == DUE_AT
    assert event["cause"] == {"source": "motcua", "reason": "deadline_passed"}
    assert event["facts"][F.FLAGS] & F.OVERDUE_RECORDED
    clock.now = t("2026-10-20T09:00:00+07:00")
    assert feed.engine.record_overdue() == 0
    feed.engine.close()
    restarted = Feed(make_engine())
    assert restarted.engine.record_overdue() == 0
    assert len(overdue_events(restarted)) == 1


def test_the_watcher_finds_deadlines_recorded_before_a_restart(
    feed: Feed, clock: Clock, make_engine: MakeEngine,
) -> None:
    """The deadline index is stored with the events, so a fresh engine records the overdue fact."""
    feed.send(received())
    feed.engine.close()
    restarted = Feed(make_engine())
    clock.now = t("2026-10-13T09:00:00+07:00")
    assert restarted.engine.record_overdue() == 1
    assert [e["at"] for e in overdue_events(restarted)] == [DUE_AT]


def test_the_watcher_skips_a_finished_dossier(feed: Feed, clock: Clock) -> None:
    """A dossier resolved on 8 Oct is never recorded overdue."""
    feed.send(received(), action("v", "resolved", "2026-10-08T09:00:00+07:00",
                                 data={"outcome": "approved"}))
    clock.now = t("2026-10-20T09:00:00+07:00")
    assert feed.engine.record_overdue() == 0
    assert overdue_events(feed) == []


def test_the_watcher_skips_a_waiting_dossier_and_uses_the_shifted_due_after(
    feed: Feed, clock: Clock,
) -> None:
    """Waiting 7 Oct 09:00 → 9 Oct 09:00 stops the clock; the due time becomes 14 Oct 17:00."""
    feed.send(received(), action("s", "supplement_requested", "2026-10-07T09:00:00+07:00"))
    clock.now = t("2026-10-13T09:00:00+07:00")
    assert feed.engine.record_overdue() == 0
    feed.send(action("c", "supplement_completed", "2026-10-09T09:00:00+07:00"))
    clock.now = t("2026-10-14T16:59:59+07:00")
    assert feed.engine.record_overdue() == 0
    clock.now = t("2026-10-14T17:00:00+07:00")
    assert feed.engine.record_overdue() == 1
    assert [e["at"] for e in overdue_events(feed)] == ["2026-10-14T17:00:00+07:00"]


# ----- feedback about a dossier ---------------------------------------------------------------

FEEDBACK = action("f1", "feedback_received", "2026-10-06T09:00:00+07:00", "F1",
                  {"agency_id": "H15.15", "classification": "procedure", "dossier_id": "D1"})


def test_feedback_about_a_received_dossier_links_it(feed: Feed) -> None:
    """Feedback naming a known dossier records FeedbackLinked on it and sets FEEDBACK_LINKED."""
    feed.send(received())
    assert feed.send(FEEDBACK) == {"accepted": 1}
    assert feed.types() == ["Received", "FeedbackLinked"]
    assert feed.last_facts()[F.FLAGS] & F.FEEDBACK_LINKED


def test_feedback_before_its_dossier_links_it_when_the_dossier_arrives(feed: Feed) -> None:
    """Feedback first, dossier in a later batch: the dossier gets FEEDBACK_LINKED on arrival."""
    assert feed.send(FEEDBACK) == {"accepted": 1}
    assert feed.send(received()) == {"accepted": 1}
    assert feed.types() == ["Received", "FeedbackLinked"]
    assert feed.last_facts()[F.FLAGS] & F.FEEDBACK_LINKED


def test_feedback_and_its_dossier_in_one_batch_count_as_two_accepted(feed: Feed) -> None:
    """The internal link row is not a consumed message, so the counts stay two accepted."""
    assert feed.send(FEEDBACK, received()) == {"accepted": 2}
    assert feed.last_facts()[F.FLAGS] & F.FEEDBACK_LINKED


def test_feedback_gets_its_answer_due_day_from_the_ruleset(feed: Feed) -> None:
    """Received Tue 6 Oct + 15 working days: 7–9 Oct (3), 12–16 (8), 19–23 (13), 26, 27 Oct (15)."""
    feed.send(FEEDBACK)
    assert feed.last_facts("F1", "feedback")[F.DUE_DAY] == date(2026, 10, 27).toordinal()


# ----- the judgement as recorded --------------------------------------------------------------

JUDGED_CASES = [
    ("open", [], F.OPEN),
    # Resolved 12 Oct 16:00 before the 17:00 due time.
    ("finished_on_time", [("resolved", "2026-10-12T16:00:00+07:00", {"outcome": "approved"})], 1),
    # Resolved 13 Oct 09:00 after the 12 Oct 17:00 due time.
    ("finished_late", [("resolved", "2026-10-13T09:00:00+07:00", {"outcome": "approved"})], 0),
    # Waiting since 9 Oct, before the due time: judged at the request, on time.
    ("waiting", [("supplement_requested", "2026-10-09T09:00:00+07:00", None)], 1),
    # Two requests: late however fast it finishes.
    ("two_requests", [("supplement_requested", "2026-10-06T09:00:00+07:00", None),
                      ("supplement_completed", "2026-10-06T10:00:00+07:00", None),
                      ("supplement_requested", "2026-10-06T11:00:00+07:00", None),
                      ("supplement_completed", "2026-10-06T12:00:00+07:00", None),
                      ("resolved", "2026-10-07T09:00:00+07:00", {"outcome": "approved"})], 0),
    # 2 days waiting move the due time to 14 Oct 17:00; resolved 14 Oct 10:00 is on time.
    ("supplement_shift", [("supplement_requested", "2026-10-07T09:00:00+07:00", None),
                          ("supplement_completed", "2026-10-09T09:00:00+07:00", None),
                          ("resolved", "2026-10-14T10:00:00+07:00", {"outcome": "approved"})], 1),
]


@pytest.mark.parametrize(("case", "steps", "judged"), JUDGED_CASES,
                         ids=[c[0] for c in JUDGED_CASES])
def test_the_recorded_facts_carry_the_on_time_judgement(
    feed: Feed, case: str, steps: list[tuple[str, str, dict[str, Any] | None]], judged: int,
) -> None:
    """The last event's facts hold ``judged``: 1 on time, 0 late, OPEN for an open dossier."""
    actions = [action(f"s{i}", type_, at, data=data) for i, (type_, at, data) in enumerate(steps)]
    assert feed.send(received(), *actions) == {"accepted": 1 + len(steps)}
    assert feed.last_facts()[F.JUDGED] == judged


def test_every_connection_of_the_sqlite_store_has_the_larger_page_cache(tmp_path: Path) -> None:
    """The engine's SQLite connections, the one that made the tables and any the pool opens
    later, each get STORE_CACHE_KIB of page cache, not SQLite's 2 MiB."""
    from engine.store import STORE_CACHE_KIB

    engine = engine_at(f"sqlite:///{tmp_path}/s.db")
    try:
        pool = _store(engine).datastore.pool
        conns = [pool.get_connection(is_writer=False) for _ in range(2)]
        seen = []
        for conn in conns:
            cur = conn.cursor()
            cur.execute("PRAGMA cache_size")
            seen.append(cur.fetchone()[0])
        for conn in conns:
            pool.put_connection(conn)
        assert conns[0] is not conns[1]
        assert seen == [-STORE_CACHE_KIB, -STORE_CACHE_KIB]
        assert STORE_CACHE_KIB > 2048
    finally:
        engine.close()


def test_an_engine_on_sqlite_never_imports_the_postgresql_driver(tmp_path: Path) -> None:
    """A process whose store is SQLite records without importing psycopg (a twentieth of a
    second at each start, engine/store_pg.py), and the PostgreSQL store it names by topic is
    the class in engine/store_pg.py. In a fresh interpreter: this one has psycopg already."""
    import subprocess
    import sys

    code = f"""
import sys
from eventsourcing.utils import resolve_topic
from engine.app import Message, store_env
from motcua.pipeline import engine_at
engine = engine_at("sqlite:///{tmp_path}/s.db")
engine.process("L", [Message("motcua.actions", 0, 0, b"not json")])
engine.close()
topic = store_env("postgresql://u@127.0.0.1/db")["APPLICATION_RECORDER_TOPIC"]
assert "psycopg" not in sys.modules, "psycopg was imported"
cls = resolve_topic(topic)
print(cls.__module__, cls.__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    # (the last line: the engine's log of the dead-lettered line comes before it)
    assert done.stdout.decode().splitlines()[-1].split() == ["engine.store_pg", "PostgresStore"]
