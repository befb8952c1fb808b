"""The agency tree of the counters (``projections.views.Tree``)."""

from __future__ import annotations

from projections.fold import Counters
from projections.views import Tree


def test_a_parent_not_registered_yet_is_a_root_of_the_tree() -> None:
    """Communes H15.1.1 and H15.1.2 registered under H15.1, which has not been registered (its
    registration is on a partition not folded yet): the tree holds H15.1 as a root with both
    communes under it, named by its id, instead of failing half-way through building."""
    counters = Counters()
    counters.put_agency({"agency_id": "H15.1.1", "parent_id": "H15.1", "level": "commune",
                         "name": "Xã Một"})
    counters.put_agency({"agency_id": "H15.1.2", "parent_id": "H15.1", "level": "commune",
                         "name": "Xã Hai"})
    tree = Tree.build(counters)
    assert tree.parent == {"H15.1.1": "H15.1", "H15.1.2": "H15.1", "H15.1": None}
    assert sorted(tree.children["H15.1"]) == ["H15.1.1", "H15.1.2"]
    assert tree.name["H15.1"] == "H15.1" and tree.level["H15.1"] == ""
    assert tree.subtree("H15.1") == {"H15.1", "H15.1.1", "H15.1.2"}
