"""The action types of ``motcua.action/1`` and the subject field each one names."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SCHEMA: Final = "motcua.action/1"
# Also accepted: upcast to SCHEMA by engine.upcasting before the v1 rules
# (docs/schema-evolution.md).
SCHEMA_V2: Final = "motcua.action/2"

DOSSIER_TYPES: Final = frozenset(
    {
        "received",
        "digitized",
        "paid_online",
        "supplement_requested",
        "supplement_completed",
        "resolved",
        "result_returned",
        "e_result_issued",
        "withdrawn",
        "late",
        "apology_issued",
        "synced",
        "rated",
        "handed_over",
    }
)
FEEDBACK_TYPES: Final = frozenset(
    {"feedback_received", "feedback_answered", "feedback_rated", "feedback_recomplained"}
)
CATALOG_TYPES: Final = frozenset(
    {"agency_registered", "procedure_published", "procedure_publicized", "procedure_repealed"}
)

# The levels an agency registers at (agency_registered data.level), highest first.
AGENCY_LEVELS: Final = ("ministry", "province", "department", "district", "commune")

SUBJECT_FIELD: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{t: "dossier_id" for t in sorted(DOSSIER_TYPES)},
        **{t: "feedback_id" for t in sorted(FEEDBACK_TYPES)},
        "agency_registered": "agency_id",
        "procedure_published": "procedure_id",
        "procedure_publicized": "procedure_id",
        "procedure_repealed": "procedure_id",
    }
)
