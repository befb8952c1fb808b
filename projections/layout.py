"""The counter layout the fold keeps, compiled from the criteria registry.

Each distinct set of flag requirements that some criterion counts is a *feature*. Per (agency,
reception month) a cell keeps, for each feature, how many subjects meet it; for each feature a
timely criterion counts, how many meet it and are on time for good; and the sums some criteria
take (2.2's processing days). Open subjects are judged per view, so for them the cell keeps a
histogram by due day of how many meet each timely feature ("on time at E" is then a sum over due
days ≥ E's date, spec §4). Criteria that depend on the catalog (eligibility, paper results,
the agency's procedures) are answered at query time from per-procedure vectors of the features
they need, because the catalog counts as it stands now.

A layout is data: its fingerprint is stored with the views, so views built under another
registry are refused rather than misread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from projections import facts as F
from projections.criteria import REGISTRY, Needs, ProcedureCriterion, Registry, SubjectCriterion

FeatureKey = tuple[tuple[int, str], ...]
VIEWS_SCHEMA = 2  # the view store's tables (the delays rows, the dossiers' finished column)


def feature_key(needs: Iterable[Any]) -> FeatureKey:
    """One normal form per requirement set: "all" and "none" bits merged, "any" kept apart."""
    every = none = 0
    anys = set()
    for n in needs:
        if n.mode == "all":
            every |= n.bits
        elif n.mode == "none":
            none |= n.bits
        else:
            anys.add((n.bits, "any"))
    key = sorted(anys)
    if every:
        key.append((every, "all"))
    if none:
        key.append((none, "none"))
    return tuple(key)


def _holds(key: FeatureKey, flags: int) -> bool:
    for bits, mode in key:
        if mode == "all":
            if flags & bits != bits:
                return False
        elif mode == "any":
            if not flags & bits:
                return False
        elif flags & bits:
            return False
    return True


def _name(key: FeatureKey, names: Mapping[str, int]) -> str:
    if not key:
        return "all"

    def bit_names(bits: int) -> list[str]:
        return [n for n, b in names.items() if bits & b]

    parts = []
    for bits, mode in key:
        if mode == "all":
            parts.append("&".join(bit_names(bits)))
        elif mode == "any":
            parts.append("(" + "|".join(bit_names(bits)) + ")")
        else:
            parts.append("&".join("!" + n for n in bit_names(bits)))
    return "&".join(parts)


@dataclass(frozen=True)
class Plan:
    """Where one subject criterion's numerator and denominator come from."""

    code: str
    den: int  # feature index
    num: int  # feature index (the default numerator)
    alt: int | None  # feature index of ``num_alt``
    alt_attr: str | None
    den_attr: str | None
    timely: int | None  # index among timely features
    sum_slot: int | None  # slot of the cell


class SubjectLayout:
    """The counters of one subject kind (dossier or feedback), compiled from its criteria."""

    def __init__(self, kind: str, criteria: Iterable[SubjectCriterion],
                 procedure_needs: Iterable[Needs] = ()) -> None:
        self.kind = kind
        names = F.FLAG_NAMES if kind == "dossier" else F.FEEDBACK_FLAG_NAMES
        features: dict[FeatureKey, int] = {(): 0}
        timely: dict[int, int] = {}
        sums: dict[str, int] = {}
        proc: dict[int, int] = {}

        def feature(needs: Iterable[Any]) -> int:
            return features.setdefault(feature_key(needs), len(features))

        raw = []
        for c in criteria:
            den = feature(c.den)
            num = feature(c.den + c.num)
            alt = feature(c.den + c.num_alt[1]) if c.num_alt else None
            if c.timely:
                timely.setdefault(num, len(timely))
            if c.sum_of:
                sums.setdefault(c.sum_of, len(sums))
            if c.den_attr or c.num_alt:
                for f in (den, num) + ((alt,) if alt is not None else ()):
                    proc.setdefault(f, len(proc))
            raw.append((c, den, num, alt))
        for needs in procedure_needs:
            proc.setdefault(feature(needs), len(proc))
        self.features = list(features)
        self.names = [_name(k, names) for k in self.features]
        self.n_features = len(self.features)
        self.timely = list(timely)  # feature index of each timely slot
        self.sums = list(sums)  # fact field of each sum slot
        self.proc = list(proc)  # feature index of each per-procedure slot
        self.proc_index = proc
        self.slots = self.n_features + len(self.timely) + len(self.sums)
        self.sum_slots = {f: self.n_features + len(self.timely) + i for f, i in sums.items()}
        self.plans = {c.code: Plan(c.code, den, num, alt, c.num_alt[0] if c.num_alt else None,
                                   c.den_attr, timely.get(num) if c.timely else None,
                                   self.sum_slots.get(c.sum_of) if c.sum_of else None)
                      for c, den, num, alt in raw}
        self._masks: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        # The flag bits any feature reads: a change in the others moves no counter.
        self.relevant = 0
        for key in self.features:
            for bits, _ in key:
                self.relevant |= bits
        # The fold's memo of transitions between two (flags, judgement), shared by every
        # Counters of this layout (a replay makes one per page and partition): projections.fold.
        self.transitions: dict[int, Any] = {}

    def masks(self, flags: int, judged: int) -> tuple[int, int, tuple[int, ...]]:
        """(cell bits, per-procedure bits, open vector) of a subject: memoized on the only
        inputs they read."""
        k = (flags << 2) | (judged + 1)
        m = self._masks.get(k)
        if m is None:
            if len(self._masks) > 65536:
                self._masks.clear()
            holds = [_holds(key, flags) for key in self.features]
            cell = sum(1 << i for i, h in enumerate(holds) if h)
            if judged == 1:
                cell |= sum(1 << (self.n_features + j)
                            for j, f in enumerate(self.timely) if holds[f])
            proc = sum(1 << j for j, f in enumerate(self.proc) if holds[f])
            open_vec = tuple(int(holds[f]) for f in self.timely) if judged == F.OPEN else ()
            m = self._masks[k] = (cell, proc, open_vec)
        return m

    def slot_names(self) -> list[str]:
        return ([f"count[{n}]" for n in self.names]
                + [f"on_time[{self.names[f]}]" for f in self.timely]
                + [f"sum[{s}]" for s in self.sums])

    def describe(self) -> dict[str, Any]:
        return {"features": self.features, "timely": self.timely, "sums": self.sums,
                "proc": self.proc}


class Layout:
    """The dossier and feedback layouts of a registry, and its fingerprint."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        procedure: list[ProcedureCriterion] = registry.procedure_criteria()
        self.dossier = SubjectLayout("dossier", registry.subject_criteria("dossier"),
                                     [p.dossier for p in procedure])
        self.feedback = SubjectLayout("feedback", registry.subject_criteria("feedback"))
        self.procedure_slots = {p.code: self.dossier.proc_index[
            self.dossier.features.index(feature_key(p.dossier))] for p in procedure}
        # The views' table shapes count too: views written by another version are rebuilt.
        doc = repr((VIEWS_SCHEMA, self.dossier.describe(), self.feedback.describe())).encode()
        self.fingerprint = int(hashlib.sha256(doc).hexdigest()[:15], 16)


DEFAULT_LAYOUT = Layout(REGISTRY)
