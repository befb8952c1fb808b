"""Actions for the scope tests (engine and bridge): H15 and H16, their units, procedures and
dossiers, each action with a fresh id."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

NOW = datetime.fromisoformat("2026-10-06T12:00:00+07:00")
OCT = "2026-10-05T08:00:00+07:00"
P16, P15 = "2.000016", "2.000015"
_ids = itertools.count(1)

SUBJECT_FIELD = {"feedback": "feedback_id", "procedure": "procedure_id", "agency": "agency_id"}


def act(source: str, type_: str, subject: str, data: dict[str, Any] | None = None,
        at: str = OCT) -> dict[str, Any]:
    field = SUBJECT_FIELD.get(type_.split("_")[0], "dossier_id")
    obj: dict[str, Any] = {"schema": "motcua.action/1", "action_id": f"s{next(_ids)}",
                           "source": source, "type": type_, "occurred_at": at, field: subject}
    if data is not None:
        obj["data"] = data
    return obj


def agency(source: str, agency_id: str, parent: str | None, level: str) -> dict[str, Any]:
    return act(source, "agency_registered", agency_id,
               {"name": agency_id, "parent_id": parent, "level": level})


def procedure(source: str, pid: str, authority: str, implementing: list[str],
              decided: str = "2026-01-05", in_force: str = "2026-01-20") -> dict[str, Any]:
    return act(source, "procedure_published", pid, {
        "authority_id": authority, "authority_level": "province", "decision_date": decided,
        "legal_basis_effective_date": in_force, "implementing_agency_ids": implementing,
        "processing_time": {"value": 5, "unit": "working_days"}, "fee_bearing": True,
        "individual_applicants": True, "parts_complete": True,
    }, at=f"{decided}T09:00:00+07:00")


def received(source: str, dossier: str, agency_id: str, pid: str, **flags: bool) -> dict[str, Any]:
    return act(source, "received", dossier, {"agency_id": agency_id, "procedure_id": pid,
                                             "channel": "online",
                                             "due_at": "2026-10-12T17:00:00+07:00", **flags})


def feedback(source: str, fid: str, agency_id: str, dossier: str) -> dict[str, Any]:
    return act(source, "feedback_received", fid, {"agency_id": agency_id,
                                                  "classification": "other",
                                                  "dossier_id": dossier})
