"""One engine transaction's worth of work: actions in, events, facts and ledger rows out.

A ``Batch`` applies validated actions to their aggregates (``engine.domain``), holds the ones
whose subject has not arrived, releases held ones when it does, and gathers everything the
transaction writes (``engine.store.SideEffects``): the ledger row of every consumed message,
dead letters, settled holds, the deadline index, and the facts cache row of every new event.

Held work comes in two kinds, both rows of the intake ledger: an action that waits for its
subject (``HeldAction``), and a feedback's link to a dossier that has not arrived yet
(``HeldLink``, no Kafka offset of its own). Either may be held in this batch (not yet written)
or read back from the store; ``Pending`` says which, and ``Batch.settle`` writes the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import structlog

from engine.cache import SubjectCache
from engine.domain import marks as M
from engine.domain.base import Cause, Subject
from engine.domain.catalog import Agency, Procedure
from engine.domain.dossier import Dossier
from engine.domain.due import compute_due
from engine.domain.errors import AgencyCycleError, UnknownSubjectError
from engine.domain.feedback import Feedback
from engine.facts_cache import FactRow
from engine.holds import HeldLink, HoldBook, Pending, StoredHold
from engine.scope import ScopeGate
from engine.store import (
    ACCEPTED,
    DUPLICATE,
    HELD,
    REJECTED,
    IntakeRow,
    SideEffects,
    akey,
)
from engine.stored import plain, stored_event
from kernel.calendar import WorkCalendar
from kernel.contract.actions import Action
from kernel.errors import RefusedActionError
from kernel.failures import transient
from kernel.jsonbytes import dumps_kept

log = structlog.get_logger("motcua.engine")

KIND_OF_FIELD = {
    "dossier_id": "dossier",
    "feedback_id": "feedback",
    "procedure_id": "procedure",
    "agency_id": "agency",
}
OPENING = {
    "received": Dossier,
    "feedback_received": Feedback,
    "procedure_published": Procedure,
    "agency_registered": Agency,
}
KIND_OF_CLASS = {Dossier: "dossier", Feedback: "feedback", Procedure: "procedure",
                 Agency: "agency"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Annotate = Callable[[Subject], Any]
"""What the engine stores beside each event: the subject's facts after it (JSON-able)."""


class Message(NamedTuple):
    """One consumed Kafka record; ``value`` is None for a tombstone (refused by
    ``parse_action``); ``spool``: the spooled line it is a copy of, if any. (A named tuple:
    made for every record, in half the time of a frozen dataclass.)"""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    spool: int | None = None


def cause_of(a: Action, topic: str, partition: int, offset: int) -> Cause:
    return {"source": a.source, "action_id": a.action_id, "topic": topic,
            "partition": partition, "offset": offset}


def recorded_us(t: datetime) -> int:
    """Microseconds since the epoch, exactly (a float would round)."""
    return (t - _EPOCH) // _US


