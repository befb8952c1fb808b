"""The criteria registry: every criterion of the index declared once.

A criterion says what counts in its numerator and denominator and why a subject that is not
counted lost the points. Everything else is driven by these declarations: the fold's counter
layout (``projections.layout``), the counts of a view (``projections.views``), ``explain``, the
API's ruleset document and the page. How counts become points (maximum, target, the
zero-denominator rule) is the ruleset's (``projections/rulesets/*.json``).

Four kinds, by subject:

- ``SubjectCriterion`` over dossiers or feedback: ``den`` and ``num`` are requirements on a
  subject's flags (``has``, ``lacks``, ``has_any``); ``timely`` adds "on time at the view's end"
  (spec §4) to the numerator; ``den_attr`` keeps only dossiers whose procedure has a catalog
  attribute; ``num_alt`` replaces the numerator's requirements for dossiers whose procedure has
  an attribute; ``sum_of`` makes the numerator a sum of a fact over the denominator.
- ``ProcedureCriterion``: the agency's current procedures with an attribute, and those with a
  dossier in the period that meets some requirements (3.5, 3.5b, 4.5a).
- ``CatalogCriterion``: judged on the publishing authority's catalog entries (1.1–1.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from kernel.calendar import WorkCalendar, local_date
from projections import facts as F

Mode = Literal["all", "any", "none"]


@dataclass(frozen=True, order=True)
class Need:
    """One requirement on a subject's flags, with the reason given when it is not met."""

    bits: int
    mode: Mode
    why: str = field(compare=False, default="")

    def holds(self, flags: int) -> bool:
        if self.mode == "all":
            return flags & self.bits == self.bits
        if self.mode == "any":
            return bool(flags & self.bits)
        return not flags & self.bits

    @property
    def key(self) -> tuple[int, str]:
        return (self.bits, self.mode)


def has(bits: int, why: str) -> Need:
    """Every flag of ``bits`` is set."""
    return Need(bits, "all", why)


def has_any(bits: int, why: str) -> Need:
    """At least one flag of ``bits`` is set."""
    return Need(bits, "any", why)


def lacks(bits: int, why: str) -> Need:
    """No flag of ``bits`` is set."""
    return Need(bits, "none", why)


Needs = tuple[Need, ...]


def meets(needs: Iterable[Need], flags: int) -> bool:
    return all(n.holds(flags) for n in needs)


def unmet(needs: Iterable[Need], flags: int) -> list[str]:
    """The reasons of the requirements ``flags`` does not meet."""
    return [n.why for n in needs if not n.holds(flags)]


@dataclass(frozen=True)
class SubjectCriterion:
    """A criterion counted over dossiers or feedback of the agency's subtree and period."""

    code: str
    subject: Literal["dossier", "feedback"]
    num: Needs = ()
    den: Needs = ()
    timely: bool = False
    den_attr: str | None = None
    den_attr_why: str = ""
    num_alt: tuple[str, Needs] | None = None
    sum_of: str | None = None
    label: tuple[str, str] = ("", "")  # what the numerator counts (vi, en), for the page

    def num_needs(self, attrs: Mapping[str, Any] | None = None) -> Needs:
        """The numerator's flag requirements (those of the denominator included)."""
        if self.num_alt is not None and attrs and attrs.get(self.num_alt[0]):
            return self.den + self.num_alt[1]
        return self.den + self.num


@dataclass(frozen=True)
class ProcedureCriterion:
    """Distinct procedures of the agency (current, with ``proc_attr``), and those with at least
    one dossier in the period that meets ``dossier``."""

    code: str
    proc_attr: str
    dossier: Needs
    why: str
    label: tuple[str, str] = ("", "")  # what the numerator counts (vi, en), for the page


