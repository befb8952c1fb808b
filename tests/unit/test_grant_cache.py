"""The engine reads the sources' grants with a 5 s cache (docs/decisions.md; docs/producers.md
§3): a new or revoked grant is in force within 5 s, and the table is read once per 5 s, not per
action. Real token table (SQLite), the book's injected clock."""

from __future__ import annotations

from pathlib import Path

from kernel.grants import GrantBook
from producers.tokens import TokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_grant_change_is_in_force_within_five_seconds(tmp_path: Path) -> None:
    """The book is 5 s by default; a grant added after its first look is not seen 4.9 s later
    and is at 5 s; a revocation likewise."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    tokens = TokenStore(url)
    clock = Clock()
    book = GrantBook(url, clock=clock)
    try:
        tokens.add("first", "H15")
        assert book.ttl == 5.0
        assert book.scope_of("later") is None  # the first look, at t = 0
        tokens.add("later", "H16")
        clock.now += 4.9
        assert book.scope_of("later") is None
        clock.now += 0.1
        grant = book.scope_of("later")
        assert grant is not None and grant.agencies == ("H16",)
        tokens.revoke("later")
        clock.now += 4.9
        assert book.scope_of("later") is not None
        clock.now += 0.1
        assert book.scope_of("later") is None
    finally:
        book.close()
        tokens.close()
