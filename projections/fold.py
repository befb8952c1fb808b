"""The hot scoring path: fold subject facts into per-(agency, reception month) counters.

Every event carries its subject's facts before and after it (``projections.facts``). A fold moves
the subject's contribution from the old facts to the new ones, in the counters the layout
(``projections.layout``, compiled from the criteria registry) says to keep: it computes which
counters each facts list contributes to (memoized on its flags and judgement) and touches only
those that change. It never reads a subject. Periods and agency roll-ups are sums done at query
time (``projections.views``).

Memory: per (agency, month) one cell of a few dozen integers and a histogram of open subjects by
due day, and per (agency, month, procedure used) one small vector of the features the catalog
criteria need. It grows with agencies × months × procedures used, not with dossiers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from projections.controlsheet import DelayKey, apology_status, contributions
from projections.facts import APOLOGY_IN_TIME, APOLOGY_ISSUED, DossierFacts
from projections.layout import DEFAULT_LAYOUT, Layout, SubjectLayout

Cell = tuple[str, str]
Hist = dict[int, list[int]]
Delays = dict[DelayKey, list[int]]
# The fold reads facts by position on its hot path; the positions are checked here.
assert DossierFacts._fields.index("processing_days") == 6
assert DossierFacts._fields.index("attrib") == 11
_ATTRIB = 11
# (the cell's moves (slot, ±1), the procedure vector's moves, histogram: None when the subject
# is open neither before nor after, else (open vector before, after, whether they differ or the
# judgement changed))
HistMove = tuple[tuple[int, ...], tuple[int, ...], bool]
Moves = tuple[tuple[int, int], ...]
Transition = tuple[Moves, Moves, HistMove | None]


_BITS: dict[int, tuple[int, ...]] = {}
_MISSING = object()
DERIVED_MAX = 20_000
T = TypeVar("T")


def bits_of(m: int) -> tuple[int, ...]:
    """The positions of the set bits of ``m`` (memoized: a layout has few distinct masks)."""
    b = _BITS.get(m)
    if b is None:
        out = []
        i, rest = 0, m
        while rest:
            if rest & 1:
                out.append(i)
            rest >>= 1
            i += 1
        if len(_BITS) > 65536:
            _BITS.clear()
        b = _BITS[m] = tuple(out)
    return b


def _transition(lay: SubjectLayout, pf: int, pj: int, nf: int, nj: int) -> Transition:
    oc, op, ov = lay.masks(pf, pj)
    nc, np_, nv = lay.masks(nf, nj)
    cell = (tuple((b, -1) for b in bits_of(oc & ~nc))
            + tuple((b, 1) for b in bits_of(nc & ~oc)))
    vec = (tuple((b, -1) for b in bits_of(op & ~np_))
           + tuple((b, 1) for b in bits_of(np_ & ~op)))
    hist = None if pj != -1 and nj != -1 else (ov, nv, pj != nj or ov != nv)
    return cell, vec, hist


def _hist_add(hist: Hist, day: int, vec: tuple[int, ...], sign: int) -> None:
    """Add (or take away) an open subject's vector at its due day. Buckets may go negative in
    one table set (the subject entered another, e.g. a replay's base); only sums mean anything."""
    h = hist.get(day)
    if h is None:
        h = hist[day] = [0] * len(vec)
    for i, v in enumerate(vec):
        if v:
            h[i] += sign
    if not any(h):
        del hist[day]


class Counters:
    """All the counters of all agencies and months, plus the current catalog."""

    def __init__(self, layout: Layout = DEFAULT_LAYOUT) -> None:
        self.layout = layout
        self.dl = layout.dossier
        self.fl = layout.feedback
        self.cells: dict[Cell, list[int]] = {}
        # (agency, month) -> due day -> open dossiers meeting each timely feature
        self.open_due: dict[Cell, Hist] = {}
        # (agency, month) -> procedure id -> per-procedure feature counts
        self.procs: dict[Cell, dict[str, list[int]]] = {}
        # (agency, month) -> the delays list's rows of its dossiers late for good (the open
        # ones are judged per view, at query time: projections.delays)
        self.delays: dict[Cell, Delays] = {}
        self.fb_cells: dict[Cell, list[int]] = {}
        self.fb_open_due: dict[Cell, Hist] = {}
        # (agency, month, procedure) -> (cell, procedure vector): one flat key, one lookup on
        # the hot path.
        self._cv: dict[tuple[str, str, str], tuple[list[int], list[int]]] = {}
        self._trans: dict[int, Transition] = self.dl.transitions
        self._relevant = self.dl.relevant
        # The one summed fact the layout keeps today (2.2's processing days): its slot.
        self._pdays = self.dl.sum_slots.get("processing_days")
        if set(self.dl.sum_slots) - {"processing_days"}:
            raise ValueError("the fold sums processing_days only; another sum needs its code")
        self.procedures: dict[str, dict[str, Any]] = {}
        self.agencies: dict[str, dict[str, Any]] = {}
        # What changed since the last flush (for the view store).
        self.dirty_cells: set[Cell] = set()
        self.dirty_fb: set[Cell] = set()
        self.dirty_catalog: set[tuple[str, str]] = set()
        # Latest facts of the dossiers and feedback folded since the last flush: the view store
        # keeps them per subject, for late lists and for explaining a criterion.
        self.dossiers: dict[str, list[Any]] = {}
        self.feedback: dict[str, list[Any]] = {}
        # Bumped by every method that changes a counter or the catalog (they change through
        # these methods only): what queries derive from them is kept against it (``derived``).
        self.version = 0
        self._derived: dict[Any, Any] = {}
        self._derived_at = 0

    # ----- dossiers ------------------------------------------------------------------------

    def fold_dossier(self, sid: str, prev: list[Any] | None, facts: list[Any]) -> None:
        """Move one dossier's contribution from ``prev`` to ``facts``: take away what ``prev``
        counts and add what ``facts`` counts, so a move from a to b then b to c is a move from
        a to c (a replay folds a dossier's rows of a window as one: ``projections.segments``).
        Equal ``prev`` and ``facts`` move no counter: only the facts are kept."""
        self.dossiers[sid] = facts
        if prev is None or prev[2] != facts[2] or prev[1] != facts[1] or prev[0] != facts[0]:
            self.version += 1
            key = (facts[0], facts[1])
            self.dirty_cells.add(key)
            if prev is not None:
                self._dossier_delta(prev, -1)
            self._dossier_delta(facts, 1)
            return
        # The common cases: same cell, nothing counted changes (a handover, a sync: about half
        # of all events) or a few counters move by one. This path is the hot one of every
        # replay and projection: keep it lean.
        relevant = self._relevant
        pf, nf, pj, nj = prev[3] & relevant, facts[3] & relevant, prev[4], facts[4]
        if (pf == nf and pj == nj and prev[5] == facts[5] and prev[6] == facts[6]
                and prev[11] is None and facts[11] is None):
            return  # the counters and the delays stay; only the stored facts moved
        self.version += 1
        key = (facts[0], facts[1])
        self.dirty_cells.add(key)
        tk = (pf << 34) | ((pj + 1) << 32) | (nf << 2) | (nj + 1)
        t = self._trans.get(tk)
        if t is None:
            t = self._new_transition(tk, pf, pj, nf, nj)
        cell_moves, vec_moves, hist_moves = t
        days_moved = prev[6] != facts[6] and self._pdays is not None
        cv = self._cv
        if cell_moves or vec_moves or days_moved:  # (one lookup of the cell for all three)
            cell, vec = cv.get((facts[0], facts[1], facts[2])) or self._cell_and_vec(key, facts[2])
            for b, d in cell_moves:
                cell[b] += d
            for b, d in vec_moves:
                vec[b] += d
            if days_moved:
                cell[self._pdays] += max(facts[6], 0) - max(prev[6], 0)  # type: ignore[index]
        if prev[11] is not None or facts[11] is not None:
            self._delays_move(key, prev, facts)
        if hist_moves is not None and (hist_moves[2] or prev[5] != facts[5]):
            if (facts[0], facts[1], facts[2]) not in cv:  # this table set may not hold the cell yet
                self._cell_and_vec(key, facts[2])
            hist = self.open_due[key]
            ov, nv, _ = hist_moves
            if ov:
                _hist_add(hist, prev[5], ov, -1)
            if nv:
                _hist_add(hist, facts[5], nv, 1)

    def _new_transition(self, tk: int, pf: int, pj: int, nf: int, nj: int) -> Transition:
        if len(self._trans) > 65536:
            self._trans.clear()
        t = self._trans[tk] = _transition(self.dl, pf, pj, nf, nj)
        return t

    def _cell_and_vec(self, key: Cell, pid: str) -> tuple[list[int], list[int]]:
        """The cell of (agency, month) and its vector for one procedure, created if needed."""
        cv = self._cv.get((key[0], key[1], pid))
        if cv is None:
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = [0] * self.dl.slots
                self.procs[key] = {}
                self.open_due[key] = {}
            pvecs = self.procs[key]
            vec = pvecs.get(pid)
            if vec is None:
                vec = pvecs[pid] = [0] * len(self.dl.proc)
            cv = self._cv[(key[0], key[1], pid)] = (cell, vec)
        return cv

    def _dossier_delta(self, f: list[Any], sign: int) -> None:
        """Add (sign 1) or take away (sign -1) one dossier's whole contribution."""
        key = (f[0], f[1])
        cell, vec = self._cell_and_vec(key, f[2])
        cbits, pbits, open_vec = self.dl.masks(f[3], f[4])
        for b in bits_of(cbits):
            cell[b] += sign
        for b in bits_of(pbits):
            vec[b] += sign
        if self._pdays is not None:
            cell[self._pdays] += sign * max(f[6], 0)
        if open_vec:
            _hist_add(self.open_due[key], f[5], open_vec, sign)
        if f[_ATTRIB] is not None:
            self._delays_add(key, f, sign)

    def _delays_move(self, key: Cell, old: list[Any], new: list[Any]) -> None:
        """Move a dossier's delays contribution when who made it late (or its apology) changes."""
        if old[_ATTRIB] == new[_ATTRIB] and _apology(old) == _apology(new):
            return
        if old[_ATTRIB] is not None:
            self._delays_add(key, old, -1)
        if new[_ATTRIB] is not None:
            self._delays_add(key, new, 1)

    def _delays_add(self, key: Cell, f: list[Any], sign: int) -> None:
        rows = self.delays.get(key)
        if rows is None:
            rows = self.delays[key] = {}
        add_delays(rows, contributions(f[_ATTRIB], _apology(f)), sign)

    # ----- feedback ------------------------------------------------------------------------

    def fold_feedback(self, sid: str, prev: list[Any] | None, facts: list[Any]) -> None:
        self.version += 1
        self.feedback[sid] = facts
        if prev is not None:
            self._feedback_delta(prev, -1)
        self._feedback_delta(facts, 1)

    def _feedback_delta(self, f: list[Any], sign: int) -> None:
        key = (f[0], f[1])
        cell = self.fb_cells.get(key)
        if cell is None:
            cell = self.fb_cells[key] = [0] * self.fl.slots
            self.fb_open_due[key] = {}
        cbits, _, open_vec = self.fl.masks(f[3], f[4])
        for b in bits_of(cbits):
            cell[b] += sign
        if open_vec:
            _hist_add(self.fb_open_due[key], f[5], open_vec, sign)
        self.dirty_fb.add(key)

    # ----- catalog -------------------------------------------------------------------------

    def put_procedure(self, entry: dict[str, Any]) -> None:
        self.version += 1
        self.procedures[entry["procedure_id"]] = entry
        self.dirty_catalog.add(("procedure", entry["procedure_id"]))

    def put_agency(self, entry: dict[str, Any]) -> None:
        self.version += 1
        self.agencies[entry["agency_id"]] = entry
        self.dirty_catalog.add(("agency", entry["agency_id"]))

    # ----- events --------------------------------------------------------------------------

    def fold(self, event: dict[str, Any]) -> None:
        """Fold one ``motcua.events`` message (already decoded)."""
        if event["kind"] == "dossier":
            self.fold_dossier(event["sid"], event["prev"], event["facts"])
        else:
            self.fold_row(event["kind"], event["sid"], event["prev"], event["facts"])

    def fold_row(self, kind: str, sid: str, prev: Any, facts: Any) -> None:
        """Fold one event given as its kind, subject and facts before and after."""
        if facts is None:  # recorded without an annotator: nothing to count
            return
        if kind == "dossier":
            self.fold_dossier(sid, prev, facts)
        elif kind == "feedback":
            self.fold_feedback(sid, prev, facts)
        elif kind == "procedure":
            self.put_procedure(facts)
        elif kind == "agency":
            self.put_agency(facts)

    def merge_from(self, other: Counters) -> None:
        """Add another table set's counters to these (queries sum over partitions); the
        other's catalog entries replace these (they are newer)."""
        self.version += 1
        for key, vec in other.cells.items():
            mine = self.cells.get(key)
            if mine is None:
                self.cells[key] = list(vec)
                self.procs[key] = {p: list(v) for p, v in other.procs[key].items()}
                self.open_due[key] = {d: list(v) for d, v in other.open_due[key].items()}
                continue
            add_into(mine, vec)
            procs = self.procs[key]
            for pid, v in other.procs[key].items():
                if pid in procs:
                    add_into(procs[pid], v)
                else:
                    procs[pid] = list(v)
            _add_hist(self.open_due[key], other.open_due[key])
        for key, rows in other.delays.items():
            add_delays(self.delays.setdefault(key, {}), rows, 1)
        for key, vec in other.fb_cells.items():
            mine = self.fb_cells.get(key)
            if mine is None:
                self.fb_cells[key] = list(vec)
                self.fb_open_due[key] = {d: list(v) for d, v in other.fb_open_due[key].items()}
                continue
            add_into(mine, vec)
            _add_hist(self.fb_open_due[key], other.fb_open_due[key])
        self.procedures.update(other.procedures)
        self.agencies.update(other.agencies)

    def derived(self, key: Any, make: Callable[[], T]) -> T:
        """What ``make`` derives from these counters, kept under ``key`` until they change
        (``version``): a query's agency tree or sums, computed once per version, never stale."""
        # (bounded: keys may hold a query's arguments, e.g. its view's end day)
        if self._derived_at != self.version or len(self._derived) >= DERIVED_MAX:
            self._derived.clear()
            self._derived_at = self.version
        hit = self._derived.get(key, _MISSING)
        if hit is _MISSING:
            hit = self._derived[key] = make()
        return hit  # type: ignore[no-any-return]

    def clear_dirty(self) -> None:
        self.dirty_cells.clear()
        self.dirty_fb.clear()
        self.dirty_catalog.clear()
        self.dossiers.clear()
        self.feedback.clear()

    def mark_all_dirty(self) -> Counters:
        """Mark everything as changed (to write a whole table set)."""
        self.dirty_cells.update(self.cells)
        self.dirty_fb.update(self.fb_cells)
        self.dirty_catalog.update(("procedure", k) for k in self.procedures)
        self.dirty_catalog.update(("agency", k) for k in self.agencies)
        return self


def add_into(acc: list[int], vec: list[int]) -> None:
    """Add a counter vector into another, in place."""
    for i, v in enumerate(vec):
        if v:
            acc[i] += v


def _apology(f: list[Any]) -> int:
    return apology_status(f[3], APOLOGY_ISSUED, APOLOGY_IN_TIME)


def add_delays(acc: Delays, rows: Delays, sign: int) -> None:
    """Add (or take away) delays rows, dropping rows that fall to zero. (A delays query sums
    every cell of a province-year through here: ≈ 100,000 rows, so each is one expression.)"""
    for k, v in rows.items():
        mine = acc.get(k)
        if mine is None:
            new = list(v) if sign == 1 else [sign * x for x in v]
        else:
            new = [a + sign * b for a, b in zip(mine, v, strict=True)]
        if any(new):
            acc[k] = new
        elif mine is not None:
            del acc[k]


def _add_hist(acc: Hist, other: Hist) -> None:
    for day, vec in other.items():
        h = acc.get(day)
        if h is None:
            acc[day] = list(vec)
        else:
            add_into(h, vec)
            if not any(h):
                del acc[day]


def merged(parts: list[Counters]) -> Counters:
    """One set of counters summing several table sets (base and partitions)."""
    out = Counters(parts[0].layout if parts else DEFAULT_LAYOUT)
    for c in parts:
        out.merge_from(c)
    out.clear_dirty()
    return out
