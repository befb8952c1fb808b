"""The province's agency tree and procedure catalog, and which procedure a dossier is for."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from datetime import date
from itertools import accumulate

from producers.simulator.clock import DAY, HOUR, MINUTE, NEVER
from producers.simulator.names import COMMUNES, DEPARTMENTS, PROCEDURES
from producers.simulator.province import Province


@dataclass(frozen=True, slots=True)
class Procedure:
    """A published procedure, as the dossiers see it."""

    id: str
    agencies: tuple[str, ...]
    unit: str
    value: int
    fee_bearing: bool
    fee_vnd: int
    eligible: bool
    individual: bool
    certified: bool
    active_from: int
    repealed_at: int


def publish_catalog(province: Province) -> list[Procedure]:
    """Schedule the agency tree and the procedures; the procedures, by when they apply."""
    cfg, rng = province.cfg, province.rng
    departments, communes = _register_agencies(province)
    repealed = set(rng.sample(range(1, cfg.procedures), cfg.repealed))
    taken: set[str] = set()
    out = []
    for i in range(cfg.procedures):
        proc, decided = _publish(province, i, _procedure_id(province, taken), departments, communes)
        _publicize(province, proc.id, decided)
        if i in repealed:
            proc = _repeal(province, proc)
        out.append(proc)
    order = sorted(range(len(out)), key=lambda k: out[k].active_from)
    return [out[k] for k in order]


def _register_agencies(province: Province) -> tuple[list[str], list[str]]:
    """Schedule the province and its agencies; the ids of its departments and communes."""
    cfg, rng = province.cfg, province.rng
    registered = (cfg.start.toordinal() - 400) * DAY + 8 * HOUR
    pid = cfg.province_id
    province.push(
        registered,
        "agency_registered",
        "agency_id",
        pid,
        {"name": cfg.province_name, "level": "province"},
    )
    n_dep = max(1, round(cfg.agencies / 3)) if cfg.agencies > 1 else 1
    departments = [f"{pid}.{i}" for i in range(1, n_dep + 1)]
    communes = [f"{pid}.{i}" for i in range(n_dep + 1, cfg.agencies + 1)]
    for ids, level, names in (
        (departments, "department", list(DEPARTMENTS)),
        (communes, "commune", [f"UBND {c}" for c in COMMUNES]),
    ):
        rng.shuffle(names)
        for i, agency_id in enumerate(ids):
            name = names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "")
            province.push(
                registered + MINUTE,
                "agency_registered",
                "agency_id",
                agency_id,
                {"name": name, "parent_id": pid, "level": level},
            )
    return departments, communes


def _publish(
    province: Province, i: int, procedure_id: str, departments: list[str], communes: list[str]
) -> tuple[Procedure, int]:
    """Schedule the i-th procedure's publication; the procedure and its decision day."""
    cfg, rng = province.cfg, province.rng
    name = PROCEDURES[i % len(PROCEDURES)]
    certified = "chứng thực" in name.lower()
    if i >= len(PROCEDURES):
        name = f"{name} ({i // len(PROCEDURES) + 1})"
    at_commune = bool(communes) and (certified or rng.random() < 0.4)
    agencies = tuple(communes) if at_commune else (rng.choice(departments),)
    decided, effective = _decision_days(province, i)
    unit, value = _processing_time(province)
    proc = Procedure(
        id=procedure_id,
        agencies=agencies,
        unit=unit,
        value=value,
        fee_bearing=certified or rng.random() < 0.6,
        fee_vnd=rng.choice((2_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)),
        eligible=rng.random() < 0.7,
        individual=certified or rng.random() < 0.9,
        certified=certified,
        active_from=effective * DAY,
        repealed_at=NEVER,
    )
    province.push(
        decided * DAY + 8 * HOUR + province.between(0, 8 * HOUR),
        "procedure_published",
        "procedure_id",
        procedure_id,
        {
            "name": name,
            "authority_id": cfg.province_id,
            "authority_level": "province",
            "decision_date": date.fromordinal(decided).isoformat(),
            "legal_basis_effective_date": date.fromordinal(effective).isoformat(),
            "implementing_agency_ids": list(agencies),
            "processing_time": {"value": value, "unit": unit},
            "full_online_eligible": proc.eligible,
            "fee_bearing": proc.fee_bearing,
            "paper_result_required": rng.random() < 0.3,
            "individual_applicants": proc.individual,
            "certified_copy": certified,
            "parts_complete": rng.random() < 0.95,
        },
    )
    return proc, decided


