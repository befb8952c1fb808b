"""The national simulation: 34 provinces, each its own system, merged in time order."""

from __future__ import annotations

from collections import Counter

import pytest

from kernel.contract.actions import validate_action
from producers.national import PROVINCES, generate_national
from producers.simulator import SimConfig


def test_there_are_34_provinces() -> None:
    """The catalog of provinces is the 34 of the 2025 reorganisation."""
    assert len(PROVINCES) == 34 == len(set(PROVINCES))


def test_each_province_is_its_own_system_in_one_time_ordered_stream() -> None:
    """Provinces have their own ids, sources and action ids, and the stream is time-ordered."""
    actions = list(generate_national(SimConfig(agencies=3, dossiers=60, seed=5), 4))
    roots = {a["agency_id"] for a in actions if a["type"] == "agency_registered"
             and a["data"].get("parent_id") is None}
    assert roots == {"P01", "P02", "P03", "P04"}
    assert {a["source"] for a in actions} == {"p01-igate", "p02-igate", "p03-igate", "p04-igate"}
    keys = Counter((a["source"], a["action_id"]) for a in actions)
    assert max(keys.values()) == 1
    times = [a["occurred_at"] for a in actions]
    assert times == sorted(times)
    for a in actions[:500]:
        validate_action(a)


def test_the_provinces_of_a_national_simulation_never_share_a_procedure_code() -> None:
    """Each province draws its codes from its own block: two provinces never publish one code
    with other terms (a catalog the engine could only order by arrival)."""
    codes: dict[str, set[str]] = {}
    for a in generate_national(SimConfig(agencies=2, dossiers=5, procedures=200, days=20), 4):
        if a["type"] == "procedure_published":
            codes.setdefault(a["source"], set()).add(a["procedure_id"])
    assert len(codes) == 4 and all(len(c) == 200 for c in codes.values())
    assert len(set().union(*codes.values())) == 800
    with pytest.raises(ValueError, match="code_block"):
        SimConfig(code_block=70)
