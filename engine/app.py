"""The engine application: consumed messages in, exactly-once facts out.

``Engine.process()`` takes one partition's batch of messages and, in ONE event-store
transaction, records the new domain events, the Kafka position, what became of every message
(accepted, duplicate, held, rejected) and the dead letters. The commit protocol:

1. parse and validate every message (a bad one becomes a dead letter, the batch goes on);
2. look the idempotency keys up in one query: a repeat is a duplicate, a changed repeat is
   ``conflicting_duplicate``;
3. apply each action to its cached aggregate; an action before its subject is held;
4. write events + tracking + intake ledger + dead letters + deadline index together;
5. only then may the caller consider the offsets consumed. If the write fails, every aggregate
   the batch touched is evicted from the cache, and the batch is redone from the stored position.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from engine import facts as F
from engine.domain.base import Subject, subject_uuid
from engine.domain.catalog import Agency, Procedure
from engine.domain.dossier import Dossier, compute_due
from engine.domain.errors import UnknownSubjectError
from engine.domain.feedback import Feedback
from engine.ruleset import Ruleset
from engine.store import (
    ACCEPTED,
    DUPLICATE,
    HELD,
    REJECTED,
    IntakeMixin,
    IntakeRow,
    OrjsonTranscoder,
    PostgresStore,
    SideEffects,
    SQLiteStore,
    akey,
)
from kernel.calendar import local_date
from kernel.contract.actions import Action, InvalidActionError, parse_action
from kernel.errors import RefusedActionError

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
INTERNAL = "motcua"


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    value: bytes


class MotcuaApplication(Application[UUID]):
    """eventsourcing application with orjson state; events hold primitives only."""

    name = "motcua"

    def construct_transcoder(self) -> OrjsonTranscoder:
        return OrjsonTranscoder()


def store_env(database_url: str) -> dict[str, str]:
    """eventsourcing environment for a ``sqlite:///`` or ``postgresql://`` URL."""
    from urllib.parse import unquote, urlsplit

    if database_url.startswith("sqlite:///"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": database_url.removeprefix("sqlite:///"),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": get_topic(SQLiteStore),
        }
    u = urlsplit(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": u.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": unquote(u.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(u.password or ""),
        "POSTGRES_POOL_SIZE": "4",
        "APPLICATION_RECORDER_TOPIC": get_topic(PostgresStore),
    }


def tracking_name(log_id: str, topic: str, partition: int) -> str:
    """Positions are kept per Kafka log: a new cluster id is a new log (DESIGN broker rule)."""
    return f"{log_id}|{topic}|{partition}"


class Engine:
    """Applies actions to aggregates and records the facts exactly once."""

    def __init__(
        self,
        database_url: str,
        ruleset: Ruleset,
        *,
        hold_seconds: float = 10.0,
        hold_limit: int = 100_000,
        cache_size: int = 200_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = MotcuaApplication(env=store_env(database_url))
        self.store: IntakeMixin = self.app.recorder  # type: ignore[assignment]
        self.ruleset = ruleset
        self.calendar = ruleset.calendar
        self.hold_seconds = hold_seconds
        self.hold_limit = hold_limit
        self.clock = clock
        self._cache: OrderedDict[UUID, Subject] = OrderedDict()
        self._cache_size = cache_size
        self._ids: dict[str, UUID] = {}
        # Aggregates known not to exist yet (filled per batch by one query).
        self._absent: set[UUID] = set()
        self._held = self.store.held_count()

    def close(self) -> None:
        self.app.close()

    # ----- positions -----------------------------------------------------------------------

    def position(self, log_id: str, topic: str, partition: int) -> int | None:
        """The last offset recorded for a partition of a log, or ``None``."""
        return self.app.recorder.max_tracking_id(  # type: ignore[attr-defined, no-any-return]
            tracking_name(log_id, topic, partition)
        )

    # ----- aggregates ----------------------------------------------------------------------

    def uuid(self, kind: str, subject_id: str) -> UUID:
        key = f"{kind}:{subject_id}"
        u = self._ids.get(key)
        if u is None:
            if len(self._ids) > self._cache_size:
                self._ids.clear()
            u = self._ids[key] = subject_uuid(kind, subject_id)
        return u

    def _prefetch(self, ids: Iterable[UUID]) -> None:
        """One query tells which uncached subjects of a batch exist; the rest need no read."""
        unknown = list({i for i in ids if i not in self._cache})
        self._absent.clear()
        if unknown:
            found = self.store.existing(unknown)  # type: ignore[attr-defined]
            self._absent.update(i for i in unknown if i not in found)

    def _get(self, sid: UUID) -> Subject | None:
        agg = self._cache.get(sid)
        if agg is not None:
            self._cache.move_to_end(sid)
            return agg
        if sid in self._absent:
            return None
        try:
            agg = self.app.repository.get(sid)
        except AggregateNotFoundError:
            return None
        self._remember(agg)
        return agg

    def _remember(self, agg: Subject) -> None:
        self._absent.discard(agg.id)
        self._cache[agg.id] = agg
        self._cache.move_to_end(agg.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _forget(self, ids: Iterable[UUID]) -> None:
        for i in ids:
            self._cache.pop(i, None)

    # ----- the batch -----------------------------------------------------------------------

    def process(self, log_id: str, messages: Sequence[Message],
                epoch: int | None = None) -> dict[str, int]:
        """Record one partition's batch in one transaction; returns outcome counts.

        With ``epoch`` (consumer-group mode), the transaction commits only while this process
        still owns the partition at that epoch (``FencedError`` otherwise)."""
        if not messages:
            return {}
        topic, partition = messages[0].topic, messages[0].partition
        self._held = self.store.held_count()  # other processes may hold or release too
        batch = _Batch(self, log_id)
        if epoch is not None:
            batch.fx.fence = (topic, partition, epoch)
        parsed: list[tuple[Message, Action]] = []
        for m in messages:
            try:
                parsed.append((m, parse_action(m.value)))
            except InvalidActionError as e:
                batch.reject(m, None, e)
        taken = self.store.lookup_keys([akey(a.source, a.action_id) for _, a in parsed])
        wanted = []
        for _, a in parsed:
            wanted.append(self.uuid(KIND_OF_FIELD[a.subject_field], a.subject_id))
            if a.type == "received":
                wanted.append(self.uuid("procedure", a.data["procedure_id"]))
            elif a.type == "feedback_received" and a.data.get("dossier_id"):
                wanted.append(self.uuid("dossier", a.data["dossier_id"]))
        self._prefetch(wanted)
        for m, a in parsed:
            k = akey(a.source, a.action_id)
            prior = batch.keys.get(k) or taken.get(k)
            if prior is not None:
                if prior[0] == a.fingerprint:
                    batch.row(m, a, DUPLICATE)
                else:
                    batch.reject(m, a, RefusedActionError(
                        f"Action {a.action_id} from {a.source} was already received with "
                        "different content.", reason="conflicting_duplicate", field="action_id"))
                continue
            batch.handle(m, a)
        tracking = Tracking(tracking_name(log_id, topic, partition), messages[-1].offset)
        batch.commit(tracking)
        return batch.counts

    # ----- timers --------------------------------------------------------------------------

    def expire_holds(self) -> int:
        """Reject held actions whose subject did not arrive in time (``unknown_dossier``)."""
        rows = self.store.held_older_than(time.time() - self.hold_seconds)
        if not rows:
            return 0
        batch = _Batch(self, "")
        for r in rows:
            batch.expire(r)
        batch.commit(None)
        return len(rows)

    def forget_due(self) -> None:
        """What this engine remembers of subjects it does not own may be stale: another engine
        may have created or changed them since. The watcher drops a deadline when the dossier
        looks absent, finished or already overdue, without writing an event that a version
        check could refuse, so it must read the due dossiers afresh (and "absent" is only
        ever true of the last batch)."""
        e = self
        e._absent.clear()
        due = e.store.due_deadlines(e.clock().timestamp())
        if due:
            e._forget(UUID(oid) for oid, _ in due)

    def release_arrived(self, owned: set[int], min_age: float = 1.0) -> int:
        """Apply held actions whose subject exists by now.

        With several engines, an action may be held on one partition while its subject (a
        procedure, or the dossier a feedback names) is recorded on another engine's partition
        at the same moment: each transaction reads before the other commits, so the subject's
        batch finds no held row to release and the hold outlives its subject's arrival (it
        would expire as unknown). Held rows are looked at again by the timers, and before
        each batch: a later action of the same subject must not be applied before them.
        """
        e = self
        if not e.store.held_count():
            return 0
        parts: dict[str, set[int]] = {}
        for subject, part in e.store.held_subjects(time.time() - min_age):
            parts.setdefault(subject, set()).add(part)
        # A subject's own actions are released by the owner of their partition (``owned``: this
        # engine's actions partitions), which keeps the subject in its cache (a release
        # elsewhere would leave that copy stale); actions waiting for a catalog entry (a
        # dossier's received) may be released by anyone.
        mine = owned | {-1}
        ids = {}
        for subject, where in parts.items():
            kind, _, sid = subject.partition(":")
            if where <= mine or (kind in ("procedure", "agency") and min_age > 0):
                ids[subject] = e.uuid(kind, sid)
        if not ids:
            return 0
        found = e.store.existing(list(set(ids.values())))  # type: ignore[attr-defined]
        arrived = [s for s, u in ids.items() if u in found]
        if not arrived:
            return 0
        e._held = e.store.held_count()
        e._prefetch(found)
        batch = _Batch(e, "")
        for subject in arrived:
            batch.release(subject)
        batch.commit(None)
        return len(arrived)

    def record_overdue(self, limit: int = 1000) -> int:
        """The deadline watcher: record ``BecameOverdue`` at the due time, once per dossier."""
        now = self.clock()
        due = self.store.due_deadlines(now.timestamp(), limit)
        if not due:
            return 0
        batch = _Batch(self, "")
        n = 0
        for oid, _ in due:
            d = self._get(UUID(oid))
            if isinstance(d, Dossier) and d.record_overdue(now):
                n += 1
            if d is not None:
                batch.touched[d.id] = d
            batch.fx.deadlines[oid] = None
        batch.commit(None)
        return n

    # ----- reads ---------------------------------------------------------------------------

    def history(self, kind: str, subject_id: str) -> list[dict[str, Any]] | None:
        """Every recorded event of a subject, oldest first, or ``None`` if it is unknown."""
        sid = subject_uuid(kind, subject_id)
        stored = self.app.recorder.select_events(sid)
        if not stored:
            return None
        out = []
        for s in stored:
            state = orjson.loads(s.state)
            out.append({
                "version": s.originator_version,
                "type": s.topic.rsplit(".", 1)[-1],
                "at": state.pop("at"),
                "recorded_at": state.pop("timestamp"),
                "cause": state.pop("cause"),
                "facts": state.pop("facts"),
                "data": {k: v for k, v in state.items()
                         if k not in ("prev", "originator_topic", "class_version", "sid",
                                      "flags", "apology_moves_due")},
            })
        return out


class _Batch:
    """One transaction's worth of work."""

    def __init__(self, engine: Engine, log_id: str) -> None:
        self.e = engine
        self.log_id = log_id
        self.fx = SideEffects()
        self.touched: dict[UUID, Subject] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.counts: dict[str, int] = {}
        # Subject key -> held rows of this batch (not yet written).
        self.held: dict[str, list[tuple[IntakeRow, Action]]] = {}

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

    def handle(self, m: Message, a: Action) -> None:
        k = akey(a.source, a.action_id)
        try:
            outcome, waits_for = self.apply(a, _cause(a, m), m)
        except RefusedActionError as e:
            self.reject(m, a, e)
            return
        except Exception as e:  # a bug must not stall the partition: dead-letter it, loudly
            log.exception("action_failed", topic=m.topic, partition=m.partition, offset=m.offset)
            self.reject(m, a, RefusedActionError(
                f"The engine failed on this action: {type(e).__name__}: {e}.",
                reason="internal_error"))
            return
        if outcome == HELD:
            if self.e._held >= self.e.hold_limit:
                self.reject(m, a, UnknownSubjectError(
                    f"{a.subject_field} {a.subject_id} is unknown and the hold is full "
                    f"({self.e.hold_limit} actions).", reason="hold_full"))
                return
            r = self.row(m, a, HELD)
            r.subject = waits_for
            self.held.setdefault(waits_for, []).append((r, a))
            self.e._held += 1
        else:
            self.row(m, a, ACCEPTED)
        self.keys[k] = (a.fingerprint, outcome)

    def apply(self, a: Action, cause: dict[str, Any] | None,
              m: Message | None) -> tuple[str, str]:
        """Apply one action to its subject; (``HELD``, what it waits for) if it cannot yet."""
        kind = KIND_OF_FIELD[a.subject_field]
        subject = f"{kind}:{a.subject_id}"
        sid = self.e.uuid(kind, a.subject_id)
        agg = self.touched.get(sid) or self.e._get(sid)
        opening = OPENING.get(a.type)
        if agg is None and opening is None:
            return HELD, subject
        data: dict[str, Any] = a.data  # type: ignore[assignment]  # a fresh dict per action
        at = a.occurred_at
        if agg is None:
            if a.type == "received" and data.get("due_at") is None:
                pid = data["procedure_id"]
                if self._procedure(pid) is None:
                    # Its due time comes from a procedure the catalog has not sent yet.
                    return HELD, f"procedure:{pid}"
            agg = self.create(a, sid, data, at, cause)
            self.touched[sid] = agg
            self.e._remember(agg)
            self.release(subject)
            return ACCEPTED, subject
        _COMMANDS[a.type](self, agg, data, at, cause)
        self.touched[sid] = agg
        return ACCEPTED, subject

    def _procedure(self, pid: str) -> Procedure | None:
        psid = self.e.uuid("procedure", pid)
        p = self.touched.get(psid) or self.e._get(psid)
        return p if isinstance(p, Procedure) else None

    def create(self, a: Action, sid: UUID, data: dict[str, Any], at: datetime,
               cause: dict[str, Any] | None) -> Subject:
        e = self.e
        if a.type == "received":
            proc = self._procedure(data["procedure_id"])
            due = compute_due(at, data.get("due_at"),
                              proc.processing_time if proc is not None else None, e.calendar)
            return Dossier.receive(id=sid, dossier_id=a.subject_id, data=data, at=at, due_at=due,
                                   cause=cause, apology_moves_due=e.ruleset.apology_moves_due)
        if a.type == "feedback_received":
            answer_due = e.calendar.add_working_days(
                local_date(at), e.ruleset.petition_answer_working_days)
            fb = Feedback.receive(id=sid, feedback_id=a.subject_id, data=data, at=at,
                                  answer_due=answer_due, cause=cause)
            if data.get("dossier_id"):
                self.link(str(data["dossier_id"]), a.subject_id, at, cause)
            return fb
        if a.type == "procedure_published":
            return Procedure.publish(id=sid, procedure_id=a.subject_id, data=data, at=at,
                                     cause=cause)
        return Agency.register(id=sid, agency_id=a.subject_id, data=data, at=at, cause=cause)

    def link(self, dossier_id: str, feedback_id: str, at: datetime,
             cause: dict[str, Any] | None) -> None:
        """Mark a dossier as having feedback about it (5.4), now or when it arrives."""
        sid = self.e.uuid("dossier", dossier_id)
        d = self.touched.get(sid) or self.e._get(sid)
        if isinstance(d, Dossier):
            d.link_feedback(feedback_id, at, cause)
            self.touched[sid] = d
            return
        internal = {"internal": "feedback_linked", "dossier_id": dossier_id,
                    "feedback_id": feedback_id, "at": at.isoformat(), "cause": cause}
        r = IntakeRow(self.log_id, "", -1, -1, HELD, subject=f"dossier:{dossier_id}",
                      occurred_at=at.isoformat(), raw=orjson.dumps(internal))
        self.fx.intake.append(r)
        self.e._held += 1
        self.held.setdefault(r.subject or "", []).append((r, None))  # type: ignore[arg-type]

    def release(self, subject: str) -> None:
        """Apply the actions held for a subject that has just arrived, oldest first."""
        pending: list[tuple[str, Any, Any, Any]] = []
        for r, a in self.held.pop(subject, []):
            pending.append((r.occurred_at or "", r.offset, ("batch", r), a))
        db_rows = self.e.store.held_for([subject]) if self.e._held > len(pending) else []
        for row in db_rows:
            raw = bytes(row["raw"])
            held: Action | None = None if raw.startswith(b'{"internal"') else parse_action(raw)
            at = held.occurred_at.isoformat() if held else orjson.loads(raw)["at"]
            pending.append((at, row["off"], ("db", row), held))
        pending.sort(key=lambda p: (datetime.fromisoformat(p[0]), p[1]))
        for _, _, (where, r), a in pending:
            self.e._held -= 1
            try:
                if a is None:
                    raw = r.raw if where == "batch" else bytes(r["raw"])
                    internal = orjson.loads(raw)
                    self.link(internal["dossier_id"], internal["feedback_id"],
                              datetime.fromisoformat(internal["at"]), internal["cause"])
                    outcome, reason, message = ACCEPTED, None, None
                else:
                    cause = _cause(a, None, r if where == "db" else None,
                                   r if where == "batch" else None)
                    outcome, waits_for = self.apply(a, cause, None)
                    if outcome == HELD:  # now waits for something else: keep holding
                        self._rehold(where, r, a, waits_for)
                        continue
                    reason, message = None, None
            except RefusedActionError as e:
                outcome, reason, message = REJECTED, e.reason, e.message
            except Exception as e:  # as in handle(): a bug dead-letters this action only
                log.exception("held_action_failed", subject=subject)
                outcome, reason = REJECTED, "internal_error"
                message = f"The engine failed on this action: {type(e).__name__}: {e}."
            self._settle(where, r, outcome, reason, message)

    def _rehold(self, where: str, r: Any, a: Action, waits_for: str) -> None:
        self.e._held += 1
        if where == "batch":
            r.subject = waits_for
            self.held.setdefault(waits_for, []).append((r, a))
        else:
            self.fx.rehold.append((r["id"], waits_for))

    def _settle(self, where: str, r: Any, outcome: str, reason: str | None,
                message: str | None) -> None:
        if where == "batch":
            if r.offset >= 0:  # an internal link row was never counted as a consumed message
                self.counts[HELD] = self.counts.get(HELD, 0) - 1
                self._count(outcome)
                if outcome == REJECTED:
                    self._count(f"{REJECTED}:{reason}")
            r.outcome, r.reason, r.message = outcome, reason, message
            if outcome == REJECTED and r.offset >= 0:
                self.fx.dead_letters.append(r)
            return
        self.fx.resolved_holds.append((r["id"], outcome, reason, message))
        if outcome == REJECTED and r["off"] >= 0:
            self.fx.dead_letters.append(IntakeRow(
                r["log"], r["topic"], r["part"], r["off"], REJECTED, akey=r["akey"],
                reason=reason, message=message, raw=bytes(r["raw"])))

    def expire(self, r: dict[str, Any]) -> None:
        self.e._held -= 1
        kind, _, sid = str(r["subject"]).partition(":")
        if kind == "procedure":
            reason = "no_due_time"
            msg = (f"The received action has no due_at and its procedure {sid} did not arrive "
                   f"within {self.e.hold_seconds:g} s, so no due time is known.")
        else:
            reason = "unknown_dossier"
            msg = (f"No {kind} {sid} arrived within {self.e.hold_seconds:g} s of this action; "
                   f"it refers to an unknown {kind}.")
        self._settle("db", r, REJECTED, reason, msg)

    def commit(self, tracking: Tracking | None) -> None:
        e = self.e
        for sid, agg in self.touched.items():
            if isinstance(agg, Dossier):
                open_ = (not agg.is_finished and agg.pending_since is None
                         and not agg.flags & F.OVERDUE_RECORDED)
                self.fx.deadlines[sid.hex] = agg.due().timestamp() if open_ else None
        try:
            # Straight to the recorder: the library's Application.save() would also build
            # Recording objects and check every aggregate against a Protocol, which costs more
            # than the insert; this cache is ours.
            to_stored = e.app.mapper.to_stored_event
            stored = [to_stored(ev) for agg in self.touched.values()
                      for ev in agg.collect_events()]
            e.app.recorder.insert_events(stored, tracking=tracking, side_effects=self.fx)
        except BaseException:
            e._forget(self.touched)
            e._held = e.store.held_count()
            raise


def _cause(a: Action, m: Message | None, db_row: dict[str, Any] | None = None,
           batch_row: IntakeRow | None = None) -> dict[str, Any]:
    if m is not None:
        pos = (m.topic, m.partition, m.offset)
    elif db_row is not None:
        pos = (db_row["topic"], db_row["part"], db_row["off"])
    elif batch_row is not None:
        pos = (batch_row.topic, batch_row.partition, batch_row.offset)
    else:  # pragma: no cover
        pos = ("", -1, -1)
    return {"source": a.source, "action_id": a.action_id, "topic": pos[0],
            "partition": pos[1], "offset": pos[2]}


_COMMANDS: dict[str, Callable[[_Batch, Any, dict[str, Any], datetime, Any], None]] = {
    "received": lambda b, d, x, at, c: d.receive_again(),
    "digitized": lambda b, d, x, at, c: d.digitize(x["components"], at, c),
    "paid_online": lambda b, d, x, at, c: d.pay_online(x["gateway"], x["amount_vnd"], at, c),
    "supplement_requested": lambda b, d, x, at, c: d.request_supplement(x.get("reason"), at, c),
    "supplement_completed": lambda b, d, x, at, c: d.complete_supplement(at, c),
    "resolved": lambda b, d, x, at, c: d.resolve(x["outcome"], at, c, b.e.calendar),
    "result_returned": lambda b, d, x, at, c: d.return_result(at, c, b.e.calendar),
    "e_result_issued": lambda b, d, x, at, c: d.issue_e_result(
        x["result_ref"], bool(x.get("pushed_to_repository")), at, c),
    "withdrawn": lambda b, d, x, at, c: d.withdraw(at, c, b.e.calendar),
    "late": lambda b, d, x, at, c: d.mark_late(x.get("reason"), at, c),
    "apology_issued": lambda b, d, x, at, c: d.issue_apology(x["new_due_at"], x["reason"], at, c),
    "synced": lambda b, d, x, at, c: d.sync(at, c),
    "rated": lambda b, d, x, at, c: d.rate(x["satisfied"], x.get("scores"), at, c),
    "feedback_received": lambda b, f, x, at, c: f.receive_again(),
    "feedback_answered": lambda b, f, x, at, c: f.answer(at, c),
    "feedback_rated": lambda b, f, x, at, c: f.rate(x["satisfied"], at, c),
    "feedback_recomplained": lambda b, f, x, at, c: f.recomplain(at, c),
    "agency_registered": lambda b, ag, x, at, c: ag.register_again(x, at, c),
    "procedure_published": lambda b, p, x, at, c: p.publish_again(x, at, c),
    "procedure_publicized": lambda b, p, x, at, c: p.publicize(at, c),
    "procedure_repealed": lambda b, p, x, at, c: p.repeal(str(x["decision_date"]), at, c),
}