@dataclass(frozen=True)
class CatalogContext:
    """What judging a catalog entry needs: the period, the view's end, the deadlines."""

    start: date
    last: date  # the period's last day, or the local date of the view's end if earlier
    calendar: WorkCalendar
    publish_days: Mapping[str, int]
    public_days: Mapping[str, int]

    def decisions(self, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The entry's publication decisions dated in the period (up to the view's end)."""
        return [d for d in entry.get("decisions", ())
                if self.start <= date.fromisoformat(d["decision_date"]) <= self.last]


Verdict = tuple[bool, bool]  # (in numerator, in denominator)


@dataclass(frozen=True)
class CatalogCriterion:
    """Judged per catalog entry of the publishing authority (the root of the agency's tree)."""

    code: str
    judge: Callable[[Mapping[str, Any], CatalogContext], Verdict]
    why: str
    label: tuple[str, str] = ("", "")  # what the numerator counts (vi, en), for the page


Criterion = SubjectCriterion | ProcedureCriterion | CatalogCriterion


# ----- catalog judgements (spec §3, 1.1–1.3) -------------------------------------------------


def active(entry: Mapping[str, Any]) -> bool:
    """Not repealed (the catalog as it stands now, spec §3)."""
    return entry.get("repealed") is None


def _publicized(entry: Mapping[str, Any]) -> list[date]:
    return [local_date(datetime.fromisoformat(t)) for t in entry.get("publicized", ())]


def _publish_on_time(e: Mapping[str, Any], ctx: CatalogContext) -> Verdict:
    decisions = ctx.decisions(e)
    if not decisions:
        return False, False
    ok = all(
        ctx.calendar.add_working_days(date.fromisoformat(d["decision_date"]),
                                      ctx.publish_days.get(d.get("authority_level",
                                                                 "province"), 5))
        <= date.fromisoformat(d["legal_basis_effective_date"])
        for d in decisions)
    return ok, True


def _public_update_on_time(e: Mapping[str, Any], ctx: CatalogContext) -> Verdict:
    decisions = ctx.decisions(e)
    if not decisions:
        return False, False
    publicized = _publicized(e)
    ok = True
    for d in decisions:
        dd = date.fromisoformat(d["decision_date"])
        deadline = ctx.calendar.add_working_days(
            dd, ctx.public_days.get(d.get("authority_level", "province"), 5))
        if not any(dd <= p <= deadline for p in publicized):
            ok = False
    return ok, True


def _public_content_full(e: Mapping[str, Any], ctx: CatalogContext) -> Verdict:
    current = bool(e.get("publicized")) and active(e)
    return current and bool(e.get("parts_complete")), current


# ----- the registry --------------------------------------------------------------------------

_NOT_FINISHED = "not finished"
_NO_E_RESULT = "no electronic result"

DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    CatalogCriterion("PUBLISH_ON_TIME", _publish_on_time,
                     "a publication decision was late for its legal basis",
                     label=("thủ tục công bố đúng hạn",
                            "procedures published on time")),
    CatalogCriterion("PUBLIC_UPDATE_ON_TIME", _public_update_on_time,
                     "not made public in the national database in time",
                     label=("thủ tục công khai đúng hạn",
                            "procedures made public on time")),
    CatalogCriterion("PUBLIC_CONTENT_FULL", _public_content_full, "published parts incomplete",
                     label=("thủ tục công khai đầy đủ nội dung",
                            "procedures published in full")),
    SubjectCriterion("DOSSIER_SYNC", "dossier",
                     num=(has(F.SYNCED, "not synced to the national portal"),),
                     label=("hồ sơ đồng bộ lên Cổng DVCQG",
                            "dossiers synced to the national portal")),
    SubjectCriterion("ON_TIME", "dossier", timely=True,
                     label=("hồ sơ giải quyết đúng hạn",
                            "dossiers processed on time")),
    SubjectCriterion("AVG_PROCESSING_TIME", "dossier",
                     den=(has(F.FINISHED, _NOT_FINISHED),), sum_of="processing_days",
                     label=("ngày làm việc trên hồ sơ đã giải quyết",
                            "working days per finished dossier")),
    SubjectCriterion("ONLINE_FULL_PROCESS", "dossier",
                     num=(has(F.FULL_ONLINE, "not processed fully online"),),
                     den_attr="full_online_eligible",
                     den_attr_why="its procedure is not eligible for full online service",
                     label=("hồ sơ trực tuyến toàn trình (TTHC đủ điều kiện)",
                            "dossiers fully online (eligible procedures)")),
    SubjectCriterion("PAYMENT_DOSSIER_ONLINE", "dossier",
                     den=(has(F.FEE_REQUIRED, "no fee obligation"),),
                     num=(has(F.PAID_ONLINE, "fee not paid online"),),
                     label=("hồ sơ thanh toán trực tuyến",
                            "fee-bearing dossiers paid online")),
    ProcedureCriterion("PAYMENT_FORMALITY_FEE_DOSSIER", "fee_bearing",
                       (has(F.FEE_REQUIRED, ""),), "no fee-bearing dossier in the period",
                       label=("TTHC có phí phát sinh hồ sơ",
                            "fee-bearing procedures with dossiers")),
    ProcedureCriterion("PAYMENT_FORMALITY_TRANSACTION", "fee_bearing",
                       (has(F.FEE_REQUIRED | F.PAID_ONLINE, ""),),
                       "no dossier paid online in the period",
                       label=("TTHC có phí có thanh toán trực tuyến",
                            "fee-bearing procedures paid online")),
    SubjectCriterion("ORIGINAL_RESULT_AVAILABLE", "dossier",
                     num=(has(F.E_RESULT, _NO_E_RESULT),),
                     label=("hồ sơ có kết quả điện tử",
                            "dossiers with an electronic result")),
    SubjectCriterion("DOSSIER_DIGITIZED", "dossier",
                     num=(has(F.DIGITIZED, "not digitized"),),
                     num_alt=("paper_result_required",
                              (has(F.DIGITIZED, "not digitized"),
                               has(F.E_RESULT, "no electronic result although the procedure "
                                               "requires a paper result"))),
                     label=("hồ sơ được số hóa",
                            "dossiers digitized")),
    SubjectCriterion("REUSED_DIGITIZED_DATA", "dossier",
                     num=(has(F.REUSED_DIGITIZED_DATA, "did not reuse digitized data"),),
                     label=("hồ sơ tái sử dụng dữ liệu số hóa",
                            "dossiers reusing digitized data")),
    SubjectCriterion("SYNCED_WITH_DVCQG_PERSONAL_STORAGE", "dossier",
                     num=(has_any(F.FROM_PERSONAL_REPOSITORY | F.PUSHED_TO_REPOSITORY,
                                  "nothing taken from or pushed to the citizen's data "
                                  "repository"),),
                     label=("hồ sơ gắn với kho dữ liệu cá nhân",
                            "dossiers linked to the personal data store")),
    ProcedureCriterion("CITIZEN_DATA_CONNECTED_FORMALITY", "individual_applicants",
                       (has(F.POPULATION_DATA_USED, ""),),
                       "no dossier used population data in the period",
                       label=("TTHC cá nhân có khai thác dữ liệu dân cư",
                            "individual procedures using population data")),
    SubjectCriterion("CITIZEN_DATA_CONNECTED_DOSSIER", "dossier",
                     num=(has(F.POPULATION_DATA_USED, "population data not used"),),
                     label=("hồ sơ khai thác dữ liệu dân cư",
                            "dossiers using population data")),
    SubjectCriterion("ELECTRONIC_CERTIFIED_COPY", "dossier",
                     num=(has(F.E_RESULT, _NO_E_RESULT),), den_attr="certified_copy",
                     den_attr_why="its procedure is not a certified-copy procedure",
                     label=("hồ sơ chứng thực có bản sao điện tử",
                            "certified-copy dossiers with an e-copy")),
    SubjectCriterion("PETITION_CLASSIFICATION_TTHC", "feedback",
                     num=(has(F.FB_ABOUT_PROCEDURE, "not classified as about procedures"),),
                     label=("phản ánh về thủ tục hành chính",
                            "feedback items about procedures")),
    SubjectCriterion("PETITION_CLASSIFICATION_STAFF", "feedback",
                     num=(has(F.FB_ABOUT_STAFF, "not classified as about staff conduct"),),
                     label=("phản ánh về cán bộ, công chức",
                            "feedback items about staff")),
    SubjectCriterion("PETITION_PROCESSING_ON_TIME", "feedback", timely=True,
                     label=("phản ánh xử lý đúng hạn",
                            "feedback items answered on time")),
    SubjectCriterion("PETITION_HANDLING_SATISFACTION", "feedback", timely=True,
                     num=(lacks(F.FB_RATED_UNSATISFIED, "rated not satisfied"),
                          lacks(F.FB_RECOMPLAINED, "complained about again")),
                     label=("phản ánh xử lý hài lòng",
                            "feedback items handled satisfactorily")),
    SubjectCriterion("DOSSIER_RECEIVING_SATISFACTION", "dossier", timely=True,
                     num=(lacks(F.RATED_UNSATISFIED, "rated not satisfied"),
                          lacks(F.FEEDBACK_LINKED, "has feedback about it")),
                     label=("hồ sơ không trễ hạn, không bị phản ánh",
                            "dossiers neither late nor complained about")),
)


