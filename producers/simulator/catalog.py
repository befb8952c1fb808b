"""The province's agency tree and procedure catalog, and which procedure a dossier is for."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from datetime import date
from itertools import accumulate
from typing import Any

from producers.simulator.clock import DAY, DUE_TIME_OF_DAY, HOUR, MINUTE, NEVER
from producers.simulator.names import COMMUNES, DEPARTMENTS, PROCEDURES
from producers.simulator.province import Province

_REGISTERED_DAYS_BEFORE = 400  # the agency tree exists well before the window opens
_REGISTERED_AT = 8 * HOUR
_AGENCIES_PER_DEPARTMENT = 3  # the rest are communes
_CODE_LEVELS = (1, 1, 1, 2, 3)  # a procedure code's first part, weighted by repetition
_CODE_NUMBERS = 14_000
_FEES_VND = (2_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)
_WORKING_DAYS = (3, 3, 5, 5, 5, 7, 10, 10, 12, 15, 20)  # processing times, weighted likewise
_HOURS = (4, 8, 8, 24)
_DAYS = (7, 15, 30)
_MONTHS = 1
_ALWAYS_DECIDED_BEFORE = 3  # so dossiers have procedures from the window's first day
_DECIDED_DAYS_BEFORE = (30, 360)
_DECIDED_IN_WINDOW = (2, 3)  # the rest are decided in the window's first 2/3
_IN_FORCE_ON_TIME = (5, 25)  # working days from decision to effect, when published on time
_IN_FORCE_RUSHED = (1, 4)
_PUBLISHED_HOURS = (8 * HOUR, 16 * HOUR)
_PUBLICIZED_ON_TIME = (1, 5)  # working days after the decision
_PUBLICIZED_LATE = (6, 15)
_PUBLICIZED_HOURS = (9 * HOUR, 16 * HOUR)
# Repeals fall in the window's second half, spread over a third of it, a week after taking
# effect at the earliest.
_REPEALS_FROM_PART = 2
_REPEALS_SPREAD_PART = 3
_REPEALED_AFTER_DAYS = 7
_REPEALED_AT = 10 * HOUR
_PICK_TRIES = 20  # draws for a procedure in force before settling for the first one
_LAST_DAY_IN_EVERY_MONTH = 28
# The steps of an internal process and their shares of its budget.
_STEP_WEIGHTS = {"receive": 1.0, "process": 5.0, "review": 1.5, "approve": 1.5, "return": 1.0}
_ROUTES: tuple[tuple[str, ...], ...] = (("receive", "process", "return"),
           ("receive", "process", "review", "approve", "return"),
           ("receive", "process", "approve", "return"))
_BUDGET_GRAIN = HOUR // 2  # budgets are whole half hours, at least one
_SLOTS = 1 << 16  # which of an agency's processing units handles the procedure: slot % units


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
    route: tuple[str, ...]  # the steps its dossiers go through, from reception
    budgets: tuple[int, ...]  # office seconds per step of the route (published or not)
    published_budgets: bool  # whether the internal process is published with the procedure
    slot: int


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
    registered = (cfg.start.toordinal() - _REGISTERED_DAYS_BEFORE) * DAY + _REGISTERED_AT
    pid = cfg.province_id
    province.push(
        registered,
        "agency_registered",
        "agency_id",
        pid,
        {"name": cfg.province_name, "level": "province"},
    )
    n_dep = max(1, round(cfg.agencies / _AGENCIES_PER_DEPARTMENT)) if cfg.agencies > 1 else 1
    departments = [f"{pid}.{i}" for i in range(1, n_dep + 1)]
    communes = [f"{pid}.{i}" for i in range(n_dep + 1, cfg.agencies + 1)]
    province.communes.update(communes)
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
    at_commune = bool(communes) and (certified or rng.random() < cfg.commune_procedure_rate)
    agencies = tuple(communes) if at_commune else (rng.choice(departments),)
    decided, effective = _decision_days(province, i)
    unit, value = _processing_time(province)
    proc = Procedure(
        id=procedure_id,
        agencies=agencies,
        unit=unit,
        value=value,
        fee_bearing=certified or rng.random() < cfg.fee_bearing_rate,
        fee_vnd=rng.choice(_FEES_VND),
        eligible=rng.random() < cfg.full_online_eligible_rate,
        individual=certified or rng.random() < cfg.individual_procedure_rate,
        certified=certified,
        active_from=effective * DAY,
        repealed_at=NEVER,
        **_internal_process(province, unit, value),
    )
    internal = {}
    if proc.published_budgets:
        internal["internal_process"] = [
            {"step": step, "working_hours": _hours(budget)}
            for step, budget in zip(proc.route, proc.budgets, strict=True)]
    province.push(
        decided * DAY + province.between(*_PUBLISHED_HOURS),
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
            "paper_result_required": rng.random() < cfg.paper_result_rate,
            "individual_applicants": proc.individual,
            "certified_copy": certified,
            "parts_complete": rng.random() < cfg.parts_complete_rate,
            **internal,
        },
    )
    return proc, decided


def _internal_process(province: Province, unit: str, value: int) -> dict[str, Any]:
    """The route of the procedure's dossiers and its step budgets: a share of the office hours
    its processing time gives a dossier."""
    cfg, r = province.cfg, province.rng.random
    x = r()
    if x < cfg.two_handover_rate:
        route = _ROUTES[0]
    elif x < cfg.two_handover_rate + cfg.four_handover_rate:
        route = _ROUTES[1]
    else:
        route = _ROUTES[2]
    # Received at the start of the office day for hours, at its end for days (whose count
    # starts the next day).
    t0 = province.working.add(cfg.start.toordinal() - 1, 1) * DAY + (
        province.office.sessions[0][0] if unit == "hours" else province.office.sessions[-1][1])
    total = province.office.between(t0, due_from(province, t0, unit, value))
    share = cfg.internal_budget_share * total / sum(_STEP_WEIGHTS[s] for s in route)
    budgets = tuple(max(1, round(share * _STEP_WEIGHTS[s] / _BUDGET_GRAIN)) * _BUDGET_GRAIN
                    for s in route)
    return {"route": route, "budgets": budgets,
            "published_budgets": r() < cfg.internal_process_rate,
            "slot": int(r() * _SLOTS)}


def _hours(seconds: int) -> float | int:
    """Office seconds as hours, whole hours as an integer."""
    hours = seconds / HOUR
    return int(hours) if hours.is_integer() else hours


def due_from(province: Province, t0: int, unit: str, value: int) -> int:
    """The due time a sender writes for a processing time from reception at ``t0``: hours from
    the instant, else the end of the office day that many working days, days or months on."""
    day = t0 // DAY
    if unit == "hours":
        return t0 + value * HOUR
    if unit == "working_days":
        return province.working.add(day, value) * DAY + DUE_TIME_OF_DAY
    if unit == "days":
        return (day + value) * DAY + DUE_TIME_OF_DAY
    d = date.fromordinal(day)
    month0 = d.month - 1 + value
    year, month = d.year + month0 // 12, month0 % 12 + 1
    last = date(year, month, min(d.day, _LAST_DAY_IN_EVERY_MONTH))
    return last.toordinal() * DAY + DUE_TIME_OF_DAY


def _decision_days(province: Province, i: int) -> tuple[int, int]:
    """The i-th procedure's decision day and the day its legal basis takes effect."""
    cfg, rng, working = province.cfg, province.rng, province.working
    start = cfg.start.toordinal()
    if i < _ALWAYS_DECIDED_BEFORE or rng.random() < cfg.decided_before_window_rate:
        decided = start - province.between(*_DECIDED_DAYS_BEFORE)
    else:
        parts, whole = _DECIDED_IN_WINDOW
        decided = start + province.between(0, max(0, cfg.days * parts // whole))
    decided = working.add(decided - 1, 1)
    on_time = rng.random() < cfg.publish_on_time_rate
    n = province.between(*_IN_FORCE_ON_TIME) if on_time else province.between(*_IN_FORCE_RUSHED)
    return decided, working.add(decided, n)


def _publicize(province: Province, procedure_id: str, decided: int) -> None:
    """Maybe schedule the procedure's publicizing on the national database."""
    rng = province.rng
    if rng.random() < province.cfg.publicized_rate:
        late = rng.random() >= province.cfg.publicize_on_time_rate
        n = province.between(*(_PUBLICIZED_LATE if late else _PUBLICIZED_ON_TIME))
        day = province.working.add(decided, n)
        province.push(
            day * DAY + province.between(*_PUBLICIZED_HOURS),
            "procedure_publicized",
            "procedure_id",
            procedure_id,
            {},
        )


def _repeal(province: Province, proc: Procedure) -> Procedure:
    """Schedule the procedure's repeal; the procedure with its end."""
    cfg = province.cfg
    start = cfg.start.toordinal()
    in_force = proc.active_from // DAY
    low = max(in_force + _REPEALED_AFTER_DAYS, start + cfg.days // _REPEALS_FROM_PART)
    spread = max(0, cfg.days // _REPEALS_SPREAD_PART)
    day = province.working.add(low + province.between(0, spread), 1)
    at = day * DAY + _REPEALED_AT
    province.push(
        at,
        "procedure_repealed",
        "procedure_id",
        proc.id,
        {"decision_date": date.fromordinal(day).isoformat()},
    )
    return replace(proc, repealed_at=at)


def _procedure_id(province: Province, taken: set[str]) -> str:
    """A procedure code like the national database's, not yet in ``taken``."""
    rng = province.rng
    while True:
        number = province.cfg.code_block * _CODE_NUMBERS + rng.randrange(1, _CODE_NUMBERS)
        candidate = f"{rng.choice(_CODE_LEVELS)}.{number:06d}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _processing_time(province: Province) -> tuple[str, int]:
    """The unit and value of a procedure's processing time."""
    cfg, rng = province.cfg, province.rng
    r = rng.random()
    # Subtracting each share from the draw is exact here, so the draw meets the true sum of the
    # shares; a running float sum would round (0.85 + 0.08 is 0.9299999999999999, not 0.93).
    for unit, share, values in (
        ("working_days", cfg.processing_in_working_days_rate, _WORKING_DAYS),
        ("hours", cfg.processing_in_hours_rate, _HOURS),
        ("days", cfg.processing_in_days_rate, _DAYS),
    ):
        if r < share:
            return unit, rng.choice(values)
        r -= share
    return "months", _MONTHS


class Popularity:
    """Which procedure a dossier is for: a few procedures draw most dossiers (Zipf-like)."""

    def __init__(self, province: Province, procedures: list[Procedure]) -> None:
        self.rng = province.rng
        self.procedures = procedures
        self.active_from = [p.active_from for p in procedures]
        n = len(procedures)
        ranks = province.rng.sample(range(n), n)
        exponent = province.cfg.popularity_exponent
        self.weights = list(accumulate(1.0 / (rank + 1) ** exponent for rank in ranks))

    def pick(self, t: int) -> Procedure:
        """A procedure in force at ``t``, drawn by popularity."""
        procedures, weights, rng = self.procedures, self.weights, self.rng
        k = max(1, bisect_right(self.active_from, t))
        for _ in range(_PICK_TRIES):
            p = procedures[bisect_right(weights, rng.random() * weights[k - 1], 0, k - 1)]
            if p.repealed_at > t:
                return p
        return next((p for p in procedures[:k] if p.repealed_at > t), procedures[0])
