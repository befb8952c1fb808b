"""The engine application: consumed messages in, exactly-once facts out.

``Engine.process()`` takes one partition's batch of messages and, in ONE event-store
transaction, records the new domain events, the facts cache row of each, the Kafka position,
what became of every message (accepted, duplicate, held, rejected) and the dead letters. The
commit protocol:

1. parse and validate every message (a bad one becomes a dead letter, the batch goes on);
2. look the idempotency keys up in one query: a repeat is a duplicate, a changed repeat is
   ``conflicting_duplicate``;
3. apply each action to its cached aggregate (``engine.intake.Batch``); an action before its
   subject is held;
4. write events + facts + tracking + intake ledger + dead letters + deadline index together;
5. only then may the caller consider the offsets consumed. If the batch fails, at its write or
   before, every aggregate it changed is evicted from the cache, and the batch is redone (or
   isolated) from the stored state.

The engine knows the lifecycle (``engine.domain``) and a working-day calendar, not the index:
what each event is worth to a score comes from an ``annotate`` function that the composition
root passes in (``projections.facts.Annotator``), and is stored beside the event with its
version, so that ``motcua replay --rederive`` can recompute it for all of history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from engine.beside import Prepared, insert_beside, parse_one
from engine.cache import SubjectCache
from engine.checkpoint import checkpointer_for
from engine.domain.base import subject_uuid
from engine.domain.dossier import Dossier
from engine.holds import HoldBook, StoredHold
from engine.intake import (
    KIND_OF_FIELD,
    Annotate,
    Batch,
    Message,
)
from engine.scope import ScopeGate, agencies_of
from engine.store import (
    DUPLICATE,
    FencedError,
    IntakeMixin,
    OrjsonTranscoder,
    SQLiteStore,
    akey,
)
from kernel.calendar import WorkCalendar
from kernel.contract.actions import Action, InvalidActionError
from kernel.errors import ConfigurationError, RefusedActionError
from kernel.failures import describe, reason_of, transient
from kernel.grants import GrantBook
from kernel.settings import ENGINE_CACHE, HOLD_LIMIT, HOLD_SECONDS

log = structlog.get_logger("motcua.engine")

__all__ = ["Engine", "FactsVersionError", "Message", "MotcuaApplication", "store_env",
           "tracking_name"]

FACTS_VERSION = "facts_version"
# Written by a running engine role every second: how other commands tell one is running.
HEARTBEAT = "heartbeat:engine"


class FactsVersionError(ConfigurationError):
    """The store's facts were derived by other rules than this build's."""


class MotcuaApplication(Application[UUID]):
    """eventsourcing application with orjson state; events hold primitives only."""

    name = "motcua"

    def construct_transcoder(self) -> OrjsonTranscoder:
        return OrjsonTranscoder()


def store_env(database_url: str) -> dict[str, str]:
    """eventsourcing environment for a ``sqlite:///`` or ``postgresql://`` URL."""
    from urllib.parse import unquote, urlsplit

    if database_url.startswith("sqlite:///"):
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_LOCK_TIMEOUT": "30",
                "SQLITE_DBNAME": database_url.removeprefix("sqlite:///"),
                "APPLICATION_RECORDER_TOPIC": get_topic(SQLiteStore)}
    u = urlsplit(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": u.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": unquote(u.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(u.password or ""),
        "POSTGRES_POOL_SIZE": "4",
        # Named, not imported: a process on SQLite never imports the PostgreSQL driver.
        "APPLICATION_RECORDER_TOPIC": "engine.store_pg:PostgresStore",
    }


def tracking_name(log_id: str, topic: str, partition: int) -> str:
    """Positions are kept per Kafka log: a new cluster id is a new log (DESIGN broker rule)."""
    return f"{log_id}|{topic}|{partition}"


class Engine:
    """Applies actions to aggregates and records the facts exactly once."""

    def __init__(
        self,
        database_url: str,
        *,
        annotate: Annotate | None = None,
        facts_version: str | None = None,
        calendar: WorkCalendar | None = None,
        hold_seconds: float = HOLD_SECONDS,
        hold_limit: int = HOLD_LIMIT,
        cache_size: int = ENGINE_CACHE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wall: Callable[[], float] = time.time,
        check_facts: bool = True,
        grants: GrantBook | None = None,
        require_grants: bool = False,
        record_uncatalogued: bool = False,
    ) -> None:
        self.app = MotcuaApplication(env=store_env(database_url))
        if not isinstance(store := self.app.recorder, IntakeMixin):  # store_env names ours
            raise TypeError(f"{type(store).__name__} is not a motcua event store.")
        self.store = store
        self.annotate = annotate
        self.calendar = calendar or WorkCalendar()
        self.hold_seconds = hold_seconds
        # False: a dossier of a procedure not seen yet waits for it (up to the hold), so its
        # steps' budgets do not depend on which partition arrived first (docs/decisions.md).
        self.record_uncatalogued = record_uncatalogued
        # The actions partitions this engine owns in a group (None: all of them, alone).
        self.owned: set[int] | None = None
        self.clock = clock
        # Hold ages are wall-clock seconds (ledger rows record time.time()); tests inject it.
        self.wall = wall
        self.cache = SubjectCache(self.app.repository, self.store, cache_size)
        self.holds = HoldBook(self.store, hold_limit)
        self.checkpointer = checkpointer_for(self.store)  # (SQLite: engine.checkpoint)
        # Which `motcua-spool` headers are copies of this store's spooled lines.
        self.spool_ns = self.store.spool_namespace()
        self.facts_version = facts_version or str(getattr(annotate, "version", ""))
        # The sources' scopes, read from the grants table next to the events (kernel.grants).
        self.grants = grants or GrantBook(database_url, require=require_grants)
        if annotate is not None and check_facts:
            self._check_facts_version(self.facts_version)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.app.close()
        self.grants.close()

    def _check_facts_version(self, version: str) -> None:
        stored = self.store.get_meta(FACTS_VERSION)
        if stored is None:
            if self.store.has_events():
                raise FactsVersionError(
                    "The event store holds events without derived facts; run `motcua replay "
                    "--rederive` to derive them.")
            self.store.set_meta(FACTS_VERSION, version)
        elif stored != version:
            raise FactsVersionError(
                f"The event store's facts were derived by rules {stored}, and this build "
                f"derives them by rules {version}: run `motcua replay --rederive` first.")

    # ----- positions -----------------------------------------------------------------------

    def position(self, log_id: str, topic: str, partition: int) -> int | None:
        """The last offset recorded for a partition of a log, or ``None``."""
        return self.app.recorder.max_tracking_id(  # type: ignore[attr-defined, no-any-return]
            tracking_name(log_id, topic, partition)
        )

    def uuid(self, kind: str, subject_id: str) -> UUID:
        return self.cache.uuid(kind, subject_id)

    def batch(self, log_id: str = "") -> Batch:
        """A new unit of work on this engine's cache, holds and rules, with the sources' scopes
        as they stand (read before any action is applied: an unreadable grants table fails the
        batch, to be redone, rather than any one action)."""
        batch = Batch(self.cache, self.holds, self.calendar, self.annotate, log_id)
        batch.scope = ScopeGate(self.grants.scopes(), batch.subject, self.cache.uuid)
        batch.record_uncatalogued = self.record_uncatalogued
        batch.owned = self.owned
        return batch

    # ----- the batch -----------------------------------------------------------------------

    def process(self, log_id: str, messages: Sequence[Message],
                epoch: int | None = None, *, isolate: bool = False,
                parsed: Prepared | None = None,
                during: Callable[[], None] | None = None) -> dict[str, int]:
        """Record one partition's batch in one transaction; returns outcome counts.

        With ``epoch`` (consumer-group mode), the transaction commits only while this process
        still owns the partition at that epoch (``FencedError`` otherwise). A failure that is
        not transient (``kernel.failures``) is the batch's own: the batch is split until the
        message that fails alone is found and dead-lettered, and the rest is recorded. With
        ``isolate``, a race (``IntegrityError``) that keeps coming back is treated so too.

        ``parsed``: what ``engine.beside.prepare`` made of (some of) these messages.
        ``during``: work that may run beside the batch's commit (``engine.beside``: the next
        batch's ``prepare``); it is not run if the batch fails before its commit."""
        if not messages:
            return {}
        try:
            return self._process_once(log_id, messages, epoch, parsed or {}, during)
        except Exception as e:
            if isinstance(e, FencedError) or (transient(e) and not
                                               (isolate and isinstance(e, IntegrityError))):
                raise
            return self._isolate(log_id, messages, epoch, e)

    def _isolate(self, log_id: str, messages: Sequence[Message], epoch: int | None,
                 error: Exception) -> dict[str, int]:
        """Record ``messages`` in halves; a single message that fails alone is dead-lettered."""
        if len(messages) > 1:
            mid = len(messages) // 2
            counts = self.process(log_id, messages[:mid], epoch, isolate=True)
            for k, n in self.process(log_id, messages[mid:], epoch, isolate=True).items():
                counts[k] = counts.get(k, 0) + n
            return counts
        m = messages[0]
        log.error("message_quarantined", topic=m.topic, partition=m.partition, offset=m.offset,
                  reason=reason_of(error), error=describe(error))
        batch = self.batch(log_id)
        if epoch is not None:
            batch.fx.fence = (m.topic, m.partition, epoch)
        if m.spool is not None and m.spool not in self.store.spool_fresh([m.spool]):
            batch.row(m, None, DUPLICATE)  # a copy of a spooled line recorded already
        else:
            if m.spool is not None:  # the line's outcome is this dead letter: never sent again
                batch.fx.spool_done.append((m.spool, log_id, m.partition, m.offset))
            batch.reject(m, None, RefusedActionError(describe(error), reason=reason_of(error)))
        # If even the dead letter cannot be written, the store itself is failing: raise.
        self.commit(batch, Tracking(tracking_name(log_id, m.topic, m.partition), m.offset))
        return batch.counts

    def _process_once(self, log_id: str, messages: Sequence[Message], epoch: int | None,
                      ready: Prepared, during: Callable[[], None] | None) -> dict[str, int]:
        topic, partition = messages[0].topic, messages[0].partition
        self.holds.refresh(self.owned)  # other processes may hold or release too
        batch = self.batch(log_id)
        if epoch is not None:
            batch.fx.fence = (topic, partition, epoch)
        with self._undone_on_failure(batch):
            parsed: list[tuple[Message, Action]] = []
            for m in self._first_copies(batch, log_id, messages):
                got = ready.get(id(m))
                a = got[1] if got is not None and got[0] is m else parse_one(m)
                if isinstance(a, InvalidActionError):
                    batch.reject(m, None, a)
                else:
                    parsed.append((m, a))
            taken = self.store.lookup_keys([akey(a.source, a.action_id) for _, a in parsed])
            self.cache.prefetch(self._subjects_of(a for _, a in parsed))
            for m, a in parsed:
                k = akey(a.source, a.action_id)
                prior = batch.keys.get(k) or taken.get(k)
                if prior is not None:
                    batch.duplicate_or_conflict(m, a, prior)
                    continue
                batch.handle(m, a)
        self.commit(batch, Tracking(tracking_name(log_id, topic, partition), messages[-1].offset),
                    during)
        return batch.counts

    def _first_copies(self, batch: Batch, log_id: str,
                      messages: Sequence[Message]) -> list[Message]:
        """The messages to process: all but the copies of spooled lines that do not count,
        which are recorded as duplicates whatever their bytes (so a line without a key is
        never dead-lettered twice): a line already recorded, or one whose subject has an older
        line not recorded yet (engine.spooled). Each copy that counts settles its line in
        this transaction."""
        fresh = self.store.spool_fresh(m.spool for m in messages if m.spool is not None)
        queues = self.store.spool_queues(k for k in fresh.values() if k is not None)
        out = []
        for m in messages:
            if m.spool is not None:
                if m.spool not in fresh:
                    batch.row(m, None, DUPLICATE)
                    continue
                queue = queues.get(fresh[m.spool] or b"")
                if queue and queue[0] != m.spool:  # an older line of its subject comes first
                    batch.row(m, None, DUPLICATE)
                    batch.fx.spool_resend.append(m.spool)
                    continue
                if queue:
                    queue.pop(0)
                del fresh[m.spool]
                batch.fx.spool_done.append((m.spool, log_id, m.partition, m.offset))
            out.append(m)
        return out

    def _subjects_of(self, actions: Any) -> list[UUID]:
        """Every aggregate a batch of actions may read."""
        wanted = []
        for a in actions:
            wanted.append(self.uuid(KIND_OF_FIELD[a.subject_field], a.subject_id))
            if a.type == "received":
                wanted.append(self.uuid("procedure", a.data["procedure_id"]))
            elif a.type == "feedback_received" and a.data.get("dossier_id"):
                wanted.append(self.uuid("dossier", a.data["dossier_id"]))
        return wanted

    @contextmanager
    def _undone_on_failure(self, batch: Batch) -> Iterator[None]:
        """Around a batch's work before its commit: if it fails, nothing was written, so what
        it changed in memory is not so either (the batch is redone, or isolated, from the
        stored state; found by tests/unit/test_engine_beside.py)."""
        try:
            yield
        except BaseException:
            self.cache.forget(batch.touched)
            self.cache.forget_unsaved()  # changed before the batch noted it
            self.holds.stale = True
            raise

    def commit(self, batch: Batch, tracking: Tracking | None,
               during: Callable[[], None] | None = None) -> None:
        """Write one batch's events, facts and side effects in one transaction (running
        ``during`` beside its commit: ``engine.beside``)."""
        try:
            # Straight to the recorder: the library's Application.save() would also build
            # Recording objects and check every aggregate against a Protocol, which costs more
            # than the insert; this cache is ours.
            stored = batch.collect()
            if during is None:
                self.app.recorder.insert_events(stored, tracking=tracking,
                                                side_effects=batch.fx)
            else:
                insert_beside(self.app.recorder, stored, during, tracking=tracking,
                              side_effects=batch.fx)
        except BaseException:
            self.cache.forget(batch.touched)
            self.holds.stale = True  # whether it was written is unknown: read it again
            self.holds.refresh(self.owned)
            raise
        self.holds.committed(*batch.hold_changes())
        if self.checkpointer is not None:
            self.checkpointer.poke()

    # ----- timers --------------------------------------------------------------------------

    def expire_holds(self, counts: dict[str, int] | None = None) -> int:
        """Reject held actions whose subject did not arrive in time (``unknown_dossier``);
        ``counts`` gets ``rejected:<reason>`` per refused action (for the metrics)."""
        rows = [r for r in self.store.held_older_than(self.wall() - self.hold_seconds)
                if self._mine(int(r["part"]))]
        if not rows:
            return 0
        batch = self.batch()
        # Dossiers waiting for their procedure first: one received with a due_at is recorded
        # now, and releases its own later actions (which must not expire as unknown).
        rows.sort(key=lambda r: not str(r["subject"]).startswith("procedure:"))
        with self._undone_on_failure(batch):
            for r in rows:
                batch.expire(StoredHold.of(r), self.hold_seconds)
        self.commit(batch, None)
        if counts is not None:
            for k, n in batch.counts.items():
                counts[k] = counts.get(k, 0) + n
        return len(rows)

    def forget_due(self) -> None:
        """What this engine remembers of subjects it does not own may be stale: another engine
        may have created or changed them since. The watcher drops a deadline when the dossier
        looks absent, finished or already overdue, without writing an event that a version
        check could refuse, so it must read the due dossiers afresh (and "absent" is only
        ever true of the last batch)."""
        self.cache.forget_absent()
        due = self.store.due_deadlines(self.clock().timestamp())
        if due:
            self.cache.forget(UUID(oid) for oid, _ in due)

    def _mine(self, part: int) -> bool:
        """Held work of this partition is this engine's to settle (-1: no partition)."""
        return self.owned is None or part < 0 or part in self.owned

    def release_arrived(self, owned: set[int], min_age: float = 1.0) -> int:
        """Apply held actions whose subject exists by now.

        With several engines, an action may be held on one partition while its subject (a
        procedure, or the dossier a feedback names) is recorded on another engine's partition
        at the same moment: each transaction reads before the other commits, so the subject's
        batch finds no held row to release and the hold outlives its subject's arrival (it
        would expire as unknown). Held rows are looked at again by the timers, and before
        each batch: a later action of the same subject must not be applied before them.
        """
        if not self.store.held_count():
            return 0
        parts: dict[str, set[int]] = {}
        for subject, part in self.store.held_subjects(self.wall() - min_age):
            parts.setdefault(subject, set()).add(part)
        # Held work is released by the owner of its partition (``owned``: this engine's actions
        # partitions), which keeps the subject in its cache (a release elsewhere would leave
        # that copy stale) and in its order: a dossier's received waiting for the catalog is
        # recorded where that dossier's later actions are (elsewhere, one of them could be
        # applied before an earlier one held here).
        mine = owned | {-1}
        ids = {}
        for subject, where in parts.items():
            kind, _, sid = subject.partition(":")
            if where & mine:  # a batch releases only the rows of ``owned`` (Batch.release)
                ids[subject] = self.uuid(kind, sid)
        if not ids:
            return 0
        found = self.store.existing(list(set(ids.values())))
        arrived = [s for s, u in ids.items() if u in found]
        if not arrived:
            return 0
        self.holds.refresh(self.owned)
        self.cache.prefetch(found)
        batch = self.batch()
        with self._undone_on_failure(batch):
            for subject in arrived:
                batch.release(subject)
        self.commit(batch, None)
        return len(arrived)

    def record_overdue(self, limit: int = 1000) -> int:
        """The deadline watcher: record ``BecameOverdue`` at the due time, once per dossier."""
        now = self.clock()
        due = self.store.due_deadlines(now.timestamp(), limit)
        if not due:
            return 0
        batch = self.batch()
        n = 0
        with self._undone_on_failure(batch):
            for oid, _ in due:
                d = batch.subject(UUID(oid))
                if isinstance(d, Dossier) and d.record_overdue(now):
                    n += 1
                if d is not None:
                    batch.touch(d)
                batch.fx.deadlines[oid] = None
        self.commit(batch, None)
        return n

    # ----- reads ---------------------------------------------------------------------------

    def subject(self, kind: str, subject_id: str) -> Any:
        """A subject's aggregate as recorded (read from the store), or ``None``."""
        try:
            return self.app.repository.get(subject_uuid(kind, subject_id))
        except AggregateNotFoundError:
            return None

    def subject_agencies(self, kind: str, subject_id: str) -> list[tuple[str, str]] | None:
        """The agencies a recorded subject belongs to now, read from the event store: for the
        HTTP bridge's scope check of follow-up actions (``kernel.grants.SubjectAgencies``);
        None when the subject is not recorded."""
        return agencies_of(self.subject(kind, subject_id))

    def history(self, kind: str, subject_id: str) -> list[dict[str, Any]] | None:
        """Every recorded event of a subject, oldest first, or ``None`` if it is unknown.

        Each event carries the subject's facts after it, derived again by ``annotate`` from
        the state the events build up (so a history always shows the current rules' facts)."""
        sid = subject_uuid(kind, subject_id)
        stored = self.app.recorder.select_events(sid)
        if not stored:
            return None
        mapper = self.app.mapper
        agg: Any = None
        out = []
        for s in stored:
            event: Any = mapper.to_domain_event(s)
            agg = event.mutate(agg)
            state = orjson.loads(s.state)
            out.append({
                "version": s.originator_version,
                "type": s.topic.rsplit(".", 1)[-1],
                "at": state.pop("at"),
                "recorded_at": state.pop("timestamp"),
                "cause": state.pop("cause"),
                "facts": self.annotate(agg) if self.annotate is not None else None,
                "data": {k: v for k, v in state.items()
                         if k not in ("prev", "facts", "originator_topic", "class_version",
                                      "sid", "flags", "apology_moves_due")},
            })
        return out
