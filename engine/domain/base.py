"""What every motcua aggregate shares: deterministic ids and the cause of each fact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

_NAMESPACE = uuid5(NAMESPACE_URL, "https://motcua.example/subjects")

Cause = dict[str, Any]
"""Which action caused a fact: ``source``, ``action_id``, ``topic``, ``partition``, ``offset``."""


def subject_uuid(kind: str, subject_id: str) -> UUID:
    """The aggregate id of a subject; the same business id always maps to the same aggregate."""
    return uuid5(_NAMESPACE, f"{kind}:{subject_id}")


class Subject(Aggregate):
    """Base of the motcua aggregates.

    Every event has a business time ``at`` and a ``cause``. Events recorded before the engine
    stopped deriving index facts also carry ``prev`` and ``facts``: readers ignore them (the
    facts now live in the store's facts cache, derived by the projections).
    """

    sid: str

    class Event(Aggregate.Event):
        sid: str
        at: str
        cause: Cause | None

        def apply(self, aggregate: Any) -> None:
            aggregate.sid = self.sid
            self.evolve(aggregate)

        def evolve(self, aggregate: Any) -> None:
            """Move the subject's state."""

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _open(cls, event_class: type[Any], *, id: UUID, sid: str,  # noqa: A002
              at: datetime, cause: Cause | None, **payload: Any) -> Any:
        # ``_create()`` without its generic keyword filtering (the ingest hot path): the
        # aggregate's __init__ takes nothing and the event's apply() sets the state. Reading an
        # aggregate back from the store goes through the library's own mutate(), unchanged.
        event = event_class(originator_id=id, originator_version=cls.INITIAL_VERSION,
                            timestamp=datetime.now(UTC), originator_topic=get_topic(cls),
                            sid=sid, at=at.isoformat(), cause=cause, **payload)
        subject = cls.__new__(cls)
        subject.__base_init__(id, cls.INITIAL_VERSION, event.timestamp)
        event.apply(subject)
        subject.pending_events.append(event)
        return subject

    def _emit(self, event_class: type[Any], at: datetime, cause: Cause | None,
              **payload: Any) -> None:
        """``trigger_event()`` without its generic checks: this is the ingest hot path, and
        the id and version are ours to set right."""
        event = event_class(
            originator_id=self.id, originator_version=self.version + 1,
            timestamp=datetime.now(UTC), sid=self.sid, at=at.isoformat(), cause=cause,
            **payload,
        )
        event.apply(self)
        self.version = event.originator_version
        self.modified_on = event.timestamp
        self.pending_events.append(event)


def iso(t: datetime) -> str:
    return t.isoformat()


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s)