class Registry:
    """A set of criteria by code (the default one, or one a test extends)."""

    def __init__(self, criteria: Iterable[Criterion]) -> None:
        self.criteria: tuple[Criterion, ...] = tuple(criteria)
        self.by_code: dict[str, Criterion] = {c.code: c for c in self.criteria}
        if len(self.by_code) != len(self.criteria):
            raise ValueError("a criterion code is declared twice")
        for c in self.criteria:
            if isinstance(c, SubjectCriterion) and c.timely and (c.den_attr or c.num_alt):
                raise ValueError(f"{c.code}: a timely criterion cannot depend on the catalog")
        self.codes = frozenset(self.by_code)

    def subject_criteria(self, subject: str) -> list[SubjectCriterion]:
        return [c for c in self.criteria
                if isinstance(c, SubjectCriterion) and c.subject == subject]

    def procedure_criteria(self) -> list[ProcedureCriterion]:
        return [c for c in self.criteria if isinstance(c, ProcedureCriterion)]

    def catalog_criteria(self) -> list[CatalogCriterion]:
        return [c for c in self.criteria if isinstance(c, CatalogCriterion)]

    def extended(self, *more: Criterion) -> Registry:
        return Registry((*self.criteria, *more))


REGISTRY = Registry(DEFAULT_CRITERIA)


