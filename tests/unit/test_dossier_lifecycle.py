"""The Dossier's lifecycle rules (docs/lifecycle.md), one test per rule, on the aggregate itself.

Dates are read off a 2026 wall calendar: Mon 5 Oct 2026 is the reception day of every dossier here,
and its due time is Mon 12 Oct 2026 17:00 (+07:00) unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import uuid4

import pytest

from engine.domain.dossier import Dossier
from engine.domain.errors import (
    AlreadyReceivedError,
    AlreadyResolvedError,
    AlreadyReturnedError,
    DossierFinishedError,
    DossierWithdrawnError,
    EResultAlreadyIssuedError,
    LifecycleError,
    NoFeeObligationError,
    NoSupplementRequestError,
    NotResolvedError,
    SupplementPendingError,
    TimeBeforeReceptionError,
)
from kernel.calendar import WorkCalendar
from projections import facts as F

CAL = WorkCalendar()
RECEIVED_AT = "2026-10-05T08:00:00+07:00"
DUE_AT = "2026-10-12T17:00:00+07:00"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def received(**data: Any) -> Dossier:
    base = {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "direct"}
    return Dossier.receive(
        id=uuid4(), dossier_id="D1", data={**base, **data}, at=t(RECEIVED_AT), due_at=t(DUE_AT),
        cause=None,
    )


def kinds(d: Dossier) -> list[str]:
    return [type(e).__name__ for e in d.pending_events]


def event(d: Dossier, index: int = -1) -> Any:
    """A pending event, typed loosely: its payload fields are per event class."""
    return d.pending_events[index]


def resolved(at: str = "2026-10-08T10:00:00+07:00") -> Dossier:
    d = received()
    d.resolve("approved", t(at), None)
    return d


def withdrawn() -> Dossier:
    d = received()
    d.withdraw(t("2026-10-07T10:00:00+07:00"), None)
    return d


# ----- received -------------------------------------------------------------------------------


def test_receiving_opens_the_dossier_with_its_flags_and_open_facts() -> None:
    """``received`` records Received with the booleans of data as flags and the dossier open."""
    d = received(channel="online", full_online=True, fee_required=True)
    assert kinds(d) == ["Received"]
    assert F.facts_of(d) == [
        "H15.15",
        "2026-10",
        "1.001612",
        F.FULL_ONLINE | F.FEE_REQUIRED | F.ONLINE_CHANNEL,
        F.OPEN,
        date(2026, 10, 12).toordinal(),  # due 12 Oct 17:00 +07 is on 12 Oct locally
        -1,
        -1,
        int(t(DUE_AT).timestamp()),  # the due instant in seconds
        ["H15.15", None, "receive"],  # held by the receiving agency, no official named
        [["receive", "H15.15", None, int(t(RECEIVED_AT).timestamp()), None, None]],
        None,  # not finished: nobody to blame yet
    ]


def test_a_second_received_is_refused_as_already_received() -> None:
    """A dossier is received once; another ``received`` is ``already_received``."""
    d = received()
    with pytest.raises(AlreadyReceivedError) as e:
        d.receive_again()
    assert e.value.reason == "already_received"
    assert kinds(d) == ["Received"]


def test_an_event_moves_the_derived_facts_and_carries_none_of_them() -> None:
    """An event records what happened (no index facts in it); the facts derived from the
    dossier after it differ from those before it by what the event did."""
    d = received()
    before = F.facts_of(d)
    d.digitize(3, t("2026-10-05T09:00:00+07:00"), None)
    ev = event(d)
    assert not hasattr(ev, "prev") and not hasattr(ev, "facts")
    assert F.facts_of(d)[F.FLAGS] == before[F.FLAGS] | F.DIGITIZED


def test_an_action_before_the_reception_time_is_refused_as_before_reception() -> None:
    """A business time earlier than reception (08:00 on 5 Oct) is ``before_reception``."""
    d = received()
    with pytest.raises(TimeBeforeReceptionError) as e:
        d.digitize(1, t("2026-10-05T07:59:59+07:00"), None)
    assert (e.value.reason, e.value.field) == ("before_reception", "occurred_at")


# ----- digitized, paid_online, synced, rated, late ---------------------------------------------


def test_digitizing_sets_the_digitized_flag() -> None:
    """``digitized`` records Digitized and sets DIGITIZED."""
    d = received()
    d.digitize(2, t("2026-10-05T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "Digitized"
    assert F.facts_of(d)[F.FLAGS] & F.DIGITIZED


def test_paying_online_a_fee_bearing_dossier_sets_paid_online() -> None:
    """``paid_online`` with ``fee_required`` records PaidOnline and sets PAID_ONLINE."""
    d = received(fee_required=True)
    d.pay_online("national_portal", 50_000, t("2026-10-05T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "PaidOnline"
    assert F.facts_of(d)[F.FLAGS] & F.PAID_ONLINE


def test_paying_online_without_a_fee_is_refused_as_no_fee_obligation() -> None:
    """``paid_online`` on a dossier received without ``fee_required`` is ``no_fee_obligation``."""
    d = received()
    with pytest.raises(NoFeeObligationError) as e:
        d.pay_online("local_gateway", 50_000, t("2026-10-05T09:00:00+07:00"), None)
    assert e.value.reason == "no_fee_obligation"


def test_syncing_sets_the_synced_flag() -> None:
    """``synced`` records Synced and sets SYNCED."""
    d = received()
    d.sync(t("2026-10-05T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "Synced"
    assert F.facts_of(d)[F.FLAGS] & F.SYNCED


def test_the_latest_rating_decides_the_unsatisfied_flag() -> None:
    """An unsatisfied rating sets RATED_UNSATISFIED; a later satisfied one clears it."""
    d = resolved()
    d.rate(False, {"1": 2}, t("2026-10-09T09:00:00+07:00"), None)
    assert F.facts_of(d)[F.FLAGS] & F.RATED_UNSATISFIED
    d.rate(True, None, t("2026-10-09T10:00:00+07:00"), None)
    assert not F.facts_of(d)[F.FLAGS] & F.RATED_UNSATISFIED
    assert kinds(d)[-2:] == ["Rated", "Rated"]


def test_a_sender_late_mark_is_recorded_but_does_not_judge_the_dossier() -> None:
    """``late`` records MarkedLate and SENDER_MARKED_LATE; the judgement stays the engine's."""
    d = received()
    d.mark_late("busy", t("2026-10-06T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "MarkedLate"
    assert F.facts_of(d)[F.FLAGS] & F.SENDER_MARKED_LATE
    assert F.facts_of(d)[F.JUDGED] == F.OPEN


# ----- supplements ----------------------------------------------------------------------------


def test_requesting_a_supplement_marks_the_dossier_waiting() -> None:
    """``supplement_requested`` records SupplementRequested and sets WAITING_ON_APPLICANT."""
    d = received()
    d.request_supplement("missing page", t("2026-10-06T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "SupplementRequested"
    assert F.facts_of(d)[F.FLAGS] & F.WAITING_ON_APPLICANT


def test_a_second_request_while_one_is_pending_is_refused_as_supplement_pending() -> None:
    """Only one supplement request may be pending; another is ``supplement_pending``."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    with pytest.raises(SupplementPendingError) as e:
        d.request_supplement(None, t("2026-10-07T09:00:00+07:00"), None)
    assert e.value.reason == "supplement_pending"


def test_completing_without_a_request_is_refused_as_no_supplement_request() -> None:
    """``supplement_completed`` needs a pending request, else ``no_supplement_request``."""
    d = received()
    with pytest.raises(NoSupplementRequestError) as e:
        d.complete_supplement(t("2026-10-06T09:00:00+07:00"), None)
    assert e.value.reason == "no_supplement_request"


def test_completing_the_request_clears_waiting() -> None:
    """``supplement_completed`` records SupplementCompleted and clears WAITING_ON_APPLICANT."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-07T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "SupplementCompleted"
    assert not F.facts_of(d)[F.FLAGS] & F.WAITING_ON_APPLICANT


def test_a_second_request_after_completion_marks_multiple_supplements() -> None:
    """A new request after the first was completed is allowed and sets MULTIPLE_SUPPLEMENTS."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-06T15:00:00+07:00"), None)
    d.request_supplement(None, t("2026-10-07T09:00:00+07:00"), None)
    assert F.facts_of(d)[F.FLAGS] & F.MULTIPLE_SUPPLEMENTS


# ----- end of processing ----------------------------------------------------------------------


def test_resolving_finishes_the_dossier_with_its_processing_days() -> None:
    """``resolved`` records Resolved, sets RESOLVED and FINISHED, and the working days taken."""
    d = resolved("2026-10-08T10:00:00+07:00")
    assert kinds(d)[-1] == "Resolved"
    assert F.facts_of(d)[F.FLAGS] & F.RESOLVED and F.facts_of(d)[F.FLAGS] & F.FINISHED
    # (Mon 5 Oct, Thu 8 Oct] holds Tue 6, Wed 7, Thu 8: three working days.
    assert F.facts_of(d)[F.PROCESSING_DAYS] == 3
    assert F.facts_of(d)[F.END_DAY] == date(2026, 10, 8).toordinal()


@pytest.mark.parametrize("outcome", ["approved", "rejected", "stopped"])
def test_any_outcome_of_resolution_ends_processing(outcome: str) -> None:
    """Approved, rejected and stopped all end processing (a business outcome, not an error)."""
    d = received()
    d.resolve(outcome, t("2026-10-08T10:00:00+07:00"), None)
    assert d.is_finished
    assert event(d).outcome == outcome


def test_a_second_resolution_is_refused_as_already_resolved() -> None:
    """A dossier is resolved once; another ``resolved`` is ``already_resolved``."""
    d = resolved()
    with pytest.raises(AlreadyResolvedError) as e:
        d.resolve("rejected", t("2026-10-09T10:00:00+07:00"), None)
    assert e.value.reason == "already_resolved"


def test_returning_a_result_before_resolution_is_refused_as_not_resolved() -> None:
    """``result_returned`` needs a resolution first, else ``not_resolved``."""
    d = received()
    with pytest.raises(NotResolvedError) as e:
        d.return_result(t("2026-10-08T10:00:00+07:00"), None)
    assert e.value.reason == "not_resolved"


def test_returning_the_result_twice_is_refused_as_already_returned() -> None:
    """A result is returned once; another ``result_returned`` is ``already_returned``."""
    d = resolved()
    d.return_result(t("2026-10-09T10:00:00+07:00"), None)
    assert kinds(d)[-1] == "ResultReturned"
    with pytest.raises(AlreadyReturnedError) as e:
        d.return_result(t("2026-10-10T10:00:00+07:00"), None)
    assert e.value.reason == "already_returned"


def test_the_end_of_processing_is_the_earliest_finishing_time() -> None:
    """A return stamped earlier than the resolution (both after reception) moves the end earlier."""
    d = resolved("2026-10-09T10:00:00+07:00")
    d.return_result(t("2026-10-07T10:00:00+07:00"), None)
    # (Mon 5 Oct, Wed 7 Oct] holds Tue 6 and Wed 7: two working days.
    assert F.facts_of(d)[F.END_DAY] == date(2026, 10, 7).toordinal()
    assert F.facts_of(d)[F.PROCESSING_DAYS] == 2


def test_withdrawal_finishes_the_dossier() -> None:
    """``withdrawn`` records Withdrawn and sets WITHDRAWN and FINISHED."""
    d = withdrawn()
    assert kinds(d)[-1] == "Withdrawn"
    assert F.facts_of(d)[F.FLAGS] & F.WITHDRAWN and F.facts_of(d)[F.FLAGS] & F.FINISHED
    assert F.facts_of(d)[F.END_DAY] == date(2026, 10, 7).toordinal()


# ----- e-result -------------------------------------------------------------------------------


def test_an_e_result_before_resolution_is_refused_as_not_resolved() -> None:
    """``e_result_issued`` comes only after resolution, else ``not_resolved``."""
    d = received()
    with pytest.raises(NotResolvedError) as e:
        d.issue_e_result("KQ-1", True, t("2026-10-08T10:00:00+07:00"), None)
    assert e.value.reason == "not_resolved"


def test_an_e_result_pushed_to_the_repository_sets_both_flags() -> None:
    """An e-result pushed to the citizen's repository sets E_RESULT and PUSHED_TO_REPOSITORY."""
    d = resolved()
    d.issue_e_result("KQ-1", True, t("2026-10-08T11:00:00+07:00"), None)
    assert kinds(d)[-1] == "EResultIssued"
    assert F.facts_of(d)[F.FLAGS] & F.E_RESULT and F.facts_of(d)[F.FLAGS] & F.PUSHED_TO_REPOSITORY


def test_a_second_e_result_is_refused_as_e_result_already_issued() -> None:
    """One e-result per dossier; another is ``e_result_already_issued``."""
    d = resolved()
    d.issue_e_result("KQ-1", False, t("2026-10-08T11:00:00+07:00"), None)
    assert not F.facts_of(d)[F.FLAGS] & F.PUSHED_TO_REPOSITORY
    with pytest.raises(EResultAlreadyIssuedError) as e:
        d.issue_e_result("KQ-2", False, t("2026-10-08T12:00:00+07:00"), None)
    assert e.value.reason == "e_result_already_issued"


# ----- nothing after withdrawal; some things not after the end of processing -------------------

AFTER = t("2026-10-08T10:00:00+07:00")
COMMANDS: dict[str, Callable[[Dossier], None]] = {
    "digitized": lambda d: d.digitize(1, AFTER, None),
    "paid_online": lambda d: d.pay_online("national_portal", 1, AFTER, None),
    "supplement_requested": lambda d: d.request_supplement(None, AFTER, None),
    "supplement_completed": lambda d: d.complete_supplement(AFTER, None),
    "resolved": lambda d: d.resolve("approved", AFTER, None),
    "result_returned": lambda d: d.return_result(AFTER, None),
    "e_result_issued": lambda d: d.issue_e_result("KQ", False, AFTER, None),
    "withdrawn": lambda d: d.withdraw(AFTER, None),
    "late": lambda d: d.mark_late(None, AFTER, None),
    "apology_issued": lambda d: d.issue_apology(AFTER, "sorry", AFTER, None),
    "synced": lambda d: d.sync(AFTER, None),
    "rated": lambda d: d.rate(True, None, AFTER, None),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_nothing_is_allowed_after_withdrawal(command: str) -> None:
    """Every dossier action after ``withdrawn`` is ``dossier_withdrawn`` and records nothing."""
    d = withdrawn()
    n = len(d.pending_events)
    with pytest.raises(DossierWithdrawnError) as e:
        COMMANDS[command](d)
    assert e.value.reason == "dossier_withdrawn"
    assert len(d.pending_events) == n


@pytest.mark.parametrize("command", ["supplement_requested", "apology_issued", "withdrawn"])
def test_supplement_apology_and_withdrawal_after_the_end_are_refused_as_dossier_finished(
    command: str,
) -> None:
    """A request, an apology or a withdrawal after the end of processing is ``dossier_finished``."""
    d = resolved("2026-10-07T10:00:00+07:00")
    with pytest.raises(DossierFinishedError) as e:
        COMMANDS[command](d)
    assert e.value.reason == "dossier_finished"


def test_completing_a_supplement_after_the_end_is_refused_as_dossier_finished() -> None:
    """A dossier resolved while waiting on the applicant cannot have its supplement completed."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    d.resolve("stopped", t("2026-10-07T09:00:00+07:00"), None)
    with pytest.raises(DossierFinishedError) as e:
        d.complete_supplement(AFTER, None)
    assert e.value.reason == "dossier_finished"


@pytest.mark.parametrize("command", ["digitized", "synced", "rated", "late", "e_result_issued"])
def test_record_keeping_actions_are_still_allowed_after_resolution(command: str) -> None:
    """Digitizing, syncing, rating, late marks and the e-result may follow the end of processing."""
    d = resolved("2026-10-07T10:00:00+07:00")
    COMMANDS[command](d)
    assert d.is_finished


def test_every_refusal_is_a_lifecycle_error_with_a_reason() -> None:
    """Lifecycle refusals share one root so the engine dead-letters them with their reason."""
    d = withdrawn()
    with pytest.raises(LifecycleError):
        d.sync(AFTER, None)


# ----- feedback link --------------------------------------------------------------------------


def test_feedback_links_also_to_a_withdrawn_dossier() -> None:
    """Feedback about a withdrawn dossier still links (5.4 must not depend on arrival order)."""
    d = withdrawn()
    d.link_feedback("F1", AFTER, None)
    assert F.facts_of(d)[3] & F.FEEDBACK_LINKED


def test_linking_feedback_sets_the_feedback_linked_flag() -> None:
    """Feedback naming the dossier records FeedbackLinked and sets FEEDBACK_LINKED."""
    d = received()
    d.link_feedback("F1", t("2026-10-06T09:00:00+07:00"), None)
    assert kinds(d)[-1] == "FeedbackLinked"
    assert F.facts_of(d)[F.FLAGS] & F.FEEDBACK_LINKED


# ----- the deadline watcher's fact ------------------------------------------------------------


def test_overdue_is_not_recorded_before_the_due_time() -> None:
    """One second before 12 Oct 17:00 the dossier is not overdue."""
    d = received()
    assert d.record_overdue(t("2026-10-12T16:59:59+07:00")) is False
    assert kinds(d) == ["Received"]


def test_overdue_is_recorded_once_at_the_due_time() -> None:
    """At the due time BecameOverdue is recorded, stamped with the due time, and only once."""
    d = received()
    assert d.record_overdue(t("2026-10-20T09:00:00+07:00")) is True
    ev = event(d)
    assert type(ev).__name__ == "BecameOverdue"
    assert ev.at == DUE_AT
    assert F.facts_of(d)[F.FLAGS] & F.OVERDUE_RECORDED
    assert F.facts_of(d)[F.JUDGED] == F.OPEN  # open dossiers are still judged per view
    assert d.record_overdue(t("2026-10-21T09:00:00+07:00")) is False
    assert kinds(d) == ["Received", "BecameOverdue"]


def test_overdue_is_not_recorded_for_a_finished_dossier() -> None:
    """A dossier resolved (even late) is never recorded overdue by the watcher."""
    d = resolved("2026-10-13T10:00:00+07:00")
    assert d.record_overdue(t("2026-10-20T09:00:00+07:00")) is False


def test_overdue_is_not_recorded_while_waiting_on_the_applicant() -> None:
    """The clock stops while a supplement is pending, so the watcher records nothing."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    assert d.record_overdue(t("2026-10-20T09:00:00+07:00")) is False
