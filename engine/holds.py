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
    """How many actions are held, across processes, against the limit; and which subjects
    may have held work this engine would release, so that a new subject with none costs no
    query (``may_hold``).

    Held rows of an actions partition are written and settled only by the engine that owns
    the partition (``Engine.owned``; all of them when alone), so what this engine committed
    is what the store holds for its partitions: ``mine`` is loaded once, kept up to date
    after each commit (``committed``), and loaded again when the partitions change, after a
    failed commit, or when the store's count of those rows differs from it (another process
    after all). A feedback's link (partition -1) may be held by any engine: their subjects are
    read again with the count before each batch (``refresh``)."""

    def __init__(self, store: Any, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.count = 0
        # Subject -> held rows of the covered partitions (``parts``; None: every partition).
        self.mine: dict[str, int] = {}
        self.parts: frozenset[int] | None = None
        self.links: set[str] = set()
        self.stale = True
        self.refresh()

    def refresh(self, owned: set[int] | None = None) -> None:
        """Read the held rows' count per partition (one query); reload ``mine`` if needed."""
        per_part, self.links = self.store.held_summary()
        self.count = sum(per_part.values())
        parts = None if owned is None else frozenset(owned)
        covered = sum(n for p, n in per_part.items()
                      if p >= 0 and (parts is None or p in parts))
        if self.stale or parts != self.parts or covered != sum(self.mine.values()):
            self.stale = True  # until the reload below has succeeded
            mine: dict[str, int] = {}
            for subject, part in self.store.held_rows_of_parts():
                if parts is None or part in parts:
                    mine[subject] = mine.get(subject, 0) + 1
            self.mine, self.parts, self.stale = mine, parts, False

    def may_hold(self, subject: str) -> bool:
        """Whether the store may hold work for ``subject`` that this engine releases."""
        return self.stale or self.mine.get(subject, 0) > 0 or subject in self.links

    def committed(self, added: list[tuple[str, int]], removed: list[tuple[str, int]]) -> None:
        """A batch committed: (subject, partition) of the held rows it wrote and settled."""
        for subject, part in added:
            if part < 0:
                self.links.add(subject)
            elif self.parts is None or part in self.parts:
                self.mine[subject] = self.mine.get(subject, 0) + 1
        for subject, part in removed:
            if part >= 0 and (self.parts is None or part in self.parts):
                left = self.mine.get(subject, 0) - 1
                if left > 0:
                    self.mine[subject] = left
                else:
                    self.mine.pop(subject, None)
                    if left < 0:  # pragma: no cover - a row settled that was never counted
                        self.stale = True

    @property
    def full(self) -> bool:
        return bool(self.count >= self.limit)
