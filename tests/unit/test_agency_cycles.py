"""An agency is never placed under itself (docs/lifecycle.md, ``agency_cycle``): a registration
whose parent is the agency or one of its own subunits is refused, in the batch that closes the
loop, whatever order the tree arrived in; every other move in the tree is taken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.app import Engine, Message
from motcua.pipeline import engine_at

AT = "2026-01-05T08:00:00+07:00"


def registered(action_id: str, agency: str, parent: str | None) -> bytes:
    return orjson.dumps({
        "schema": "motcua.action/1", "action_id": action_id, "source": "catalog",
        "type": "agency_registered", "occurred_at": AT, "agency_id": agency,
        "data": {"name": f"Agency {agency}", "parent_id": parent,
                 "level": "province" if parent is None else "department"}})


class Tree:
    """One engine on one partition; each ``send`` is one batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.offset = 0
        self.sent = 0

    def send(self, *registrations: tuple[str, str | None]) -> dict[str, int]:
        messages = []
        for agency, parent in registrations:
            self.sent += 1
            messages.append(Message("motcua.actions", 0, self.offset,
                                    registered(f"a{self.sent}", agency, parent)))
            self.offset += 1
        counts = self.engine.process("log", messages)  # (rejections also by reason)
        return {k: n for k, n in counts.items() if n and ":" not in k}

    def parent(self, agency: str) -> Any:
        history = self.engine.history("agency", agency)
        assert history is not None
        return history[-1]["facts"]["parent_id"]

    def dead(self) -> list[tuple[str, str | None, str]]:
        return [(d["reason"], d["field"], d["message"])
                for d in self.engine.store.dead_letters_after(0, 100)]


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    engine = engine_at(f"sqlite:///{tmp_path}/m.db")
    try:
        yield Tree(engine)
    finally:
        engine.close()


def test_an_agency_under_its_own_subunit_is_refused_and_the_tree_stays(tree: Tree) -> None:
    """H15 → H15.3 → H15.3.1 recorded; H15 moved under H15.3.1 is ``agency_cycle`` on
    ``data.parent_id``, naming the loop; H15 keeps no parent."""
    assert tree.send(("H15", None), ("H15.3", "H15"), ("H15.3.1", "H15.3")) == {"accepted": 3}
    assert tree.send(("H15", "H15.3.1")) == {"rejected": 1}
    assert tree.dead() == [("agency_cycle", "data.parent_id",
                            "Agency H15 cannot be placed under H15.3.1, which is under it "
                            "already (H15.3.1 → H15.3 → H15).")]
    assert tree.parent("H15") is None


def test_an_agency_as_its_own_parent_is_refused(tree: Tree) -> None:
    """New or registered already, an agency cannot name itself as its parent."""
    assert tree.send(("H15", "H15")) == {"rejected": 1}
    assert tree.send(("H16", None)) == {"accepted": 1}
    assert tree.send(("H16", "H16")) == {"rejected": 1}
    assert [(r, f, m) for r, f, m in tree.dead()] == [
        ("agency_cycle", "data.parent_id", "Agency H15 cannot be its own parent."),
        ("agency_cycle", "data.parent_id", "Agency H16 cannot be its own parent.")]


def test_the_registration_that_closes_a_loop_is_refused_whatever_the_order(tree: Tree) -> None:
    """A unit registered under a parent not known yet, then that parent under the unit (in the
    same batch or a later one): the second closes the loop and is refused."""
    assert tree.send(("H15.3", "H15"), ("H15", "H15.3")) == {"accepted": 1, "rejected": 1}
    assert tree.send(("H17.1", "H17")) == {"accepted": 1}
    assert tree.send(("H17", "H17.1")) == {"rejected": 1}
    assert [r for r, _, _ in tree.dead()] == ["agency_cycle", "agency_cycle"]
    assert tree.parent("H15.3") == "H15" and tree.parent("H17.1") == "H17"


def test_moves_that_close_no_loop_are_taken(tree: Tree) -> None:
    """A unit moved to another province, a province placed under a ministry, a unit moved
    under its sibling: no loop, all recorded."""
    assert tree.send(("H15", None), ("H16", None), ("H15.3", "H15"), ("H15.4", "H15")) == {
        "accepted": 4}
    assert tree.send(("H15.3", "H16"), ("BNV", None), ("H15", "BNV"), ("H15.4", "H15.3")) == {
        "accepted": 4}
    assert (tree.parent("H15.3"), tree.parent("H15"), tree.parent("H15.4")) == (
        "H16", "BNV", "H15.3")
    assert tree.dead() == []