# ----- one subject at a time (explain) -------------------------------------------------------


def late_why(kind: str, judged: int, due_day: int, flags: int, e_day: int,
             answer_days: int) -> str | None:
    """Why a subject is not on time at a view ending on day ``e_day``, or ``None``."""
    due = date.fromordinal(due_day).isoformat()
    if judged == 1 or (judged == F.OPEN and due_day >= e_day):
        return None
    if kind == "feedback":
        if judged == 0:
            return f"answered after {answer_days} working days"
        return f"unanswered past {answer_days} working days"
    if judged == 0:
        if flags & F.MULTIPLE_SUPPLEMENTS:
            return "more than one supplement request"
        return f"finished after its due time ({due})"
    return f"still open past its due date {due}"


def membership(c: SubjectCriterion, flags: int, judged: int, due_day: int,
               attrs: Mapping[str, Any] | None, e_day: int,
               answer_days: int) -> tuple[bool, bool, list[str]]:
    """How one subject counts in a criterion: (in numerator, in denominator, why not)."""
    if c.den_attr is not None and not (attrs and attrs.get(c.den_attr)):
        return False, False, [c.den_attr_why]
    if not meets(c.den, flags):
        return False, False, unmet(c.den, flags)
    needs = c.num_needs(attrs)
    reasons = []
    if c.timely:
        late = late_why(c.subject, judged, due_day, flags, e_day, answer_days)
        if late is not None:
            reasons.append(late)
    reasons += unmet(needs, flags)
    return not reasons, True, reasons
