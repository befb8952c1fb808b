"""Due time and the on-time judgement of spec §4, on the Dossier and ``compute_due``.

Every expected date is read off a 2026 wall calendar and the VN holidays: Tue 24 Nov 2026 (Vietnam
Cultural Day) and Mon 16 – Fri 20 Feb 2026 (Lunar New Year) are days off.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import uuid4

import pytest

from engine.domain.dossier import Dossier
from engine.domain.due import compute_due
from engine.domain.errors import NoDueTimeError
from kernel.calendar import WorkCalendar
from kernel.lifecycle import LifecycleRules
from projections import facts as F

CAL = WorkCalendar()
RECEIVED_AT = "2026-10-05T08:00:00+07:00"  # Mon 5 Oct 2026
DUE_AT = "2026-10-12T17:00:00+07:00"  # Mon 12 Oct 2026


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def received() -> Dossier:
    data = {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "direct"}
    return Dossier.receive(id=uuid4(), dossier_id="D1", data=data, at=t(RECEIVED_AT),
                           due_at=t(DUE_AT), cause=None)


NEW_DUE = t("2026-10-20T17:00:00+07:00")  # the apology's new date


def due(received_at: str, value: int, unit: str) -> datetime:
    pt: dict[str, Any] = {"value": value, "unit": unit}
    return compute_due(t(received_at), None, pt, CAL)


# ----- the due time ---------------------------------------------------------------------------


def test_the_due_at_of_received_is_the_due_time() -> None:
    """A ``due_at`` wins over the procedure's processing time."""
    pt = {"value": 1, "unit": "days"}
    assert compute_due(t(RECEIVED_AT), t(DUE_AT), pt, CAL) == t(DUE_AT)


def test_no_due_at_and_no_processing_time_is_refused_as_no_due_time() -> None:
    """Without ``due_at`` and without a known procedure there is no due time: ``no_due_time``."""
    with pytest.raises(NoDueTimeError) as e:
        compute_due(t(RECEIVED_AT), None, None, CAL)
    assert (e.value.reason, e.value.field) == ("no_due_time", "data.due_at")


def test_hours_are_added_to_the_reception_instant() -> None:
    """5 Oct 08:14 + 30 hours is 6 Oct 14:14, to the minute."""
    assert due("2026-10-05T08:14:00+07:00", 30, "hours") == t("2026-10-06T14:14:00+07:00")


def test_working_days_skip_vietnam_cultural_day() -> None:
    """Mon 23 Nov + 2 working days: Tue 24 is a holiday, so Wed 25 (1), Thu 26 (2), end of day."""
    assert due("2026-11-23T10:00:00+07:00", 2, "working_days") == t("2026-11-26T23:59:59+07:00")


def test_working_days_skip_lunar_new_year() -> None:
    """Fri 13 Feb + 3: weekend, Tet 16–20 Feb, weekend, then Mon 23 (1), Tue 24 (2), Wed 25 (3)."""
    assert due("2026-02-13T10:00:00+07:00", 3, "working_days") == t("2026-02-25T23:59:59+07:00")


def test_working_days_count_from_the_local_reception_date() -> None:
    """4 Oct 20:00 UTC is 5 Oct 03:00 in Vietnam, so + 1 working day is Tue 6 Oct, end of day."""
    assert due("2026-10-04T20:00:00+00:00", 1, "working_days") == t("2026-10-06T23:59:59+07:00")


def test_days_are_calendar_days_holidays_included() -> None:
    """Fri 20 Nov + 5 days is Wed 25 Nov: weekends and the 24 Nov holiday all count."""
    assert due("2026-11-20T10:00:00+07:00", 5, "days") == t("2026-11-25T23:59:59+07:00")


def test_months_land_on_the_same_day_of_the_month() -> None:
    """5 Oct + 1 month is 5 Nov, end of day."""
    assert due(RECEIVED_AT, 1, "months") == t("2026-11-05T23:59:59+07:00")


def test_months_past_the_end_of_a_short_month_land_on_its_last_day() -> None:
    """30 Nov 2026 + 3 months would be 30 Feb 2027, which does not exist: 28 Feb 2027."""
    assert due("2026-11-30T10:00:00+07:00", 3, "months") == t("2027-02-28T23:59:59+07:00")


# ----- the on-time judgement ------------------------------------------------------------------


def test_an_open_dossier_is_judged_at_each_views_end() -> None:
    """Open: ``judged`` is OPEN and the view compares its end's date with the due date (12 Oct)."""
    d = received()
    assert F.facts_of(d)[F.JUDGED] == F.OPEN
    assert F.is_on_time(F.facts_of(d)[F.JUDGED], F.facts_of(d)[F.DUE_DAY], date(2026, 10, 12))
    assert not F.is_on_time(F.facts_of(d)[F.JUDGED], F.facts_of(d)[F.DUE_DAY], date(2026, 10, 13))