class Batch:
    """One transaction's worth of work."""

    def __init__(self, cache: SubjectCache, holds: HoldBook, calendar: WorkCalendar,
                 annotate: Annotate | None, log_id: str) -> None:
        self.cache = cache
        self.holds = holds
        self.calendar = calendar
        self.annotate = annotate
        self.log_id = log_id
        self.fx = SideEffects()
        self.touched: dict[UUID, Subject] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.counts: dict[str, int] = {}
        # Subject key -> work held in this batch for it (not yet written).
        self.held: dict[str, list[Pending]] = {}
        # Aggregate id -> (prev facts, facts) of each of its new events, in order.
        self.notes: dict[UUID, list[tuple[Any, Any]]] = {}
        # The sources' scopes (kernel.grants), checked whenever an action is applied.
        self.scope: ScopeGate | None = None
        # Dossiers received with a due_at whose procedure did not arrive within the hold:
        # recorded without it (no step budgets from the catalog).
        self.uncatalogued: set[str] = set()
        self.record_uncatalogued = False
        # The actions partitions whose held work this batch may settle (None: all).
        self.owned: set[int] | None = None
        # Ids of the stored held rows this batch settled.
        self.settled: set[int] = set()
        # (subject, partition) of the stored held rows this batch settled or moved, and of
        # where the moved ones wait now (``HoldBook.committed``).
        self.unheld: list[tuple[str, int]] = []
        self.reheld: list[tuple[str, int]] = []

    # ----- aggregates ------------------------------------------------------------------------

    def subject(self, sid: UUID) -> Subject | None:
        """The aggregate to change, with its facts as they stand before this batch's change."""
        agg = self.touched.get(sid) or self.cache.get(sid)
        if agg is not None and self.annotate is not None and "_facts" not in agg.__dict__:
            agg.__dict__["_facts"] = self.annotate(agg)
        return agg

    def touch(self, agg: Subject) -> None:
        """Note the facts after the event the aggregate just emitted (one per command)."""
        self.touched[agg.id] = agg
        notes = self.notes.setdefault(agg.id, [])
        new = len(agg.pending_events) - len(notes)
        if new == 0:
            return
        if new != 1:  # pragma: no cover - a domain command emits exactly one event
            raise AssertionError(f"{new} events from one command on {agg.id}")
        prev = agg.__dict__.get("_facts")
        facts = self.annotate(agg) if self.annotate is not None else None
        agg.__dict__["_facts"] = facts
        notes.append((prev, facts))

    # ----- outcomes --------------------------------------------------------------------------

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def row(self, m: Message, a: Action | None, outcome: str, **kw: Any) -> IntakeRow:
        keep = outcome == HELD  # the subject and time matter only while an action is held
        r = IntakeRow(
            self.log_id, m.topic, m.partition, m.offset, outcome,
            akey=akey(a.source, a.action_id) if a else None,
            fingerprint=a.fingerprint if a else None,
            subject=f"{KIND_OF_FIELD[a.subject_field]}:{a.subject_id}" if a and keep else None,
            occurred_at=a.occurred_at.isoformat() if a and keep else None,
            raw=m.value, **kw,
        )
        self.fx.intake.append(r)
        self._count(outcome)
        return r

    def reject(self, m: Message, a: Action | None, e: RefusedActionError) -> None:
        r = self.row(m, a, REJECTED, reason=e.reason, field=e.field, message=e.message)
        self.fx.dead_letters.append(r)
        self._count(f"{REJECTED}:{e.reason}")
        log.info("action_rejected", reason=e.reason, field=e.field, message=e.message,
                 topic=m.topic, partition=m.partition, offset=m.offset)

    def duplicate_or_conflict(self, m: Message, a: Action, prior: tuple[str, str]) -> None:
        """A repeat of a taken key: the same content is a duplicate, other content is refused."""
        if prior[0] == a.fingerprint:
            self.row(m, a, DUPLICATE)
            return
        self.reject(m, a, RefusedActionError(
            f"Action {a.action_id} from {a.source} was already received with different "
            "content.", reason="conflicting_duplicate", field="action_id"))

    def handle(self, m: Message, a: Action) -> None:
        """Apply, hold or reject one consumed action."""
        try:
            outcome, waits_for = self.apply(a, cause_of(a, m.topic, m.partition, m.offset))
        except RefusedActionError as e:
            self.reject(m, a, e)
            return
        except Exception as e:  # a bug must not stall the partition: dead-letter it, loudly
            if transient(e):
                raise  # the store is away or busy, not the action at fault: the batch is redone
            log.exception("action_failed", topic=m.topic, partition=m.partition, offset=m.offset)
            self.reject(m, a, RefusedActionError(
                f"The engine failed on this action: {type(e).__name__}: {e}.",
                reason="internal_error"))
            return
        if outcome == HELD:
            if self.holds.full:
                self.reject(m, a, UnknownSubjectError(
                    f"{a.subject_field} {a.subject_id} is unknown and the hold is full "
                    f"({self.holds.limit} actions).", reason="hold_full"))
                return
            r = self.row(m, a, HELD)
            r.subject = waits_for
            self.held.setdefault(waits_for, []).append(
                Pending(a.occurred_at, m.offset, a, None, row=r))
            self.holds.count += 1
        else:
            self.row(m, a, ACCEPTED)
        self.keys[akey(a.source, a.action_id)] = (a.fingerprint, outcome)

    # ----- applying --------------------------------------------------------------------------

    def apply(self, a: Action, cause: Cause) -> tuple[str, str]:
        """Apply one action to its subject; (``HELD``, what it waits for) if it cannot yet."""
        kind = KIND_OF_FIELD[a.subject_field]
        subject = f"{kind}:{a.subject_id}"
        sid = self.cache.uuid(kind, a.subject_id)
        agg = self.subject(sid)
        opening = OPENING.get(a.type)
        if agg is None and opening is None:
            return HELD, subject
        if self.scope is not None:
            self.scope(a, agg)
        data: dict[str, Any] = a.data  # type: ignore[assignment]  # a fresh dict per action
        if a.type == "agency_registered":
            self._check_tree(a.subject_id, data.get("parent_id"))
        if agg is None:
            if (a.type == "received" and self._procedure(data["procedure_id"]) is None
                    and self._waits_for_catalog(a, data)):
                # Its due time (without due_at) and its steps' budgets come from a procedure
                # the catalog has not sent yet: wait for it, so that what is recorded does
                # not depend on which partition arrived first (docs/decisions.md).
                return HELD, f"procedure:{data['procedure_id']}"
            agg = self.create(a, sid, data, cause)
            self.touch(agg)
            self.cache.remember(agg)
            self.release(subject)
            return ACCEPTED, subject
        if a.type == "handed_over" and isinstance(agg, Dossier):
            self.hand_over(agg, data, a.occurred_at, cause)
        else:
            COMMANDS[a.type](agg, data, a.occurred_at, cause)
        self.touch(agg)
        return ACCEPTED, subject

    def _check_tree(self, agency_id: str, parent_id: str | None) -> None:
        """Refuse placing ``agency_id`` under ``parent_id`` when that parent is the agency or
        lies under it (its chain of parents as registered so far; an unregistered one ends
        it: a registration that closes a loop later is the one refused)."""
        chain = [agency_id]
        while parent_id is not None and parent_id not in chain:
            chain.append(parent_id)
            sid = self.cache.uuid("agency", parent_id)
            parent = self.touched.get(sid) or self.cache.get(sid)
            parent_id = parent.entry.get("parent_id") if isinstance(parent, Agency) else None
        if parent_id == agency_id:
            under = " → ".join(chain[1:])
            raise AgencyCycleError(
                f"Agency {agency_id} cannot be its own parent." if len(chain) == 1 else
                f"Agency {agency_id} cannot be placed under {chain[1]}, which is under it "
                f"already ({under} → {agency_id}).", field="data.parent_id")

    def _waits_for_catalog(self, a: Action, data: dict[str, Any]) -> bool:
        if data.get("due_at") is None:
            return True  # no due time without the procedure's processing time
        return not self.record_uncatalogued and a.subject_id not in self.uncatalogued

    def hand_over(self, d: Dossier, data: dict[str, Any], at: datetime, cause: Cause) -> None:
        """A control-sheet line, with the step's budget from the procedure's internal process
        as the catalog has it now (the sender's ``step_due_at`` wins, in the facts)."""
        proc = self._procedure(d.procedure_id)
        budget = proc.step_budget(data["step"], at) if proc is not None else None
        d.hand_over(data["to_unit"], data.get("to_official"), data["step"],
                    data.get("step_due_at"), budget, at, cause)

    def _procedure(self, pid: str) -> Procedure | None:
        p = self.subject(self.cache.uuid("procedure", pid))
        return p if isinstance(p, Procedure) else None

    def create(self, a: Action, sid: UUID, data: dict[str, Any], cause: Cause) -> Subject:
        at = a.occurred_at
        if a.type == "received":
            proc = self._procedure(data["procedure_id"])
            due = compute_due(at, data.get("due_at"),
                              proc.processing_time(at) if proc is not None else None,
                              self.calendar)
            return Dossier.receive(id=sid, dossier_id=a.subject_id, data=data, at=at, due_at=due,
                                   cause=cause, receive_budget=proc.step_budget("receive", at)
                                   if proc is not None else None)
        if a.type == "feedback_received":
            fb = Feedback.receive(id=sid, feedback_id=a.subject_id, data=data, at=at,
                                  cause=cause)
            if data.get("dossier_id"):
                self.link(HeldLink(str(data["dossier_id"]), a.subject_id, at, cause))
            return fb
        if a.type == "procedure_published":
            return Procedure.publish(id=sid, procedure_id=a.subject_id, data=data, at=at,
                                     cause=cause)
        return Agency.register(id=sid, agency_id=a.subject_id, data=data, at=at, cause=cause)

    def link(self, link: HeldLink) -> None:
        """Mark a dossier as having feedback about it (5.4), now or when it arrives."""
        d = self.subject(self.cache.uuid("dossier", link.dossier_id))
        if isinstance(d, Dossier):
            if self.scope is not None and link.cause is not None:
                self.scope.link(link.cause.get("source"), d)
            d.link_feedback(link.feedback_id, link.at, link.cause)
            self.touch(d)
            return
        subject = f"dossier:{link.dossier_id}"
        r = IntakeRow(self.log_id, "", -1, -1, HELD, subject=subject,
                      occurred_at=link.at.isoformat(), raw=link.to_raw())
        self.fx.intake.append(r)
        self.holds.count += 1
        self.held.setdefault(subject, []).append(Pending(link.at, -1, None, link, row=r))

    # ----- holds -----------------------------------------------------------------------------

    def release(self, subject: str) -> None:
        """Apply the work held for a subject that has just arrived, oldest business time
        first (the batch's own and what the store holds)."""
        pending = self.held.pop(subject, [])
        if self.holds.count > len(pending) and self.holds.may_hold(subject):
            pending += [Pending.from_store(s) for s in map(StoredHold.of,
                                                            self.holds.store.held_for([subject]))
                        if self.owned is None or s.part < 0 or s.part in self.owned]
        pending.sort(key=lambda p: (p.at, p.offset))
        for p in pending:
            self.holds.count -= 1
            self._release_one(p)

    def _release_one(self, p: Pending) -> None:
        try:
            if p.link is not None:
                self.link(p.link)
                outcome, reason, message = ACCEPTED, None, None
            else:
                assert p.action is not None
                where = p.row if p.row is not None else p.stored
                assert where is not None
                topic = where.topic
                part = where.partition if isinstance(where, IntakeRow) else where.part
                off = where.offset if isinstance(where, IntakeRow) else where.off
                outcome, waits_for = self.apply(p.action, cause_of(p.action, topic, part, off))
                if outcome == HELD:  # now waits for something else: keep holding
                    self._rehold(p, waits_for)
                    return
                reason = message = None
        except RefusedActionError as e:
            outcome, reason, message = REJECTED, e.reason, e.message
        except Exception as e:  # as in handle(): a bug dead-letters this action only
            if transient(e):
                raise  # the store is away or busy: the batch fails and is redone
            log.exception("held_action_failed")
            outcome, reason = REJECTED, "internal_error"
            message = f"The engine failed on this action: {type(e).__name__}: {e}."
        self.settle(p, outcome, reason, message)

    def _rehold(self, p: Pending, waits_for: str) -> None:
        self.holds.count += 1
        if p.row is not None:
            p.row.subject = waits_for
            self.held.setdefault(waits_for, []).append(p)
        else:
            assert p.stored is not None
            self.fx.rehold.append((p.stored.id, waits_for))
            self.unheld.append((p.stored.subject, p.stored.part))
            self.reheld.append((waits_for, p.stored.part))

    def settle(self, p: Pending, outcome: str, reason: str | None, message: str | None) -> None:
        """Write what became of held work: in this batch's own row, or as an update."""
        if p.row is None:
            assert p.stored is not None
            self.settle_stored(p.stored, outcome, reason, message)
            return
        r = p.row
        if r.offset >= 0:  # a link row was never counted as a consumed message
            self.counts[HELD] = self.counts.get(HELD, 0) - 1
            self._count(outcome)
            if outcome == REJECTED:
                self._count(f"{REJECTED}:{reason}")
        r.outcome, r.reason, r.message = outcome, reason, message
        if outcome == REJECTED and r.offset >= 0:
            self.fx.dead_letters.append(r)

    def settle_stored(self, s: StoredHold, outcome: str, reason: str | None,
                      message: str | None) -> None:
        """Settle a held row read back from the store (an update in this transaction)."""
        self.settled.add(s.id)
        self.unheld.append((s.subject, s.part))
        self.fx.resolved_holds.append((s.id, outcome, reason, message))
        if outcome == REJECTED and s.off >= 0:
            self.fx.dead_letters.append(IntakeRow(
                s.log, s.topic, s.part, s.off, REJECTED, akey=s.akey, reason=reason,
                message=message, raw=s.raw))

    def expire(self, s: StoredHold, hold_seconds: float) -> None:
        """A held row whose subject did not arrive in time."""
        if s.id in self.settled:
            return  # released earlier in this batch by a dossier recorded without its procedure
        self.holds.count -= 1
        kind, _, sid = s.subject.partition(":")
        if kind == "procedure" and (p := Pending.from_store(s)).action is not None \
                and p.action.data.get("due_at") is not None:
            self.uncatalogued.add(p.action.subject_id)
            self._release_one(p)
            return
        if kind == "procedure":
            reason = "no_due_time"
            msg = (f"The received action has no due_at and its procedure {sid} did not arrive "
                   f"within {hold_seconds:g} s, so no due time is known.")
        else:
            reason = "unknown_dossier"
            msg = (f"No {kind} {sid} arrived within {hold_seconds:g} s of this action; "
                   f"it refers to an unknown {kind}.")
        self.settle_stored(s, REJECTED, reason, msg)
        self._count(f"{REJECTED}:{reason}")

    # ----- commit ----------------------------------------------------------------------------

    def hold_changes(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(subject, partition) of the held rows this batch writes, and of the stored ones it
        settles or moves away from their subject."""
        added = [(r.subject, r.partition) for r in self.fx.intake
                 if r.outcome == HELD and r.subject is not None]
        return added + self.reheld, self.unheld

    def collect(self) -> list[Any]:
        """The batch's new events as stored events, with their facts rows and deadlines."""
        for sid, agg in self.touched.items():
            if isinstance(agg, Dossier):
                watch = (not agg.is_finished and agg.pending_since is None
                         and not agg.marks & M.OVERDUE_RECORDED)
                self.fx.deadlines[sid.hex] = agg.due().timestamp() if watch else None
        to_stored = stored_event if plain(self.cache.repository.event_store.mapper) \
            else self.cache.repository.event_store.mapper.to_stored_event
        stored = []
        for agg in self.touched.values():
            kind = KIND_OF_CLASS[type(agg)]
            notes = self.notes.get(agg.id, [])
            events: Sequence[Any] = agg.collect_events()
            # An event's facts before are the previous event's facts after (the same object):
            # encoded once, and kept on the aggregate for its next batch.
            last = agg.__dict__.get("_facts_json")
            for ev, (prev, facts) in zip(events, notes, strict=True):
                stored.append(to_stored(ev))
                before = last[1] if last is not None and last[0] is prev else _json(prev)
                after = _json(facts)
                last = (facts, after)
                self.fx.facts.append(FactRow(
                    kind, type(ev).__name__, agg.sid, ev.at, recorded_us(ev.timestamp),
                    before, after))
            if last is not None:
                agg.__dict__["_facts_json"] = last
        return stored


def _json(facts: Any) -> bytes | None:
    # Kept on the aggregate for its next event: bytes of their own size (kernel.jsonbytes).
    return None if facts is None else dumps_kept(facts)


COMMANDS: dict[str, Callable[[Any, dict[str, Any], datetime, Cause], None]] = {
    "received": lambda d, x, at, c: d.receive_again(),
    "digitized": lambda d, x, at, c: d.digitize(x["components"], at, c),
    "paid_online": lambda d, x, at, c: d.pay_online(x["gateway"], x["amount_vnd"], at, c),
    "supplement_requested": lambda d, x, at, c: d.request_supplement(x.get("reason"), at, c),
    "supplement_completed": lambda d, x, at, c: d.complete_supplement(at, c),
    "resolved": lambda d, x, at, c: d.resolve(x["outcome"], at, c),
    "result_returned": lambda d, x, at, c: d.return_result(at, c),
    "e_result_issued": lambda d, x, at, c: d.issue_e_result(
        x["result_ref"], bool(x.get("pushed_to_repository")), at, c),
    "withdrawn": lambda d, x, at, c: d.withdraw(at, c),
    "late": lambda d, x, at, c: d.mark_late(x.get("reason"), at, c),
    "apology_issued": lambda d, x, at, c: d.issue_apology(x["new_due_at"], x["reason"], at, c),
    "synced": lambda d, x, at, c: d.sync(at, c),
    "rated": lambda d, x, at, c: d.rate(x["satisfied"], x.get("scores"), at, c),
    "feedback_received": lambda f, x, at, c: f.receive_again(),
    "feedback_answered": lambda f, x, at, c: f.answer(at, c),
    "feedback_rated": lambda f, x, at, c: f.rate(x["satisfied"], at, c),
    "feedback_recomplained": lambda f, x, at, c: f.recomplain(at, c),
    "agency_registered": lambda ag, x, at, c: ag.register_again(x, at, c),
    "procedure_published": lambda p, x, at, c: p.publish_again(x, at, c),
    "procedure_publicized": lambda p, x, at, c: p.publicize(at, c),
    "procedure_repealed": lambda p, x, at, c: p.repeal(str(x["decision_date"]), at, c),
}
