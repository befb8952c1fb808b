"""Lifecycle rules of Feedback, Procedure and Agency (docs/lifecycle.md), on the aggregates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest

from engine.domain.catalog import Agency, Procedure
from engine.domain.errors import (
    AlreadyReceivedError,
    FeedbackAlreadyAnsweredError,
    ProcedureRepealedError,
    TimeBeforeReceptionError,
)
from engine.domain.feedback import Feedback
from projections import facts as F

# Mon 5 Oct 2026 + 15 working days: 6–9 Oct (4), 12–16 (9), 19–23 (14), Mon 26 Oct (15).
ANSWER_DUE = date(2026, 10, 26)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def feedback(dossier_id: str | None = None) -> Feedback:
    data = {"agency_id": "H15.15", "classification": "staff_conduct", "dossier_id": dossier_id}
    return Feedback.receive(id=uuid4(), feedback_id="F1", data=data,
                            at=t("2026-10-05T08:00:00+07:00"), cause=None)


def kinds(s: Any) -> list[str]:
    return [type(e).__name__ for e in s.pending_events]


# ----- feedback -------------------------------------------------------------------------------


def test_receiving_feedback_opens_it_with_its_answer_due_day() -> None:
    """``feedback_received`` records Received; open (judged OPEN) until answered, due 26 Oct
    (15 working days, the shipped petition rule)."""
    fb = feedback()
    assert kinds(fb) == ["Received"]
    assert F.facts_of(fb) == ["H15.15", "2026-10", "staff_conduct", F.FB_ABOUT_STAFF, F.OPEN,
                              ANSWER_DUE.toordinal()]


def test_feedback_about_a_dossier_is_flagged_linked() -> None:
    """A ``dossier_id`` in the data sets FB_LINKED_TO_DOSSIER."""
    assert F.facts_of(feedback("D1"))[F.FLAGS] & F.FB_LINKED_TO_DOSSIER


def test_a_second_feedback_received_is_refused_as_already_received() -> None:
    """Feedback is received once; another ``feedback_received`` is ``already_received``."""
    with pytest.raises(AlreadyReceivedError) as e:
        feedback().receive_again()
    assert e.value.reason == "already_received"


def test_answering_by_the_due_day_is_on_time() -> None:
    """Answered on 26 Oct, the due day itself: Answered, FB_ANSWERED, judged 1."""
    fb = feedback()
    fb.answer(t("2026-10-26T23:00:00+07:00"), None)
    assert kinds(fb)[-1] == "Answered"
    assert F.facts_of(fb)[F.FLAGS] & F.FB_ANSWERED
    assert F.facts_of(fb)[F.JUDGED] == 1


def test_answering_after_the_due_day_is_late() -> None:
    """Answered on 27 Oct, a day after 26 Oct: judged 0."""
    fb = feedback()
    fb.answer(t("2026-10-27T08:00:00+07:00"), None)
    assert F.facts_of(fb)[F.JUDGED] == 0


def test_a_second_answer_is_refused_as_feedback_already_answered() -> None:
    """Feedback is answered once; another ``feedback_answered`` is ``feedback_already_answered``."""
    fb = feedback()
    fb.answer(t("2026-10-06T08:00:00+07:00"), None)
    with pytest.raises(FeedbackAlreadyAnsweredError) as e:
        fb.answer(t("2026-10-07T08:00:00+07:00"), None)
    assert e.value.reason == "feedback_already_answered"


def test_a_feedback_action_before_its_reception_is_refused_as_before_reception() -> None:
    """An answer stamped before the feedback was received is ``before_reception``."""
    with pytest.raises(TimeBeforeReceptionError) as e:
        feedback().answer(t("2026-10-05T07:00:00+07:00"), None)
    assert e.value.reason == "before_reception"


def test_the_latest_feedback_rating_decides_the_unsatisfied_flag() -> None:
    """An unsatisfied rating sets FB_RATED_UNSATISFIED; a satisfied one clears it."""
    fb = feedback()
    fb.rate(False, t("2026-10-06T08:00:00+07:00"), None)
    assert F.facts_of(fb)[F.FLAGS] & F.FB_RATED_UNSATISFIED
    fb.rate(True, t("2026-10-07T08:00:00+07:00"), None)
    assert not F.facts_of(fb)[F.FLAGS] & F.FB_RATED_UNSATISFIED


def test_a_recomplaint_sets_the_recomplained_flag() -> None:
    """``feedback_recomplained`` records Recomplained and sets FB_RECOMPLAINED."""
    fb = feedback()
    fb.recomplain(t("2026-10-06T08:00:00+07:00"), None)
    assert kinds(fb)[-1] == "Recomplained"
    assert F.facts_of(fb)[F.FLAGS] & F.FB_RECOMPLAINED


# ----- procedure ------------------------------------------------------------------------------

PUBLISHED: dict[str, Any] = {
    "authority_id": "H15", "authority_level": "province", "decision_date": date(2026, 1, 10),
    "legal_basis_effective_date": date(2026, 1, 1), "implementing_agency_ids": ["H15.15"],
    "processing_time": {"value": 5, "unit": "working_days"}, "fee_bearing": True,
}


def procedure() -> Procedure:
    return Procedure.publish(id=uuid4(), procedure_id="1.001612", data=PUBLISHED,
                             at=t("2026-01-10T09:00:00+07:00"), cause=None)


def test_publishing_a_procedure_records_its_catalog_entry() -> None:
    """``procedure_published`` records Published; its facts are the entry, booleans defaulted."""
    p = procedure()
    assert kinds(p) == ["Published"]
    assert F.facts_of(p)["processing_time"] == {"value": 5, "unit": "working_days"}
    assert F.facts_of(p)["fee_bearing"] is True and F.facts_of(p)["full_online_eligible"] is False
    assert F.facts_of(p)["decisions"] == [{"decision_date": "2026-01-10",
                                     "legal_basis_effective_date": "2026-01-01",
                                     "authority_level": "province"}]
    assert F.facts_of(p)["repealed"] is None
    assert p.processing_time(datetime(2026, 6, 1, tzinfo=UTC)) == {"value": 5,
                                                                   "unit": "working_days"}


def test_publishing_again_amends_the_entry_and_keeps_every_decision() -> None:
    """A later publication records Republished: new processing time, both decisions kept."""
    p = procedure()
    later = {**PUBLISHED, "decision_date": date(2026, 6, 1),
             "processing_time": {"value": 3, "unit": "days"}}
    p.publish_again(later, t("2026-06-01T09:00:00+07:00"), None)
    assert kinds(p)[-1] == "Republished"
    assert p.processing_time(t("2026-06-02T09:00:00+07:00")) == {"value": 3, "unit": "days"}
    # Before the amendment, the first decision's processing time is still the one in force.
    assert p.processing_time(t("2026-05-31T09:00:00+07:00")) == {"value": 5,
                                                                 "unit": "working_days"}
    assert [d["decision_date"] for d in F.facts_of(p)["decisions"]] == ["2026-01-10", "2026-06-01"]


def test_publicizing_records_the_time_it_was_made_public() -> None:
    """``procedure_publicized`` records Publicized and appends its business time."""
    p = procedure()
    p.publicize(t("2026-01-12T09:00:00+07:00"), None)
    assert kinds(p)[-1] == "Publicized"
    assert F.facts_of(p)["publicized"] == ["2026-01-12T09:00:00+07:00"]


def test_repealing_records_the_decision_date() -> None:
    """``procedure_repealed`` records Repealed with its decision date."""
    p = procedure()
    p.repeal("2026-09-01", t("2026-09-01T09:00:00+07:00"), None)
    assert kinds(p)[-1] == "Repealed"
    assert F.facts_of(p)["repealed"] == "2026-09-01"


def test_a_second_repeal_is_refused_as_procedure_repealed() -> None:
    """A procedure is repealed once; another ``procedure_repealed`` is ``procedure_repealed``."""
    p = procedure()
    p.repeal("2026-09-01", t("2026-09-01T09:00:00+07:00"), None)
    with pytest.raises(ProcedureRepealedError) as e:
        p.repeal("2026-10-01", t("2026-10-01T09:00:00+07:00"), None)
    assert e.value.reason == "procedure_repealed"
    assert F.facts_of(p)["repealed"] == "2026-09-01"


# ----- agency ---------------------------------------------------------------------------------


def test_registering_an_agency_records_its_place_in_the_tree() -> None:
    """``agency_registered`` records Registered with name, parent and level."""
    a = Agency.register(id=uuid4(), agency_id="H15.15",
                        data={"name": "Sở Tư pháp", "parent_id": "H15", "level": "department"},
                        at=t("2026-01-01T00:00:00+07:00"), cause=None)
    assert kinds(a) == ["Registered"]
    assert F.facts_of(a) == {"agency_id": "H15.15", "name": "Sở Tư pháp", "parent_id": "H15",
                       "level": "department"}


def test_registering_an_agency_again_renames_or_moves_it() -> None:
    """A later ``agency_registered`` records Updated and replaces the entry."""
    a = Agency.register(id=uuid4(), agency_id="H15.15",
                        data={"name": "Sở Tư pháp", "parent_id": "H15", "level": "department"},
                        at=t("2026-01-01T00:00:00+07:00"), cause=None)
    a.register_again({"name": "Sở Tư pháp tỉnh", "parent_id": None, "level": "department"},
                     t("2026-02-01T00:00:00+07:00"), None)
    assert kinds(a)[-1] == "Updated"
    assert F.facts_of(a) == {"agency_id": "H15.15", "name": "Sở Tư pháp tỉnh", "parent_id": None,
                       "level": "department"}
