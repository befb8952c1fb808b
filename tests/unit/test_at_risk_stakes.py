"""The points at stake (spec/accountability.md §5) computed the short way agree with the long way.

The spec defines a stake as the difference of two rounded totals, each exactly as the scorecard
computes it. The long way is that definition: every criterion's counts of the agency's subtree
(``views.counts_for``), the total, the same counts with the dossier counted late, the total
again, subtracted. The short way (``projections.atrisk.Stakes``) gathers only the timely
criteria's counts, sums a subtree from its agencies' own counts, and subtracts only the lost
criteria's rounded points (``scoring.total_drop``). They must give the same numbers, to the
hundredth, on random counts and on a simulated province's every open dossier.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from oracle import VN as VN_TZ
from pipeline import Pipeline

from producers.simulator import SimConfig, generate
from projections.atrisk import Stakes
from projections.facts import OPEN, DossierFacts
from projections.fold import Counters
from projections.periods import parse_period
from projections.ruleset import Ruleset, load_ruleset
from projections.scoring import total_drop, total_points
from projections.views import Tree, counts_for

RULESET = load_ruleset("portal-2026")


def slow_drop(ruleset: Ruleset, counts: dict[str, tuple[int, int]],
              lost: tuple[str, ...]) -> Decimal:
    """The definition: the total, minus the total with one less in each lost numerator."""
    late = dict(counts)
    for code in lost:
        num, den = late[code]
        late[code] = (num - 1, den)
    return total_points(ruleset, counts) - total_points(ruleset, late)


def random_counts(rng: random.Random) -> dict[str, tuple[int, int]]:
    """Counts for every criterion: small and large denominators, zero ones, full numerators."""
    out = {}
    for c in RULESET.criteria():
        den = rng.choice([0, 1, 2, 3, 7, 9, 10, 99, 443_565, rng.randint(1, 5000)])
        num = rng.choice([den, max(den - 1, 0), rng.randint(0, den)])
        out[c.code] = (num, den)
    return out


def test_the_lost_criteria_s_drop_is_the_difference_of_the_two_rounded_totals() -> None:
    """3,000 random count sets and random sets of lost criteria (a numerator of 0 included):
    ``total_drop`` equals the total minus the total with those numerators one less."""
    rng = random.Random(766)
    codes = [c.code for c in RULESET.criteria()]
    nonzero = 0
    off_unrounded = 0
    for _ in range(3000):
        counts = random_counts(rng)
        lost = tuple(rng.sample(codes, rng.choice([1, 1, 2, 2, 3, len(codes)])))
        want = slow_drop(RULESET, counts, lost)
        assert total_drop(RULESET, counts, lost) == want, (counts, lost)
        nonzero += want != 0
        off_unrounded += _unrounded_drop(counts, lost) != want
    # Not vacuous: most drops move the total, and many differ from an unrounded difference
    # rounded once (the reason the shortcut must subtract rounded points).
    assert nonzero > 1500 and off_unrounded > 100


def _unrounded_drop(counts: dict[str, tuple[int, int]], lost: tuple[str, ...]) -> Decimal:
    from fractions import Fraction

    from projections.rounding import round_half_up

    def raw(c: Any, num: int, den: int) -> Fraction:
        if c.shown_only or c.max == 0 or den == 0:
            return Fraction(0)
        target = Fraction(c.target) if c.target is not None else Fraction(1)
        return Fraction(c.max) * min(Fraction(1), Fraction(num, den) / target)

    total = Fraction(0)
    for c in RULESET.criteria():
        if c.code in lost:
            num, den = counts[c.code]
            total += raw(c, num, den) - raw(c, num - 1, den)
    return round_half_up(total)


def _actions(now: datetime) -> list[dict[str, Any]]:
    """A simulated province of 6 units received over Dec 2025 – Jan 2026 (two reception years),
    cut at ``now``: many dossiers still open, some already past due."""
    return [a for a in generate(SimConfig(agencies=6, dossiers=900, seed=12,
                                          start=date(2025, 12, 1), days=50))
            if datetime.fromisoformat(a["occurred_at"]) <= now]


def _slow_stake(counters: Counters, tree: Tree, agency: str, f: DossierFacts, now: datetime,
                lost: tuple[str, ...]) -> float:
    counts, _ = counts_for(counters, RULESET, tree, agency, parse_period(f.month[:4]), now)
    return float(slow_drop(RULESET, counts, lost))


def test_stakes_of_every_open_dossier_match_the_two_full_totals(tmp_path: Path) -> None:
    """Every open dossier of a simulated province (two reception years, judged at a live now),
    for its own unit and the province: the stake equals the difference of the two full
    scorecard totals, and the timely criteria's counts equal ``counts_for``'s."""
    now = datetime(2026, 1, 12, 10, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=now) as p:
        p.send(_actions(now), batch=5000)
        assert p.rejected() == []
        tree = Tree.build(p.counters)
        stakes = Stakes(p.counters, tree, lambda _p: RULESET, now)
        for agency in sorted(tree.subtree("H15")):
            for year in ("2025", "2026"):
                full, _ = counts_for(p.counters, RULESET, tree, agency, parse_period(year), now)
                assert stakes.counts(agency, year) == {c: full[c] for c in stakes.plans}
        open_ = [DossierFacts._make(f) for _, f in sorted(p.dossier_facts.items())
                 if f[7] == -1 and f[4] == OPEN]
        seen: dict[tuple[str, str, tuple[str, ...]], float] = {}
        for f in open_:
            lost = stakes.lost(f, stakes.year(f.month[:4])[2])
            for agency in (f.agency, "H15"):
                key = (agency, f.month[:4], lost)
                if key not in seen:
                    seen[key] = (0.0 if not lost else
                                 _slow_stake(p.counters, tree, agency, f, now, lost))
                assert stakes.stake(agency, f) == seen[key], (agency, f)
        # Not vacuous: both years have open dossiers, and stakes of one and of two criteria.
        assert {f.month[:4] for f in open_} == {"2025", "2026"}
        assert {len(k[2]) for k in seen} >= {1, 2}
        assert len({v for v in seen.values() if v}) > 5


def test_the_at_risk_list_carries_the_full_totals_difference(tmp_path: Path) -> None:
    """The rows of ``at-risk H15 --within 3`` on the simulated province: each ``stake_unit`` and
    ``stake`` is the difference of the two full totals of its agency."""
    now = datetime(2026, 1, 12, 10, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=now) as p:
        p.send(_actions(now), batch=5000)
        assert p.rejected() == []
        out = p.at_risk("H15", now, 3)
        rows = out["due_soon"] + out["overdue_open"]
        assert out["due_soon"] and out["overdue_open"]
        tree = Tree.build(p.counters)
        stakes = Stakes(p.counters, tree, lambda _p: RULESET, now)
        memo: dict[tuple[str, str, tuple[str, ...]], float] = {}
        for r in rows:
            f = DossierFacts._make(p.dossier_facts[r["dossier_id"]])
            lost = stakes.lost(f, stakes.year(f.month[:4])[2])
            want = []
            for agency in (f.agency, "H15"):
                key = (agency, f.month[:4], lost)
                if key not in memo:
                    memo[key] = (0.0 if not lost else
                                 _slow_stake(p.counters, tree, agency, f, now, lost))
                want.append(memo[key])
            assert [r["stake_unit"], r["stake"]] == want, r["dossier_id"]
        assert len({r["stake"] for r in rows} - {0.0}) > 1
