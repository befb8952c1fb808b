"""The catalog: procedures (thủ tục hành chính) and agencies.

Each keeps its current catalog ``entry``; the index takes the catalog as it stands now (spec
§3), so readers simply keep the latest entry of each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.domain.base import Cause, Subject
from engine.domain.errors import ProcedureRepealedError

PROCEDURE_FLAGS = (
    "full_online_eligible",
    "fee_bearing",
    "paper_result_required",
    "individual_applicants",
    "certified_copy",
    "parts_complete",
)


class Procedure(Subject):
    """A procedure of the national catalog, with its publication decisions."""

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    procedure_id: str
    entry: dict[str, Any]
    # (business time, processing time, internal process) of each decision, oldest first.
    terms: list[tuple[datetime, dict[str, Any], list[dict[str, Any]]]]

    class Event(Subject.Event):
        pass

    class Published(Event, Subject.Created):
        procedure_id: str
        decision: dict[str, Any]

        def evolve(self, p: Procedure) -> None:
            p.procedure_id = self.procedure_id
            p.entry = {
                "procedure_id": self.procedure_id,
                "decisions": [],
                "publicized": [],
                "repealed": None,
            }
            p.terms = []
            _apply_decision(p, self.decision, datetime.fromisoformat(self.at))

    class Republished(Event):
        decision: dict[str, Any]

        def evolve(self, p: Procedure) -> None:
            _apply_decision(p, self.decision, datetime.fromisoformat(self.at))

    class Publicized(Event):
        def evolve(self, p: Procedure) -> None:
            p.entry["publicized"] = [*p.entry["publicized"], self.at]

    class Repealed(Event):
        decision_date: str

        def evolve(self, p: Procedure) -> None:
            p.entry["repealed"] = self.decision_date

    def _in_force(self, at: datetime) -> tuple[datetime, dict[str, Any], list[dict[str, Any]]]:
        """The terms of the latest decision dated at or before ``at`` (the first decision's
        for an earlier time): what is in force at a business time does not depend on whether
        a later amendment reached the engine first (docs/decisions.md)."""
        chosen = self.terms[0]
        for term in self.terms:
            if term[0] > at:
                break
            chosen = term
        return chosen

    def step_budget(self, step: str, at: datetime) -> float | None:
        """The office hours the internal process in force at ``at`` gives a step, or ``None``."""
        for s in self._in_force(at)[2]:
            if s["step"] == step:
                return float(s["working_hours"])
        return None

    def processing_time(self, at: datetime) -> dict[str, Any] | None:
        """The processing time in force at ``at``."""
        return self._in_force(at)[1] or None

    @classmethod
    def publish(
        cls,
        *,
        id: Any,
        procedure_id: str,
        data: dict[str, Any],  # noqa: A002
        at: datetime,
        cause: Cause | None,
    ) -> Procedure:
        p: Procedure = cls._open(
            cls.Published,
            id=id,
            sid=procedure_id,
            at=at,
            cause=cause,
            procedure_id=procedure_id,
            decision=_decision(data),
        )
        return p

    def publish_again(self, data: dict[str, Any], at: datetime, cause: Cause | None) -> None:
        """A later publication decision: it amends the procedure's attributes."""
        self._emit(self.Republished, at, cause, decision=_decision(data))

    def publicize(self, at: datetime, cause: Cause | None) -> None:
        self._emit(self.Publicized, at, cause)

    def repeal(self, decision_date: str, at: datetime, cause: Cause | None) -> None:
        if self.entry["repealed"] is not None:
            raise ProcedureRepealedError(f"Procedure {self.procedure_id} was already repealed.")
        self._emit(self.Repealed, at, cause, decision_date=decision_date)


def _decision(data: dict[str, Any]) -> dict[str, Any]:
    out = {
        "authority_id": data["authority_id"],
        "authority_level": data["authority_level"],
        "decision_date": str(data["decision_date"]),
        "legal_basis_effective_date": str(data["legal_basis_effective_date"]),
        "implementing_agency_ids": list(data["implementing_agency_ids"]),
        "processing_time": dict(data["processing_time"]),
        # The internal process (quy trình nội bộ): each step's budget in office hours.
        "internal_process": [dict(s) for s in data.get("internal_process") or ()],
    }
    for name in PROCEDURE_FLAGS:
        out[name] = bool(data.get(name, False))
    return out


def _apply_decision(p: Procedure, decision: dict[str, Any], at: datetime) -> None:
    entry = p.entry
    # Sorted by business time (stable: of two decisions at one instant, the later one wins).
    p.terms = sorted([*p.terms, (at, decision["processing_time"], decision["internal_process"])],
                     key=lambda t: t[0])
    entry["decisions"] = [
        *entry["decisions"],
        {
            k: decision[k]
            for k in ("decision_date", "legal_basis_effective_date", "authority_level")
        },
    ]
    for key, value in decision.items():
        if key not in ("decision_date", "legal_basis_effective_date"):
            entry[key] = value


class Agency(Subject):
    """An agency of the tree: ministry or province → department → (district) → commune."""

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    agency_id: str
    entry: dict[str, Any]

    class Event(Subject.Event):
        pass

    class Registered(Event, Subject.Created):
        agency_id: str
        name: str
        parent_id: str | None
        level: str

        def evolve(self, a: Agency) -> None:
            a.agency_id = self.agency_id
            a.entry = {
                "agency_id": self.agency_id,
                "name": self.name,
                "parent_id": self.parent_id,
                "level": self.level,
            }

    class Updated(Event):
        name: str
        parent_id: str | None
        level: str

        def evolve(self, a: Agency) -> None:
            a.entry = {
                "agency_id": a.agency_id,
                "name": self.name,
                "parent_id": self.parent_id,
                "level": self.level,
            }

    @classmethod
    def register(
        cls,
        *,
        id: Any,
        agency_id: str,
        data: dict[str, Any],  # noqa: A002
        at: datetime,
        cause: Cause | None,
    ) -> Agency:
        a: Agency = cls._open(
            cls.Registered,
            id=id,
            sid=agency_id,
            at=at,
            cause=cause,
            agency_id=agency_id,
            name=data["name"],
            parent_id=data.get("parent_id"),
            level=data["level"],
        )
        return a

    def register_again(self, data: dict[str, Any], at: datetime, cause: Cause | None) -> None:
        """A later registration renames or moves the agency in the tree."""
        self._emit(
            self.Updated,
            at,
            cause,
            name=data["name"],
            parent_id=data.get("parent_id"),
            level=data["level"],
        )
