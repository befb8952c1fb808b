"""A replay's hot loop: the facts cache folded a window of rows at a time, each dossier once.

Every facts row carries its subject's facts before and after its event, and a dossier's facts
before an event are, byte for byte, its facts after its previous one (the chain). Folding a
dossier (``Counters.fold_dossier``) takes away the contribution of the facts before and adds
that of the facts after, so folding a to b and then b to c moves the counters as folding a to c
does: a dossier's rows in a window fold as ONE move, from the facts before its first row to the
facts after its last. A province-year's log has about nine rows per dossier, most of them in the
same window of 300,000 rows (a replay's 15 pages: 429,531 moves for its 3,035,411 dossier rows):
the rest of a row's cost is a dictionary look-up and a comparison of bytes, no decoding and no
counting.

Exactly the rows folded one by one, not an approximation: a row whose facts before are not the
facts after the dossier's previous row in the window (a break in the chain: facts derived by
other code, rows left out by ``recorded_by``) first folds the dossier's move so far, then starts
another. A move whose facts after equal its facts before moves no counter; only the dossier's
latest facts are kept, as for a single such row. Feedback and catalog rows (a few per thousand)
are folded as they come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.fold import Counters


class Segments:
    """The dossiers' moves of the window being read, folded into ``counters`` by ``settle``."""

    __slots__ = ("counters", "moves")

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        # dossier id -> [facts before its first row in the window (None: it begins there),
        # facts after its last row], as stored (bytes)
        self.moves: dict[str, list[Any]] = {}

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Take in rows ``(pos, kind, sid, prev, facts)`` (``FOLD_COLUMNS``) in log order."""
        moves = self.moves
        get = moves.get
        fold = self.counters.fold_row
        loads = orjson.loads
        for row in rows:
            facts = row[4]
            if row[1] == "dossier" and facts is not None:
                sid = row[2]
                move = get(sid)
                if move is None:
                    moves[sid] = [row[3], facts]
                elif move[1] == row[3]:  # the chain holds: the move goes on
                    move[1] = facts
                else:
                    self._fold(sid, move[0], move[1])
                    moves[sid] = [row[3], facts]
            else:
                prev = row[3]
                fold(row[1], row[2], None if prev is None else loads(prev),
                     None if facts is None else loads(facts))

    def settle(self) -> None:
        """Fold every move taken in since the last settle: the counters are then as if every
        row were folded one by one."""
        fold = self._fold
        moves, self.moves = self.moves, {}
        pop = moves.popitem
        while moves:  # each move freed as it is folded: the moves shrink as the facts grow
            sid, (before, after) = pop()
            fold(sid, before, after)

    def _fold(self, sid: str, before: bytes | None, after: bytes) -> None:
        """Fold one move."""
        new = orjson.loads(after)
        if before == after:
            self.counters.dossiers[sid] = new  # nothing counted moves: only the latest facts
            return
        self.counters.fold_dossier(sid, None if before is None else orjson.loads(before), new)
