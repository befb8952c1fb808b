"""One forwarder sends the spool at a time (docs/decisions.md, "Durable intake"): the lease in
``motcua_spool_meta``, taken, renewed, refused to another process, released, and taken over once
it has run out (its holder SIGKILLed), on a real SQLite store shared by two processes' spools."""

from __future__ import annotations

from pathlib import Path

from kernel.spool import Spool


def test_one_holder_of_the_spool_lease_at_a_time(tmp_path: Path) -> None:
    """A takes and renews; B is refused while A holds it; A releases, B takes it and A is
    refused; B's lease run out (renewed to an instant already past), A takes it over."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    a, b = Spool(url), Spool(url)
    try:
        assert a.hold_lease("A", 5.0) and a.hold_lease("A", 5.0)
        assert not b.hold_lease("B", 5.0)
        a.release_lease("A")
        assert b.hold_lease("B", 5.0)
        assert not a.hold_lease("A", 5.0)
        assert b.hold_lease("B", -1.0)  # as if B had died a lease ago
        assert a.hold_lease("A", 5.0)
        assert not b.hold_lease("B", 5.0)
    finally:
        a.close()
        b.close()
