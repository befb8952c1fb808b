"""Promises of docs/decisions.md, docs/lifecycle.md and docs/schema-evolution.md that no other
test pinned, mostly through ``Engine.process`` on raw bytes (dates read off a 2026 calendar, as
in test_engine_batches)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from faults import Wall
from test_engine_batches import FEEDBACK, Feed, action, published, received

from motcua.ingest import subject_key
from motcua.pipeline import engine_at
from projections import facts as F


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def feed(tmp_path: Path, wall: Wall) -> Iterator[Feed]:
    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}", hold_seconds=10, wall=wall)
    yield Feed(engine)
    engine.close()


def test_a_refused_key_is_not_taken_so_a_corrected_resend_is_applied(feed: Feed) -> None:
    """A refused action's (source, action_id) is not taken: the same action again is refused
    again (and counted again), and a corrected one under that id is applied."""
    feed.send(received())  # no fee obligation
    pay = action("a1", "paid_online", "2026-10-06T09:00:00+07:00",
                 data={"gateway": "national_portal", "amount_vnd": 20_000})
    refused = {"rejected": 1, "rejected:no_fee_obligation": 1}
    assert feed.send(pay) == refused
    assert feed.send(pay) == refused
    assert feed.send(action("a1", "synced", "2026-10-06T09:00:00+07:00")) == {"accepted": 1}
    assert feed.types() == ["Received", "Synced"]
    assert [d[0] for d in feed.dead()] == ["no_fee_obligation", "no_fee_obligation"]


def test_a_due_at_before_the_reception_is_refused_as_invalid_time(feed: Feed) -> None:
    """Received Mon 5 Oct 08:00 and due Sun 4 Oct 17:00: ``invalid_time`` on ``data.due_at``."""
    counts = feed.send(received(due_at="2026-10-04T17:00:00+07:00"))
    assert counts == {"rejected": 1, "rejected:invalid_time": 1}
    assert feed.dead() == [("invalid_time", "data.due_at", 0)]
    assert feed.engine.history("dossier", "D1") is None


@pytest.mark.parametrize(("value", "unit"), [(3_651, "days"), (121, "months"),
                                             (87_601, "hours"), (2_501, "working_days")])
def test_a_processing_time_over_ten_years_is_invalid_field(feed: Feed, value: int,
                                                           unit: str) -> None:
    """Ten years in the unit is the most a processing time may be; one more is refused."""
    assert feed.send(published("p1", value, unit)) == {"rejected": 1,
                                                       "rejected:invalid_field": 1}
    assert feed.dead() == [("invalid_field", "data.processing_time.value", 0)]
    assert feed.send(published("p2", value - 1, unit, "1.000002")) == {"accepted": 1}


def test_a_fee_may_be_paid_online_in_parts(feed: Feed) -> None:
    """Two ``paid_online`` on a fee-bearing dossier are both recorded (no ``already_paid``)."""
    bearing = action("r1", "received", "2026-10-05T08:00:00+07:00", data={
        "agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online",
        "due_at": "2026-10-12T17:00:00+07:00", "fee_required": True})
    assert feed.send(bearing) == {"accepted": 1}
    parts = [action(f"p{i}", "paid_online", f"2026-10-0{5 + i}T09:00:00+07:00",
                    data={"gateway": "national_portal", "amount_vnd": 10_000})
             for i in (1, 2)]
    assert feed.send(*parts) == {"accepted": 2}
    assert feed.types() == ["Received", "PaidOnline", "PaidOnline"]


def test_a_feedback_link_to_a_dossier_that_never_comes_is_dropped_silently(
    feed: Feed, wall: Wall,
) -> None:
    """Feedback naming a dossier that does not arrive within the hold is accepted; when the
    hold expires the link is dropped with no dead letter, and a dossier arriving later is not
    marked (docs/decisions.md, "Feedback linked to a dossier")."""
    assert feed.send(FEEDBACK) == {"accepted": 1}
    wall.ahead = 11
    feed.engine.expire_holds()
    assert feed.dead() == []
    assert feed.types("F1", "feedback") == ["Received"]
    assert feed.send(received()) == {"accepted": 1}
    assert feed.types() == ["Received"]
    assert not feed.last_facts()[F.FLAGS] & F.FEEDBACK_LINKED


def test_ingest_keys_v1_and_v2_lines_by_their_subject() -> None:
    """``motcua ingest`` (and the demo) key a ``motcua.action/2`` line by ``subject.id``, as a
    v1 line by its subject field, so one subject's actions stay on one partition."""
    v1 = received(subject="H15.15-261005-0042")
    obj = orjson.loads(v1)
    v2 = {**{k: v for k, v in obj.items() if k != "dossier_id"}, "schema": "motcua.action/2",
          "subject": {"kind": "dossier", "id": "H15.15-261005-0042"}}
    assert subject_key(v1) == subject_key(orjson.dumps(v2)) == b"H15.15-261005-0042"
    assert subject_key(b"not json") is None
