"""Scoring rulesets, kept as data (``projections/rulesets/*.json``) so each Decision is a setting.

A ruleset says how counts become points: its groups and criteria (maxima, targets, the
zero-denominator rule), the classification bands, and the catalog deadlines of 1.1 and 1.2. It
states the date it takes effect (``effective_from``); a period is scored under the ruleset in
force at its view's end unless one is named (what-if for a draft, ``"draft": true``, which is
never in force by itself). What a criterion counts is not here but in the registry
(``projections.criteria``); every criterion a ruleset scores must be defined there.

Numbers are read as ``Decimal`` straight from the JSON text (never through ``float``), and the file
is checked on load: group maxima must equal the sum of their criteria and the whole must be 100.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from kernel.calendar import WorkCalendar
from kernel.errors import ConfigurationError, UserError
from kernel.lifecycle import LifecycleRules, load_lifecycle
from projections.criteria import REGISTRY, Registry

ZeroRule = Literal["zero", "full"]
_RULESET_PACKAGE = "projections.rulesets"


class UnknownRulesetError(UserError):
    """A ruleset name that no ruleset file defines."""


class UnknownCriterionError(UserError):
    """A criterion code that the ruleset does not define."""


class NoRulesetInForceError(UserError):
    """No (non-draft) ruleset had taken effect by the day asked about."""


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
    effective_from: date = date(2022, 6, 23)
    draft: bool = False
    description: str = ""
    publish_on_time_working_days: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"province": 5, "ministry": 20}), hash=False
    )
    public_update_working_days: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"province": 5, "ministry": 10}), hash=False
    )
    lifecycle: LifecycleRules = field(default_factory=load_lifecycle, compare=False,
                                      hash=False, repr=False)

    @property
    def calendar(self) -> WorkCalendar:
        """The working days the catalog deadlines are counted on (the lifecycle's calendar)."""
        return self.lifecycle.calendar

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


# ----- loading -------------------------------------------------------------------------------


def _shipped() -> dict[str, str]:
    root = resources.files(_RULESET_PACKAGE)
    return {p.name[:-5]: p.read_text("utf-8") for p in root.iterdir()
            if p.name.endswith(".json")}


def _from_dirs(dirs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise ConfigurationError(f"The ruleset directory {d!r} does not exist.")
        for f in sorted(path.glob("*.json")):
            out[f.stem] = f.read_text("utf-8")
    return out


def parse_ruleset(text: str, name: str, lifecycle: LifecycleRules | None = None,
                  registry: Registry = REGISTRY) -> Ruleset:
    """A ruleset from its JSON text, checked against the criteria ``registry``; a malformed
    file is a ``ConfigurationError``."""
    try:
        doc = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        ruleset = _parse(doc, lifecycle or load_lifecycle())
        _check(ruleset, registry)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"Ruleset file {name}.json is malformed: {exc}.") from None
    if ruleset.name != name:
        raise ConfigurationError(
            f"Ruleset file {name}.json names itself {ruleset.name!r}; the two must agree.")
    return ruleset


class Rulesets:
    """The rulesets known to this process: the shipped ones and those of extra directories."""

    def __init__(self, extra_dirs: Iterable[str] = (),
                 lifecycle: LifecycleRules | None = None,
                 registry: Registry = REGISTRY) -> None:
        texts = {**_shipped(), **_from_dirs(extra_dirs)}
        self.lifecycle = lifecycle or load_lifecycle()
        self._all = {name: parse_ruleset(t, name, self.lifecycle, registry)
                     for name, t in sorted(texts.items())}

    def names(self) -> tuple[str, ...]:
        return tuple(self._all)

    def get(self, name: str) -> Ruleset:
        r = self._all.get(name)
        if r is None:
            raise UnknownRulesetError(
                f"Ruleset {name!r} is unknown; the known rulesets are "
                f"{', '.join(self._all)}.")
        return r

    def in_force(self, day: date) -> Ruleset:
        """The non-draft ruleset with the latest ``effective_from`` on or before ``day``."""
        final = [r for r in self._all.values() if not r.draft]
        live = [r for r in final if r.effective_from <= day]
        if not live:
            first = min((r.effective_from for r in final), default=day)
            raise NoRulesetInForceError(
                f"No ruleset was in force on {day.isoformat()}; the earliest takes effect on "
                f"{first.isoformat()}.")
        return max(live, key=lambda r: (r.effective_from, r.name))

    def choose(self, name: str | None, day: date) -> Ruleset:
        """The named ruleset, or the one in force on ``day`` (a view's end)."""
        return self.get(name) if name else self.in_force(day)


def pick(rulesets: Ruleset | Rulesets, name: str | None, day: date) -> Ruleset:
    """The ruleset to score a view ending on ``day``: a pinned one, the named one, or the one
    in force."""
    if isinstance(rulesets, Ruleset):
        if name and name != rulesets.name:
            raise UnknownRulesetError(
                f"Ruleset {name!r} is unknown here; this view scores with {rulesets.name}.")
        return rulesets
    return rulesets.choose(name, day)


@cache
def default_rulesets(extra_dirs: tuple[str, ...] = ()) -> Rulesets:
    """The rulesets of this process (shipped, plus ``MOTCUA_RULESET_DIR``), loaded once."""
    return Rulesets(extra_dirs)


def available_rulesets() -> tuple[str, ...]:
    """Names of the rulesets shipped in ``projections/rulesets``."""
    return tuple(sorted(_shipped()))


def load_ruleset(name: str) -> Ruleset:
    """A shipped ruleset by name."""
    return default_rulesets().get(name)


def _parse(doc: dict[str, Any], lifecycle: LifecycleRules) -> Ruleset:
    groups = tuple(_group(g) for g in doc["groups"])
    ruleset = Ruleset(
        name=str(doc["name"]),
        groups=groups,
        bands=tuple((Decimal(t), str(label)) for t, label in doc["bands"]),
        effective_from=date.fromisoformat(str(doc.get("effective_from", "2022-06-23"))),
        draft=bool(doc.get("draft", False)),
        description=str(doc.get("description", "")),
        publish_on_time_working_days=_int_map(doc["publish_on_time_working_days"]),
        public_update_working_days=_int_map(doc["public_update_working_days"]),
        lifecycle=lifecycle,
    )
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


def _check(r: Ruleset, registry: Registry) -> None:
    """Refuse an inconsistent ruleset at load time rather than mis-score later."""
    codes = [c.code for c in r.criteria()]
    if len(set(codes)) != len(codes):
        raise ValueError("a criterion code appears twice")
    undefined = [c for c in codes if c not in registry.codes]
    if undefined:
        raise ValueError(f"criteria {', '.join(undefined)} have no definition in the registry "
                         "(projections/criteria.py)")
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
