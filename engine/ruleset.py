"""Scoring rulesets, kept as data (``engine/rulesets/NAME.json``) so each Decision is a setting.

Numbers are read as ``Decimal`` straight from the JSON text (never through ``float``), and the file
is checked on load: group maxima must equal the sum of their criteria and the whole must be 100.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, cast

from kernel.calendar import WorkCalendar
from kernel.errors import ConfigurationError, UserError

ZeroRule = Literal["zero", "full"]
_RULESET_PACKAGE = "engine.rulesets"


class UnknownRulesetError(UserError):
    """A ruleset name with no ``engine/rulesets/NAME.json``."""


class UnknownCriterionError(UserError):
    """A criterion code that the ruleset does not define."""


@dataclass(frozen=True)
class Criterion:
    id: str
    code: str
    name_vi: str
    name_en: str
    group: str
    max: Decimal
    target: Decimal | None
    zero_denominator: ZeroRule
    shown_only: bool = False


@dataclass(frozen=True)
class Group:
    key: str
    name_vi: str
    name_en: str
    max: Decimal
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Ruleset:
    name: str
    groups: tuple[Group, ...]
    bands: tuple[tuple[Decimal, str], ...]
    apology_moves_due: bool = False
    publish_on_time_working_days: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"province": 5, "ministry": 20}), hash=False
    )
    public_update_working_days: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"province": 5, "ministry": 10}), hash=False
    )
    petition_answer_working_days: int = 15
    extra_days_off: tuple[date, ...] = ()
    makeup_working_days: tuple[date, ...] = ()
    calendar: WorkCalendar = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        cal = WorkCalendar(self.extra_days_off, self.makeup_working_days)
        object.__setattr__(self, "calendar", cal)

    def criteria(self) -> tuple[Criterion, ...]:
        """Every criterion, shown-only included, in the spec's order."""
        return tuple(c for g in self.groups for c in g.criteria)

    def scored_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria() if c.max > 0)

    def criterion(self, code: str) -> Criterion:
        for c in self.criteria():
            if c.code == code:
                return c
        valid = ", ".join(c.code for c in self.criteria())
        raise UnknownCriterionError(
            f"Criterion {code!r} is not in ruleset {self.name}; valid codes are {valid}."
        )


def available_rulesets() -> tuple[str, ...]:
    """Names of the rulesets shipped in ``engine/rulesets``."""
    root = resources.files(_RULESET_PACKAGE)
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json")))


@cache
def load_ruleset(name: str) -> Ruleset:
    """The named ruleset, parsed and checked once per process."""
    known = available_rulesets()
    if name not in known:
        raise UnknownRulesetError(
            f"Ruleset {name!r} is unknown; the known rulesets are {', '.join(known)}."
        )
    text = resources.files(_RULESET_PACKAGE).joinpath(f"{name}.json").read_text("utf-8")
    try:
        return _parse(json.loads(text, parse_float=Decimal, parse_int=Decimal))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"Ruleset file {name}.json is malformed: {exc}.") from None


def _parse(doc: dict[str, Any]) -> Ruleset:
    groups = tuple(_group(g) for g in doc["groups"])
    ruleset = Ruleset(
        name=str(doc["name"]),
        groups=groups,
        bands=tuple((Decimal(t), str(label)) for t, label in doc["bands"]),
        apology_moves_due=bool(doc.get("apology_moves_due", False)),
        publish_on_time_working_days=_int_map(doc["publish_on_time_working_days"]),
        public_update_working_days=_int_map(doc["public_update_working_days"]),
        petition_answer_working_days=int(doc["petition_answer_working_days"]),
        extra_days_off=tuple(date.fromisoformat(d) for d in doc.get("extra_days_off", ())),
        makeup_working_days=tuple(
            date.fromisoformat(d) for d in doc.get("makeup_working_days", ())
        ),
    )
    _check(ruleset)
    return ruleset


def _group(g: dict[str, Any]) -> Group:
    key = str(g["key"])
    criteria = tuple(
        Criterion(
            id=str(c["id"]),
            code=str(c["code"]),
            name_vi=str(c["name_vi"]),
            name_en=str(c["name_en"]),
            group=key,
            max=Decimal(c["max"]),
            target=None if c.get("target") is None else Decimal(c["target"]),
            zero_denominator=cast(ZeroRule, c["zero_denominator"]),
            shown_only=bool(c.get("shown_only", False)),
        )
        for c in g["criteria"]
    )
    return Group(key, str(g["name_vi"]), str(g["name_en"]), Decimal(g["max"]), criteria)


def _int_map(m: Mapping[str, Any]) -> Mapping[str, int]:
    return MappingProxyType({str(k): int(v) for k, v in m.items()})


def _check(r: Ruleset) -> None:
    """Refuse an inconsistent ruleset at load time rather than mis-score later."""
    codes = [c.code for c in r.criteria()]
    if len(set(codes)) != len(codes):
        raise ValueError("a criterion code appears twice")
    for g in r.groups:
        if sum((c.max for c in g.criteria), Decimal(0)) != g.max:
            raise ValueError(f"group {g.key} max {g.max} is not the sum of its criteria")
        for c in g.criteria:
            if c.zero_denominator not in ("zero", "full"):
                raise ValueError(f"{c.code} zero_denominator must be 'zero' or 'full'")
            if c.shown_only != (c.max == 0):
                raise ValueError(f"{c.code} must be shown_only exactly when its max is 0")
            if not c.shown_only and (c.target is None or not 0 < c.target <= 1):
                raise ValueError(f"{c.code} needs a target in (0, 1]")
    if sum((g.max for g in r.groups), Decimal(0)) != 100:
        raise ValueError("the group maxima do not add up to 100")
    thresholds = [t for t, _ in r.bands]
    if not thresholds or thresholds != sorted(thresholds, reverse=True):
        raise ValueError("bands must be listed from the highest threshold down")
