"""Held work: what waits in the intake ledger for a subject that has not arrived.

Two kinds, both rows of the ledger: an action that waits for its subject, and a feedback's link
to a dossier that has not arrived yet (``HeldLink``, no Kafka offset of its own). Either may be
held in the current batch (not yet written) or read back from the store (``StoredHold``);
``Pending`` says which. ``HoldBook`` counts them against the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from engine.domain.base import Cause
from engine.store import IntakeRow
from kernel.contract.actions import Action, parse_action


@dataclass(frozen=True)
class HeldLink:
    """A feedback names a dossier that has not arrived: the link waits for it."""

    dossier_id: str
    feedback_id: str
    at: datetime
    cause: Cause | None

    MARK = b'{"internal"'

    def to_raw(self) -> bytes:
        return orjson.dumps({"internal": "feedback_linked", "dossier_id": self.dossier_id,
                             "feedback_id": self.feedback_id, "at": self.at.isoformat(),
                             "cause": self.cause})

    @classmethod
    def from_raw(cls, raw: bytes) -> HeldLink | None:
        """The link a ledger row holds, or ``None`` when the row holds an action."""
        if not raw.startswith(cls.MARK):
            return None
        doc = orjson.loads(raw)
        return cls(doc["dossier_id"], doc["feedback_id"], datetime.fromisoformat(doc["at"]),
                   doc["cause"])


@dataclass(frozen=True)
class StoredHold:
    """A held ledger row as the store returns it."""

    id: int
    log: str
    topic: str
    part: int
    off: int
    akey: str | None
    subject: str
    raw: bytes

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredHold:
        return cls(int(row["id"]), str(row["log"]), str(row["topic"]), int(row["part"]),
                   int(row["off"]), row["akey"], str(row["subject"]), bytes(row["raw"]))


@dataclass
class Pending:
    """Held work to apply now: held in this batch (``row``) or read back (``stored``)."""

    at: datetime
    offset: int
    action: Action | None
    link: HeldLink | None
    row: IntakeRow | None = None
    stored: StoredHold | None = None

    @classmethod
    def from_store(cls, s: StoredHold) -> Pending:
        link = HeldLink.from_raw(s.raw)
        action = None if link is not None else parse_action(s.raw)
        at = link.at if link is not None else action.occurred_at  # type: ignore[union-attr]
        return cls(at, s.off, action, link, stored=s)


class HoldBook:
    """How many actions are held, across processes, against the limit."""

    def __init__(self, store: Any, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.count = store.held_count()

    def refresh(self) -> None:
        self.count = self.store.held_count()

    @property
    def full(self) -> bool:
        return bool(self.count >= self.limit)