def _decision_days(province: Province, i: int) -> tuple[int, int]:
    """The i-th procedure's decision day and the day its legal basis takes effect."""
    cfg, rng, working = province.cfg, province.rng, province.working
    start = cfg.start.toordinal()
    # The first procedures (and 60% overall) were decided before the window opened.
    if i < 3 or rng.random() < 0.6:
        decided = start - province.between(30, 360)
    else:
        decided = start + province.between(0, max(0, cfg.days * 2 // 3))
    decided = working.add(decided - 1, 1)
    if rng.random() < cfg.publish_on_time_rate:
        effective = working.add(decided, 5 + province.between(0, 20))
    else:
        effective = working.add(decided, province.between(1, 4))
    return decided, effective


def _publicize(province: Province, procedure_id: str, decided: int) -> None:
    rng = province.rng
    if rng.random() < province.cfg.publicized_rate:
        late = rng.random() >= province.cfg.publicize_on_time_rate
        n = province.between(6, 15) if late else province.between(1, 5)
        day = province.working.add(decided, n)
        province.push(
            day * DAY + 9 * HOUR + province.between(0, 7 * HOUR),
            "procedure_publicized",
            "procedure_id",
            procedure_id,
            {},
        )


def _repeal(province: Province, proc: Procedure) -> Procedure:
    cfg = province.cfg
    start = cfg.start.toordinal()
    low = max(proc.active_from // DAY + 7, start + cfg.days // 2)
    day = province.working.add(low + province.between(0, max(0, cfg.days // 3)), 1)
    at = day * DAY + 10 * HOUR
    province.push(
        at,
        "procedure_repealed",
        "procedure_id",
        proc.id,
        {"decision_date": date.fromordinal(day).isoformat()},
    )
    return replace(proc, repealed_at=at)


def _procedure_id(province: Province, taken: set[str]) -> str:
    rng = province.rng
    while True:
        candidate = f"{rng.choice((1, 1, 1, 2, 3))}.{rng.randrange(1, 14000):06d}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _processing_time(province: Province) -> tuple[str, int]:
    rng = province.rng
    r = rng.random()
    if r < 0.85:
        return "working_days", rng.choice((3, 3, 5, 5, 5, 7, 10, 10, 12, 15, 20))
    if r < 0.93:
        return "hours", rng.choice((4, 8, 8, 24))
    if r < 0.98:
        return "days", rng.choice((7, 15, 30))
    return "months", 1


class Popularity:
    """Which procedure a dossier is for: a few procedures draw most dossiers (Zipf-like)."""

    def __init__(self, province: Province, procedures: list[Procedure]) -> None:
        self.rng = province.rng
        self.procedures = procedures
        self.active_from = [p.active_from for p in procedures]
        n = len(procedures)
        ranks = province.rng.sample(range(n), n)
        self.weights = list(accumulate(1.0 / (rank + 1) ** 0.8 for rank in ranks))

    def pick(self, t: int) -> Procedure:
        """A procedure in force at ``t``, drawn by popularity."""
        procedures, weights, rng = self.procedures, self.weights, self.rng
        k = max(1, bisect_right(self.active_from, t))
        for _ in range(20):
            p = procedures[bisect_right(weights, rng.random() * weights[k - 1], 0, k - 1)]
            if p.repealed_at > t:
                return p
        return next((p for p in procedures[:k] if p.repealed_at > t), procedures[0])