def test_finishing_by_the_due_instant_is_on_time() -> None:
    """Resolved 12 Oct 16:59, due 12 Oct 17:00: on time (1) for good."""
    d = received()
    d.resolve("approved", t("2026-10-12T16:59:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 1


def test_finishing_after_the_due_instant_is_late_even_on_the_same_day() -> None:
    """Resolved 12 Oct 17:01, due 12 Oct 17:00: finished dossiers compare instants, so late (0)."""
    d = received()
    d.resolve("approved", t("2026-10-12T17:01:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0


def test_a_rejected_or_stopped_dossier_is_judged_like_an_approved_one() -> None:
    """Any outcome ends processing: stopped on 9 Oct, due 12 Oct, is on time."""
    d = received()
    d.resolve("stopped", t("2026-10-09T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 1


def test_a_withdrawn_dossier_is_judged_at_its_withdrawal() -> None:
    """Withdrawn 13 Oct after the 12 Oct due time: late (0)."""
    d = received()
    d.withdraw(t("2026-10-13T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0


def test_a_dossier_waiting_on_the_applicant_is_judged_at_the_request_time() -> None:
    """Requested 9 Oct, before the 12 Oct due time: on time (1) while it waits."""
    d = received()
    d.request_supplement(None, t("2026-10-09T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 1


def test_a_request_made_after_the_due_time_is_judged_late_while_waiting() -> None:
    """Requested 13 Oct 09:00, after the 12 Oct 17:00 due time: late (0)."""
    d = received()
    d.request_supplement(None, t("2026-10-13T09:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0


def test_a_dossier_finished_while_waiting_stays_judged_at_the_request_time() -> None:
    """Requested 9 Oct, stopped 20 Oct without the supplement: judged at 9 Oct, so on time."""
    d = received()
    d.request_supplement(None, t("2026-10-09T10:00:00+07:00"), None)
    d.resolve("stopped", t("2026-10-20T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 1


def test_the_supplement_wait_is_added_to_the_due_time() -> None:
    """Waiting 7 Oct 09:00 → 9 Oct 09:00 (2 days) moves the due time to 14 Oct 17:00."""
    d = received()
    d.request_supplement(None, t("2026-10-07T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-09T09:00:00+07:00"), None)
    assert d.due() == t("2026-10-14T17:00:00+07:00")
    assert F.facts_of(d)[F.DUE_DAY] == date(2026, 10, 14).toordinal()
    assert F.facts_of(d)[F.JUDGED] == F.OPEN


def test_the_supplement_shift_turns_a_late_looking_finish_into_on_time() -> None:
    """Resolved 14 Oct 10:00: after the 12 Oct due, before the shifted 14 Oct 17:00, so on time."""
    d = received()
    d.request_supplement(None, t("2026-10-07T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-09T09:00:00+07:00"), None)
    d.resolve("approved", t("2026-10-14T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 1


def test_more_than_one_supplement_request_is_late_however_fast() -> None:
    """Two requests, resolved 8 Oct well before the due time: still late (0)."""
    d = received()
    d.request_supplement(None, t("2026-10-06T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-06T10:00:00+07:00"), None)
    d.request_supplement(None, t("2026-10-06T11:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0
    d.complete_supplement(t("2026-10-06T12:00:00+07:00"), None)
    d.resolve("approved", t("2026-10-08T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0


# ----- apology (phiếu xin lỗi) -----------------------------------------------------------------


def test_an_apology_does_not_move_the_due_time() -> None:
    """Apology on 9 Oct with a new date of 20 Oct; resolved 15 Oct is still late against 12 Oct."""
    d = received()
    d.issue_apology(NEW_DUE, "overload", t("2026-10-09T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.DUE_DAY] == date(2026, 10, 12).toordinal()
    d.resolve("approved", t("2026-10-15T10:00:00+07:00"), None)
    assert F.facts_of(d)[F.JUDGED] == 0


def test_an_apology_moves_the_due_time_only_when_the_rules_say_so() -> None:
    """With ``apology_moves_due`` on, the new date (20 Oct 17:00) becomes the due time 2.1
    judges by; the dossier's own due time (the watcher's) does not move."""
    d = received()
    d.issue_apology(NEW_DUE, "overload", t("2026-10-09T10:00:00+07:00"), None)
    moves = LifecycleRules(apology_moves_due=True)
    assert F.effective_due(d, moves) == t("2026-10-20T17:00:00+07:00")
    assert F.facts_of(d, moves)[F.DUE_DAY] == date(2026, 10, 20).toordinal()
    assert F.effective_due(d, LifecycleRules()) == d.due() == t(DUE_AT)


def test_an_apology_a_full_day_before_the_due_time_is_in_time() -> None:
    """Issued 11 Oct 17:00, exactly one day before 12 Oct 17:00: APOLOGY_IN_TIME."""
    d = received()
    d.issue_apology(NEW_DUE, "overload", t("2026-10-11T17:00:00+07:00"), None)
    assert F.apology_in_time(d, LifecycleRules())
    assert F.facts_of(d)[F.FLAGS] & F.APOLOGY_ISSUED and F.facts_of(d)[F.FLAGS] & F.APOLOGY_IN_TIME


def test_an_apology_less_than_a_day_before_the_due_time_is_not_in_time() -> None:
    """Issued 11 Oct 17:01, 23 h 59 min before the due time: APOLOGY_ISSUED without IN_TIME."""
    d = received()
    d.issue_apology(NEW_DUE, "overload", t("2026-10-11T17:01:00+07:00"), None)
    assert F.facts_of(d)[F.FLAGS] & F.APOLOGY_ISSUED
    assert not F.facts_of(d)[F.FLAGS] & F.APOLOGY_IN_TIME


def test_an_apology_is_checked_against_the_due_time_after_the_supplement_shift() -> None:
    """A 2-day wait makes the due 14 Oct 17:00, so an apology on 13 Oct 17:00 is in time."""
    d = received()
    d.request_supplement(None, t("2026-10-07T09:00:00+07:00"), None)
    d.complete_supplement(t("2026-10-09T09:00:00+07:00"), None)
    d.issue_apology(NEW_DUE, "overload", t("2026-10-13T17:00:00+07:00"), None)
    assert F.facts_of(d)[F.FLAGS] & F.APOLOGY_IN_TIME
