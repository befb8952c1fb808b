"""The at-risk case of tests/unit/test_at_risk.py (worked out by hand there), as actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acts import builder

from kernel.calendar import VN_TZ

NOW = datetime(2026, 8, 28, 10, 0, tzinfo=VN_TZ)
act = builder("r")


def catalog() -> list[dict[str, Any]]:
    proc = {"authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-05",
            "legal_basis_effective_date": "2026-02-01",
            "implementing_agency_ids": ["H15.3", "H15.5"],
            "processing_time": {"value": 5, "unit": "working_days"}}
    return [
        act("agency_registered", "01-02T08:00", {"agency_id": "H15"}, name="Tỉnh",
            level="province"),
        act("agency_registered", "01-02T08:00", {"agency_id": "H15.3"}, name="Sở A",
            level="department", parent_id="H15"),
        act("agency_registered", "01-02T08:00", {"agency_id": "H15.5"}, name="Sở B",
            level="department", parent_id="H15"),
        act("procedure_published", "01-02T08:00", {"procedure_id": "P1"}, **proc),
    ]


def dossier(d: str, due: str, *steps: tuple[str, str, dict[str, Any]],
            agency: str = "H15.3", received: str = "08-10T08:00") -> list[dict[str, Any]]:
    s = {"dossier_id": d}
    out = [act("received", received, s, agency_id=agency, procedure_id="P1", channel="direct",
               due_at=f"2026-{due}:00+07:00", official_id="o-rec")]
    return out + [act(type_, at, s, **data) for type_, at, data in steps]


def province() -> list[dict[str, Any]]:
    return catalog() + [
        *dossier("A", "08-10T17:00", ("resolved", "08-07T10:00", {"outcome": "approved"}),
                 received="08-03T08:00"),
        *dossier("B", "09-03T17:00",
                 ("handed_over", "08-11T09:00", {"to_unit": "H15.3/kt", "to_official": "o1",
                                                 "step": "process"}),
                 ("apology_issued", "08-27T09:00", {"new_due_at": "2026-09-10T17:00:00+07:00",
                                                    "reason": "quá tải"})),
        *dossier("C", "09-04T17:00", ("rated", "08-12T09:00", {"satisfied": False})),
        *dossier("D", "09-07T17:00"),
        *dossier("E", "08-27T17:00"),
        *dossier("F", "08-28T09:00"),
        *dossier("G", "09-03T17:00", ("supplement_requested", "08-25T09:00", {})),
        *dossier("I", "08-26T17:00", ("supplement_requested", "08-20T10:00", {}),
                 ("supplement_completed", "08-27T10:00", {})),
        *dossier("H", "09-03T12:00", agency="H15.5"),
    ]
