"""What every motcua aggregate shares: deterministic ids and the cause of each fact."""

from __future__ import annotations

import dataclasses
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
        event = new_event(event_class, {
            "originator_id": id, "originator_version": cls.INITIAL_VERSION,
            "timestamp": datetime.now(UTC), "originator_topic": get_topic(cls), "sid": sid,
            "at": at.isoformat(), "cause": cause, **payload})
        subject = cls.__new__(cls)
        subject.__base_init__(id, cls.INITIAL_VERSION, event.timestamp)
        event.apply(subject)
        subject.pending_events.append(event)
        return subject

    def _emit(self, event_class: type[Any], at: datetime, cause: Cause | None,
              **payload: Any) -> None:
        """``trigger_event()`` without its generic checks: this is the ingest hot path, and
        the id and version are ours to set right."""
        event = new_event(event_class, {
            "originator_id": self.id, "originator_version": self.version + 1,
            "timestamp": datetime.now(UTC), "sid": self.sid, "at": at.isoformat(),
            "cause": cause, **payload})
        event.apply(self)
        self.version = event.originator_version
        self.modified_on = event.timestamp
        self.pending_events.append(event)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(event_class: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(event_class)
    if names is None:
        names = _FIELD_NAMES[event_class] = tuple(f.name for f in
                                                  dataclasses.fields(event_class))
    return names


def new_event(event_class: type[Any], values: dict[str, Any]) -> Any:
    """An event of ``event_class`` (a frozen dataclass of the library's) with these field
    values: what its generated ``__init__`` would build, with its attributes in the same
    (field) order, which is the order of the stored JSON (``Mapper.to_stored_event`` encodes
    ``vars(event)``). That ``__init__`` sets each field through ``object.__setattr__`` and
    then checks the id in ``__post_init__``, which cost more than the rest of a command;
    here ``values`` becomes the event's ``__dict__`` (reordered if not in field order)."""
    names = _field_names(event_class)
    if tuple(values) != names:
        if len(values) != len(names) or values.keys() != set(names):
            missing, extra = set(names) - values.keys(), values.keys() - set(names)
            raise TypeError(f"{event_class.__qualname__}() missing {sorted(missing)}, "
                            f"unexpected {sorted(extra)}")
        values = {n: values[n] for n in names}
    if not isinstance(values["originator_id"], UUID):
        raise TypeError(f"{event_class} was initialized with a non-UUID originator_id: "
                        f"{values['originator_id']!r}")
    event = object.__new__(event_class)
    object.__setattr__(event, "__dict__", values)
    return event


def iso(t: datetime) -> str:
    return t.isoformat()


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s)
