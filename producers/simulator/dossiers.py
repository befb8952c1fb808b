"""One dossier's lifecycle, drawn whole when it is received and scheduled for later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.calendar import add_processing_time
from producers.simulator.catalog import Procedure, due_from
from producers.simulator.clock import (
    DAY,
    HOUR,
    MINUTE,
    NEVER,
    format_time,
    from_datetime,
    in_office_hours,
    to_datetime,
)
from producers.simulator.feedback import FeedbackDesk
from producers.simulator.handovers import ControlSheets
from producers.simulator.names import APOLOGY_REASONS, LATE_REASONS, SUPPLEMENT_REASONS
from producers.simulator.province import Province
from producers.simulator.staff import Holder

_EPSILON = 1e-9  # keeps a rate divided by a zero rate finite
# The window-end corrections at most double a chance: a longer cut would mean a window shorter
# than the lifecycles in it, where no correction is meaningful.
_MIN_KEPT_SHARE = 0.5
_EARLY_SPAN_MIN = 2 * MINUTE
_EARLY_SPAN_MAX = 3 * HOUR
_MAX_DIGITIZED_COMPONENTS = 6
_MIN_ROOM = 2 * MINUTE  # the least time in which a withdrawal or a late mark still fits
_SUPPLEMENT_MIN_WAIT = HOUR
_SUPPLEMENT_MEAN_WAIT = 3 * DAY  # beyond the minimum, exponentially distributed
_LATE_MEAN_DELAY = 2 * DAY  # exponentially distributed, plus a minute
_LONG_DELAY = (5 * DAY, 30 * DAY)
_APOLOGY_NOTICE = DAY  # an apology comes at least this long before the due time
_APOLOGY_MIN_ROOM = HOUR
_APOLOGY_WINDOW = 4 * DAY  # how long before the latest possible apology it may come
_NEW_DUE_SLACK = DAY  # the new due time, after the actual resolution by at most this
_LATE_MARK_WITHIN = HOUR
_E_RESULT_DELAY = (MINUTE, 2 * HOUR)
_RETURN_DELAY = (10 * MINUTE, 3 * DAY)
_RATING_DELAY = (MINUTE, 2 * DAY)
_SATISFIED_SCORES = (4, 5)
_UNSATISFIED_SCORES = (1, 3)
_CRITERIA = ("tien_do", "thai_do", "ket_qua")  # progress, attitude, result
_ID_COUNTERS_KEPT = 4096  # per-agency-day counters kept before the past days are dropped

# (time, type, data) of one dossier's action.
_Event = tuple[int, str, dict[str, Any]]


@dataclass(slots=True)
class _Case:
    """One dossier while its lifecycle is drawn."""

    dossier_id: str
    agency: str
    t0: int
    due: int
    events: list[_Event]
    last: int  # the latest early event, or the end of the last wait on the applicant
    receiver: Holder
    shifted: int = 0  # the due time, moved by the time spent waiting on the applicant
    late: bool = False
    waits: list[tuple[int, int]] = field(default_factory=list)  # on the applicant, completed
    asked: int = NEVER  # when a request for papers was left unanswered


class Dossiers:
    """The province's dossiers, and what it learns from them to land the on-time and e-result
    rates on target despite the window cutting some lifecycles short."""

    def __init__(self, province: Province, feedback: FeedbackDesk) -> None:
        self.province = province
        self.cfg = cfg = province.cfg
        self.feedback = feedback
        self.sheets = ControlSheets(province)
        self.per_agency_day: dict[tuple[str, int], int] = {}
        # Only approved, resolved dossiers get an e-result: those that were neither withdrawn nor
        # left waiting on the applicant (see _supplements), and that end before the window closes.
        approved = (
            1
            - cfg.withdrawal_rate
            - cfg.supplement_rate * cfg.stuck_supplement_rate * cfg.on_time_rate
        ) * (1 - cfg.rejected_rate - cfg.stopped_rate)
        self.p_e_result = cfg.e_result_rate / max(approved, _EPSILON)
        self.due_span_sum = 0
        self.due_span_count = 0
        self.e_delay_sum = 0
        self.e_delay_count = 0

    def receive(self, t0: int, channel: str, p: Procedure) -> None:
        """Draw the lifecycle of a dossier received at ``t0`` and schedule its actions."""
        cfg, r = self.cfg, self.province.rng.random
        case = self._received(t0, channel, p)
        self._early_events(case, p)
        self.due_span_sum += case.due - t0
        self.due_span_count += 1
        case.late = r() < self._late_chance()
        # Only on-time dossiers are withdrawn, so their share of those is raised to match.
        withdrawal_chance = cfg.withdrawal_rate / max(cfg.on_time_rate, _EPSILON)
        withdrawn = not case.late and r() < withdrawal_chance
        if withdrawn and case.due - case.last > _MIN_ROOM:
            at = case.last + self.province.between(MINUTE, case.due - case.last)
            case.events.append((at, "withdrawn", {}))
            self._hand_over(case, p, case.due, at)
            self._close(case, linkable=False)
            return
        case.shifted = case.due
        if r() < cfg.supplement_rate and not self._supplements(case):
            self._hand_over(case, p, case.shifted, case.asked)
            self._close(case, linkable=True)
            return
        end = self._late_end(case) if case.late else self._on_time_end(case)
        self._resolve(case, end)
        self._hand_over(case, p, end, end)
        self._close(case, linkable=True)

    def _hand_over(self, case: _Case, p: Procedure, planned_end: int, cut: int) -> None:
        """The control sheet's handovers: steps laid out up to ``planned_end``, those before
        ``cut`` (the end of processing, the withdrawal or the unanswered request) kept."""
        if not self.cfg.handovers:
            return
        case.events += self.sheets.hand_over(case.receiver, case.t0, p, planned_end=planned_end,
                                             cut=cut, waits=case.waits, late=case.late)

    def _received(self, t0: int, channel: str, p: Procedure) -> _Case:
        """The reception, with the due time the sender writes (or leaves to the procedure)."""
        cfg, r = self.cfg, self.province.rng.random
        agency = p.agencies[int(r() * len(p.agencies))]
        dossier_id = self._dossier_id(agency, t0)
        sent_due = due_from(self.province, t0, p.unit, p.value)
        data: dict[str, Any] = {"agency_id": agency, "procedure_id": p.id, "channel": channel}
        if r() < cfg.due_at_rate:
            data["due_at"] = format_time(sent_due)
            due = sent_due
        else:
            due = from_datetime(
                add_processing_time(to_datetime(t0), p.value, p.unit, self.province.calendar)
            )
        receiver = self.sheets.receiver(agency)
        if self.sheets.named():
            data["official_id"] = receiver.official
        online = channel == "online"
        data["full_online"] = online and p.eligible and r() < cfg.full_online_rate
        data["fee_required"] = p.fee_bearing
        data["reused_digitized_data"] = r() < cfg.reused_data_rate
        data["from_personal_repository"] = online and r() < cfg.personal_repository_rate
        data["population_data_used"] = p.individual and r() < cfg.population_data_rate
        return _Case(dossier_id, agency, t0, due, [(t0, "received", data)], t0, receiver)

    def _early_events(self, case: _Case, p: Procedure) -> None:
        """Sync, digitization and online payment, early in the time allowed."""
        cfg, r, between = self.cfg, self.province.rng.random, self.province.between
        t0, events = case.t0, case.events
        early_span = max(
            _EARLY_SPAN_MIN, min(_EARLY_SPAN_MAX, (case.due - t0) // cfg.early_span_divisor)
        )
        if r() < cfg.synced_rate:
            case.last = max(case.last, t := t0 + between(MINUTE, early_span))
            events.append((t, "synced", {}))
        if r() < cfg.digitized_rate:
            case.last = max(case.last, t := t0 + between(MINUTE, early_span))
            events.append((t, "digitized", {"components": between(1, _MAX_DIGITIZED_COMPONENTS)}))
        if p.fee_bearing and r() < cfg.online_payment_rate:
            case.last = max(case.last, t := t0 + between(MINUTE, early_span))
            gateway = "national_portal" if r() < cfg.national_gateway_rate else "local_gateway"
            events.append((t, "paid_online", {"gateway": gateway, "amount_vnd": p.fee_vnd}))

    def _supplements(self, case: _Case) -> bool:
        """Requests for more papers and their completion; False if one stays waiting."""
        cfg, rng = self.cfg, self.province.rng
        r = rng.random
        earliest = cfg.supplement_ask_earliest
        spread = cfg.supplement_ask_latest - earliest
        requests = 2 if case.late and r() < cfg.second_supplement_rate_of_late else 1
        for _ in range(requests):
            ask = case.last + MINUTE + int((case.shifted - case.last) * (earliest + spread * r()))
            reason = rng.choice(SUPPLEMENT_REASONS)
            case.events.append((ask, "supplement_requested", {"reason": reason}))
            if not case.late and requests == 1 and r() < cfg.stuck_supplement_rate:
                # Still waiting on the applicant: judged at the request time, stays open.
                case.asked = ask
                return False
            gap = _SUPPLEMENT_MIN_WAIT + int(rng.expovariate(1 / _SUPPLEMENT_MEAN_WAIT))
            case.waits.append((ask, ask + gap))
            case.last = ask + gap
            case.shifted += gap
            case.events.append((case.last, "supplement_completed", {}))
        return True

    def _late_end(self, case: _Case) -> int:
        """When a late dossier is resolved, with its apology and late mark."""
        rng = self.province.rng
        delay = MINUTE + int(rng.expovariate(1 / _LATE_MEAN_DELAY))
        if rng.random() < self.cfg.long_delay_rate_of_late:
            delay += self.province.between(*_LONG_DELAY)
        end = in_office_hours(case.shifted + delay, case.shifted, NEVER)
        self._apology(case, end)
        self._late_mark(case, end)
        return end

    def _on_time_end(self, case: _Case) -> int:
        """When an on-time dossier is resolved: anywhere in the time left, skewed early."""
        cfg, span = self.cfg, case.shifted - case.last
        earliest = cfg.on_time_resolve_earliest
        u = self.province.rng.random() ** cfg.on_time_resolve_skew
        end = case.last + max(MINUTE, int(span * (earliest + (1 - earliest) * u)))
        return in_office_hours(min(end, case.shifted), case.last, case.shifted)

    def _resolve(self, case: _Case, end: int) -> None:
        """The decision at ``end``, then its e-result, the result handed back and a rating."""
        cfg, r, between = self.cfg, self.province.rng.random, self.province.between
        outcome = "approved"
        x = r()
        if x < cfg.rejected_rate:
            outcome = "rejected"
        elif x < cfg.rejected_rate + cfg.stopped_rate:
            outcome = "stopped"
        case.events.append((end, "resolved", {"outcome": outcome}))
        after = end
        if outcome == "approved" and r() < self._e_result_chance():
            after = end + between(*_E_RESULT_DELAY)
            self.e_delay_sum += after - case.t0
            self.e_delay_count += 1
            pushed = r() < cfg.e_result_pushed_rate
            data = {"result_ref": f"KQ-{case.dossier_id}", "pushed_to_repository": pushed}
            case.events.append((after, "e_result_issued", data))
        if r() < cfg.result_returned_rate:
            after += between(*_RETURN_DELAY)
            case.events.append((after, "result_returned", {}))
        if r() < cfg.rating_rate:
            self._rating(case, after)

    def _rating(self, case: _Case, after: int) -> None:
        """The applicant's rating, sometimes with a score per criterion."""
        r, between = self.province.rng.random, self.province.between
        satisfied = r() >= self.cfg.unsatisfied_rate
        rating: dict[str, Any] = {"satisfied": satisfied}
        if r() < self.cfg.rating_scores_rate:
            lo, hi = _SATISFIED_SCORES if satisfied else _UNSATISFIED_SCORES
            rating["scores"] = {c: between(lo, hi) for c in _CRITERIA}
        case.events.append((after + between(*_RATING_DELAY), "rated", rating))

    def _apology(self, case: _Case, end: int) -> None:
        """The apology with a new due time: at least a day before the due time, or (late by
        the rules) less than a day before it or after it, before the resolution."""
        cfg, rng, between = self.cfg, self.province.rng, self.province.between
        if rng.random() >= cfg.apology_rate_of_late:
            return
        t0, hi = case.t0, case.due - _APOLOGY_NOTICE
        if rng.random() < cfg.late_apology_rate:
            lo, top = max(t0, hi) + MINUTE, end - MINUTE
        elif hi - t0 > _APOLOGY_MIN_ROOM:
            lo, top = max(t0 + MINUTE, hi - _APOLOGY_WINDOW), hi
        else:
            return
        if top > lo:
            at = in_office_hours(between(lo, top), lo, top)
            data = {
                "new_due_at": format_time(end + between(0, _NEW_DUE_SLACK)),
                "reason": rng.choice(APOLOGY_REASONS),
            }
            case.events.append((at, "apology_issued", data))

    def _late_mark(self, case: _Case, end: int) -> None:
        """The sender's own mark that the dossier is late, soon after its (shifted) due time."""
        cfg, rng, shifted = self.cfg, self.province.rng, case.shifted
        if rng.random() < cfg.late_mark_rate_of_late and end - shifted > _MIN_ROOM:
            within = min(_LATE_MARK_WITHIN, (end - shifted) // cfg.late_mark_divisor)
            at = max(shifted, case.last) + self.province.between(MINUTE, max(MINUTE, within))
            if at < end:
                case.events.append((at, "late", {"reason": rng.choice(LATE_REASONS)}))

    def _late_chance(self) -> float:
        """The chance to run late, raised for late dossiers still in time when the window closes.

        Those are the ones due on or after its last day: about mean time allowed / window of them.
        """
        cut = self.due_span_sum / self.due_span_count / (self.cfg.days * DAY)
        return min(1.0, (1.0 - self.cfg.on_time_rate) / max(_MIN_KEPT_SHARE, 1.0 - cut))

    def _e_result_chance(self) -> float:
        """The chance for an approved dossier, raised for the e-results the window's end cuts off.

        A dossier received at a uniform time misses the window with chance mean delay / window,
        and the mean delay is learnt from the e-results drawn so far.
        """
        if not self.e_delay_count:
            return min(1.0, self.p_e_result)
        cut = self.e_delay_sum / self.e_delay_count / (self.cfg.days * DAY)
        return min(1.0, self.p_e_result / max(_MIN_KEPT_SHARE, 1.0 - cut))

    def _close(self, case: _Case, *, linkable: bool) -> None:
        """Schedule the dossier's actions, then maybe a feedback about it."""
        case.events.sort(key=lambda e: e[0])
        previous = -1
        for t, type_, data in case.events:
            t = max(t, previous + 1)  # strictly increasing, so order survives second precision
            previous = t
            self.province.push(t, type_, "dossier_id", case.dossier_id, data)
        self.feedback.maybe_file(case.agency, case.dossier_id, case.t0, linkable=linkable)

    def _dossier_id(self, agency: str, t0: int) -> str:
        """The agency's next dossier number of the day, as ``agency-YYMMDD-nnnn``."""
        day = t0 // DAY
        key = (agency, day)
        n = self.per_agency_day.get(key, 0) + 1
        self.per_agency_day[key] = n
        if n == 1 and len(self.per_agency_day) > _ID_COUNTERS_KEPT:
            self.per_agency_day = {k: v for k, v in self.per_agency_day.items() if k[1] >= day}
        return f"{agency}-{format_time(day * DAY)[2:10].replace('-', '')}-{n:04d}"
