"""A seeded, reproducible province: the actions its one-stop-shop systems would send.

``generate(cfg)`` yields ``motcua.action/1`` dicts in global time order: the agency tree and the
procedure catalog first, then dossier and feedback lifecycles. Every random draw comes from one
``random.Random(cfg.seed)`` and nothing reads the clock, so a seed always gives the same bytes.

Times are handled as integer "local seconds" (``date.toordinal() * 86400 + seconds of the day``,
Vietnam time, +07:00 all year) because a million dossiers make datetime arithmetic the bottleneck.
Each dossier's whole lifecycle is drawn when it is received and its actions wait in a heap until
the generator's clock (the next reception) passes them, so memory holds only the open dossiers.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from kernel.calendar import WorkCalendar, add_processing_time

SCHEMA = "motcua.action/1"
TZ = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has had no offset change since 1975
DAY = 86_400
HOUR = 3_600
MINUTE = 60
_NEVER = 1 << 62
_STUCK_SHARE = 0.08  # of on-time dossiers with a supplement request, never completed


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; the rates default to figures like those provinces publish."""

    agencies: int = 20
    dossiers: int = 5000
    seed: int = 1
    start: date = date(2026, 1, 1)
    days: int = 300
    province_id: str = "H15"
    province_name: str = "Tỉnh Đắk Lắk"
    source: str = "daklak-igate"
    procedures: int = 80
    repealed: int = 2
    # dossier rates (of all dossiers unless said otherwise)
    on_time_rate: float = 0.886
    e_result_rate: float = 0.64
    digitized_rate: float = 0.21
    online_payment_rate: float = 0.88  # of fee-bearing dossiers
    online_rate: float = 0.26  # channel online
    full_online_rate: float = 0.9  # of online dossiers of eligible procedures
    due_at_rate: float = 0.9  # the rest leave the due time to the procedure's processing time
    supplement_rate: float = 0.08
    withdrawal_rate: float = 0.02
    rejected_rate: float = 0.04  # of resolved
    stopped_rate: float = 0.02  # of resolved
    result_returned_rate: float = 0.9  # of resolved
    apology_rate_of_late: float = 0.5
    late_mark_rate_of_late: float = 0.6
    rating_rate: float = 0.3  # of resolved
    unsatisfied_rate: float = 0.05  # of ratings
    synced_rate: float = 0.95
    reused_data_rate: float = 0.25
    personal_repository_rate: float = 0.3  # of online dossiers
    population_data_rate: float = 0.55  # of dossiers of procedures for individuals
    # feedback (phản ánh, kiến nghị)
    feedback_per_dossier: float = 0.01
    feedback_linked_rate: float = 0.6
    feedback_answer_on_time_rate: float = 0.9
    feedback_unanswered_rate: float = 0.03
    feedback_rating_rate: float = 0.4
    feedback_unsatisfied_rate: float = 0.15
    recomplaint_rate: float = 0.05
    # catalog
    publish_on_time_rate: float = 0.9
    publicized_rate: float = 0.95
    publicize_on_time_rate: float = 0.9

    def __post_init__(self) -> None:
        for name, low in (("agencies", 1), ("dossiers", 0), ("days", 1), ("procedures", 1)):
            if getattr(self, name) < low:
                raise ValueError(
                    f"SimConfig.{name} must be at least {low}, got {getattr(self, name)}."
                )
        if not 0 <= self.repealed < self.procedures:
            raise ValueError(f"SimConfig.repealed must be in [0, procedures), got {self.repealed}.")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_of_late")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"SimConfig.{f.name} must be between 0 and 1, got {value}.")
        if self.feedback_per_dossier < 0:
            raise ValueError("SimConfig.feedback_per_dossier must not be negative.")


def generate(cfg: SimConfig) -> Iterator[dict[str, Any]]:
    """The province's actions, as dicts, in a realistic global time order."""
    for _, action in _Province(cfg).actions():
        yield action


def write_ndjson(cfg: SimConfig, path: str | Path) -> int:
    """Write the actions to ``path``, one JSON object per line; returns how many."""
    count = 0
    buffer: list[bytes] = []
    dumps = orjson.dumps
    with open(path, "wb") as out:
        for action in generate(cfg):
            buffer.append(dumps(action))
            count += 1
            if len(buffer) >= 8192:
                buffer.append(b"")
                out.write(b"\n".join(buffer))
                buffer.clear()
        if buffer:
            buffer.append(b"")
            out.write(b"\n".join(buffer))
    return count


def simulate_live(
    cfg: SimConfig, now: datetime, ahead_days: int = 1
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """The province with its window ending ``ahead_days`` after ``now``'s date, as (time, action).

    A live feeder publishes what is at or before ``now`` at once and sleeps until each later one.
    """
    today = now.astimezone(TZ).date()
    start = today - timedelta(days=cfg.days - ahead_days)
    for t, action in _Province(replace(cfg, start=start)).actions():
        yield _to_datetime(t), action


# --- time helpers -----------------------------------------------------------------------------

_day_text: dict[int, str] = {}
_time_text: list[str] = []


def _format(t: int) -> str:
    """RFC 3339 text of a local-seconds time; days and times of day are cached as text."""
    if not _time_text:
        _time_text.extend(
            f"T{s // HOUR:02d}:{s // MINUTE % 60:02d}:{s % MINUTE:02d}+07:00" for s in range(DAY)
        )
    day, s = divmod(t, DAY)
    text = _day_text.get(day)
    if text is None:
        text = _day_text[day] = date.fromordinal(day).isoformat()
    return text + _time_text[s]


def _to_datetime(t: int) -> datetime:
    day, s = divmod(t, DAY)
    return datetime.combine(date.fromordinal(day), datetime.min.time(), TZ) + timedelta(seconds=s)


def _from_datetime(dt: datetime) -> int:
    local = dt.astimezone(TZ)
    return local.toordinal() * DAY + local.hour * HOUR + local.minute * MINUTE + local.second


def _office(t: int, lo: int, hi: int) -> int:
    """Move ``t`` into office hours (earlier, same or previous day) if it stays in (lo, hi]."""
    s = t % DAY
    if 7 * HOUR + 30 * MINUTE <= s <= 17 * HOUR + 30 * MINUTE:
        return t
    back = DAY if s < 7 * HOUR + 30 * MINUTE else 0
    moved = t - s - back + 15 * HOUR + t % (2 * HOUR)
    return moved if lo < moved <= hi else t


# --- names ------------------------------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split("|") if name.strip())


_DEPARTMENTS = _names("""
    Sở Tư pháp | Sở Tài chính | Sở Xây dựng | Sở Nông nghiệp và Môi trường | Sở Y tế |
    Sở Giáo dục và Đào tạo | Sở Công Thương | Sở Nội vụ | Sở Khoa học và Công nghệ |
    Sở Văn hóa, Thể thao và Du lịch | Sở Dân tộc và Tôn giáo | Sở Ngoại vụ | Công an tỉnh |
    Ban Quản lý các khu công nghiệp tỉnh | Thanh tra tỉnh
""")
_COMMUNES = _names("""
    xã Hòa Phú | phường Buôn Ma Thuột | xã Ea Kar | phường Tân An | xã Krông Búk | xã Ea Tu |
    xã Hòa Xuân | phường Tân Lập | xã Cư M'gar | xã Buôn Đôn | xã Ea Súp | xã Krông Pắc |
    xã Ea H'leo | xã Krông Năng | xã M'Drắk | xã Krông Bông | xã Ea Knốp | xã Dliê Ya |
    xã Cư Kuin | xã Lắk | phường Tuy Hòa | phường Sông Cầu | xã Đồng Xuân | xã Sơn Hòa |
    xã Tuy An | xã Phú Hòa | phường Đông Hòa | xã Tây Hòa | xã Sông Hinh | phường Ea Kao |
    xã Hòa Thắng | xã Ea Drăng | phường Thành Nhất | xã Ea Ning
""")
# Procedures whose name says "chứng thực" are the certified-copy ones (criterion 4.6).
_PROCEDURES = _names("""
    Đăng ký khai sinh | Đăng ký kết hôn | Đăng ký khai tử |
    Chứng thực bản sao từ bản chính giấy tờ, văn bản |
    Cấp bản sao điện tử có chứng thực từ bản chính |
    Chứng thực chữ ký trong các giấy tờ, văn bản | Cấp phiếu lý lịch tư pháp |
    Cấp giấy phép xây dựng nhà ở riêng lẻ | Đăng ký thành lập hộ kinh doanh |
    Đăng ký thay đổi nội dung đăng ký hộ kinh doanh |
    Cấp giấy chứng nhận quyền sử dụng đất lần đầu |
    Đăng ký biến động đất đai | Cấp giấy phép kinh doanh bán lẻ rượu |
    Cấp giấy phép lao động cho người nước ngoài | Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh |
    Đăng ký thường trú | Xác nhận tình trạng hôn nhân | Trích lục hộ tịch |
    Cấp giấy chứng nhận đủ điều kiện an toàn thực phẩm | Thẩm định thiết kế xây dựng |
    Cấp giấy phép môi trường | Đăng ký hoạt động giáo dục nghề nghiệp |
    Công nhận trường đạt chuẩn quốc gia | Cấp giấy phép hoạt động dược | Hỗ trợ chi phí mai táng |
    Trợ cấp xã hội hằng tháng | Đăng ký nhận nuôi con nuôi | Cấp giấy phép tổ chức lễ hội |
    Đăng ký hoạt động tín ngưỡng | Cấp giấy chứng nhận đăng ký doanh nghiệp |
    Cấp giấy phép khai thác nước mặt | Chuyển mục đích sử dụng đất | Cấp giấy phép quảng cáo |
    Cấp giấy phép vận tải bằng xe ô tô | Đăng ký lại khai sinh | Thay đổi, cải chính hộ tịch |
    Cấp giấy xác nhận kiến thức an toàn thực phẩm | Phê duyệt phương án phòng cháy chữa cháy |
    Cấp chứng chỉ hành nghề dược | Giải quyết chế độ hưu trí
""")
_SUPPLEMENT_REASONS = _names("""
    Thiếu bản sao giấy tờ tùy thân | Bản vẽ chưa đúng quy cách | Thiếu xác nhận của địa phương |
    Thông tin trong tờ khai chưa khớp
""")
_APOLOGY_REASONS = _names("""
    Hồ sơ cần xác minh thêm với cơ quan liên quan | Chờ ý kiến phối hợp của đơn vị khác |
    Hệ thống liên thông gặp sự cố
""")
_LATE_REASONS = _names("Chờ kết quả xác minh | Quá tải hồ sơ | Chờ ý kiến của cơ quan cấp trên")


# --- the province -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Procedure:
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


# A scheduled action: (time, sequence, type, subject field, subject id, data).
_Scheduled = tuple[int, int, str, str, str, dict[str, Any]]


class _Province:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.calendar = WorkCalendar()
        self._wd: dict[tuple[int, int], int] = {}
        self.horizon = (cfg.start.toordinal() + cfg.days) * DAY
        self.heap: list[_Scheduled] = []
        self.seq = 0
        self.feedbacks = 0
        self.per_agency_day: dict[tuple[str, int], int] = {}
        # Only approved, resolved dossiers get an e-result: those that were neither withdrawn nor
        # left waiting on the applicant (see _dossier), and that end before the window closes.
        approved = (
            1 - cfg.withdrawal_rate - cfg.supplement_rate * _STUCK_SHARE * cfg.on_time_rate
        ) * (1 - cfg.rejected_rate - cfg.stopped_rate)
        self.p_e_result = cfg.e_result_rate / max(approved, 1e-9)
        self.due_span_sum = 0
        self.due_span_count = 0
        self.e_delay_sum = 0
        self.e_delay_count = 0

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]; ``randint`` costs three Python frames a draw."""
        return low + int(self.rng.random() * (high - low + 1))

    def add_wd(self, day: int, n: int) -> int:
        """The n-th working day after ordinal ``day``, as an ordinal."""
        key = (day, n)
        out = self._wd.get(key)
        if out is None:
            out = self._wd[key] = self.calendar.add_working_days(
                date.fromordinal(day), n
            ).toordinal()
        return out

    def is_working(self, day: int) -> bool:
        return self.add_wd(day - 1, 1) == day

    def push(
        self, t: int, type_: str, subject_field: str, subject: str, data: dict[str, Any]
    ) -> None:
        if t < self.horizon:
            self.seq += 1
            heapq.heappush(self.heap, (t, self.seq, type_, subject_field, subject, data))

    def actions(self) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg = self.cfg
        procedures = self._catalog()
        active_from = [p.active_from for p in procedures]
        weights = list(
            accumulate(
                1.0 / (i + 1) ** 0.8
                for i in self.rng.sample(range(len(procedures)), len(procedures))
            )
        )
        prefix = f"sim-{cfg.seed}-"
        n = 0
        heap = self.heap
        pop = heapq.heappop

        def action(item: tuple[Any, ...]) -> tuple[int, dict[str, Any]]:
            nonlocal n
            t, _, type_, subject_field, subject, data = item
            n += 1
            return t, {
                "schema": SCHEMA,
                "action_id": f"{prefix}{n}",
                "source": cfg.source,
                "type": type_,
                "occurred_at": _format(t),
                subject_field: subject,
                "data": data,
            }

        for t0, channel in self._receptions():
            self._dossier(t0, channel, self._pick(procedures, active_from, weights, t0))
            while heap and heap[0][0] <= t0:
                yield action(pop(heap))
        while heap:
            yield action(pop(heap))

    # --- catalog ------------------------------------------------------------------------------

    def _catalog(self) -> list[_Procedure]:
        """Schedule the agency tree and the procedures; the procedures, by when they apply."""
        cfg, rng = self.cfg, self.rng
        start = cfg.start.toordinal()
        registered = (start - 400) * DAY + 8 * HOUR
        pid = cfg.province_id
        self.push(
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
            (departments, "department", list(_DEPARTMENTS)),
            (communes, "commune", [f"UBND {c}" for c in _COMMUNES]),
        ):
            rng.shuffle(names)
            for i, agency_id in enumerate(ids):
                name = names[i % len(names)] + (
                    f" {i // len(names) + 1}" if i >= len(names) else ""
                )
                self.push(
                    registered + MINUTE,
                    "agency_registered",
                    "agency_id",
                    agency_id,
                    {"name": name, "parent_id": pid, "level": level},
                )
        repealed = set(rng.sample(range(1, cfg.procedures), cfg.repealed))
        taken: set[str] = set()
        out = []
        for i in range(cfg.procedures):
            procedure_id = self._procedure_id(taken)
            name = _PROCEDURES[i % len(_PROCEDURES)]
            certified = "chứng thực" in name.lower()
            if i >= len(_PROCEDURES):
                name = f"{name} ({i // len(_PROCEDURES) + 1})"
            at_commune = bool(communes) and (certified or rng.random() < 0.4)
            agencies = tuple(communes) if at_commune else (rng.choice(departments),)
            # The first procedures (and 60% overall) were decided before the window opened.
            if i < 3 or rng.random() < 0.6:
                decided = start - self.between(30, 360)
            else:
                decided = start + self.between(0, max(0, cfg.days * 2 // 3))
            decided = self.add_wd(decided - 1, 1)
            if rng.random() < cfg.publish_on_time_rate:
                effective = self.add_wd(decided, 5 + self.between(0, 20))
            else:
                effective = self.add_wd(decided, self.between(1, 4))
            unit, value = self._processing_time()
            proc = _Procedure(
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
                repealed_at=_NEVER,
            )
            published = decided * DAY + 8 * HOUR + self.between(0, 8 * HOUR)
            self.push(
                published,
                "procedure_published",
                "procedure_id",
                procedure_id,
                {
                    "name": name,
                    "authority_id": pid,
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
            if rng.random() < cfg.publicized_rate:
                late = rng.random() >= cfg.publicize_on_time_rate
                day = self.add_wd(decided, self.between(6, 15) if late else self.between(1, 5))
                self.push(
                    day * DAY + 9 * HOUR + self.between(0, 7 * HOUR),
                    "procedure_publicized",
                    "procedure_id",
                    procedure_id,
                    {},
                )
            if i in repealed:
                low = max(effective + 7, start + cfg.days // 2)
                day = self.add_wd(low + self.between(0, max(0, cfg.days // 3)), 1)
                at = day * DAY + 10 * HOUR
                proc = replace(proc, repealed_at=at)
                self.push(
                    at,
                    "procedure_repealed",
                    "procedure_id",
                    procedure_id,
                    {"decision_date": date.fromordinal(day).isoformat()},
                )
            out.append(proc)
        order = sorted(range(len(out)), key=lambda k: out[k].active_from)
        return [out[k] for k in order]

    def _procedure_id(self, taken: set[str]) -> str:
        while True:
            candidate = f"{self.rng.choice((1, 1, 1, 2, 3))}.{self.rng.randrange(1, 14000):06d}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    def _processing_time(self) -> tuple[str, int]:
        r = self.rng.random()
        if r < 0.85:
            return "working_days", self.rng.choice((3, 3, 5, 5, 5, 7, 10, 10, 12, 15, 20))
        if r < 0.93:
            return "hours", self.rng.choice((4, 8, 8, 24))
        if r < 0.98:
            return "days", self.rng.choice((7, 15, 30))
        return "months", 1

    def _pick(
        self, procedures: list[_Procedure], active_from: list[int], weights: list[float], t: int
    ) -> _Procedure:
        k = max(1, bisect_right(active_from, t))
        rng = self.rng
        for _ in range(20):
            p = procedures[bisect_right(weights, rng.random() * weights[k - 1], 0, k - 1)]
            if p.repealed_at > t:
                return p
        return next((p for p in procedures[:k] if p.repealed_at > t), procedures[0])

    # --- dossiers -----------------------------------------------------------------------------

    def _receptions(self) -> Iterator[tuple[int, str]]:
        """(reception time, channel) of every dossier, in time order."""
        cfg, rng = self.cfg, self.rng
        first = cfg.start.toordinal()
        working = [self.is_working(first + i) for i in range(cfg.days)]
        weight = [100 if w else 8 for w in working]
        total = sum(weight)
        off_share = sum(w for w, ok in zip(weight, working, strict=True) if not ok) / total
        online_on_working = min(1.0, max(0.0, (cfg.online_rate - off_share) / (1 - off_share)))
        cumulative = 0
        done = 0
        for i in range(cfg.days):
            cumulative += weight[i]
            upto = cfg.dossiers * cumulative // total
            count, done = upto - done, upto
            base = (first + i) * DAY
            times = []
            for _ in range(count):
                if not working[i] or rng.random() < online_on_working:
                    times.append((base + self.between(6 * HOUR, 23 * HOUR), "online"))
                else:
                    morning = rng.random() < 0.55
                    lo = 7 * HOUR + 30 * MINUTE if morning else 13 * HOUR + 30 * MINUTE
                    channel = "postal" if rng.random() < 0.1 else "direct"
                    times.append((base + lo + self.between(0, 4 * HOUR - 30 * MINUTE), channel))
            times.sort()
            yield from times

    def _due(self, t0: int, p: _Procedure) -> int:
        """The due time the sender would write: processing time from reception, at 17:00."""
        day = t0 // DAY
        if p.unit == "hours":
            return t0 + p.value * HOUR
        if p.unit == "working_days":
            return self.add_wd(day, p.value) * DAY + 17 * HOUR
        if p.unit == "days":
            return (day + p.value) * DAY + 17 * HOUR
        d = date.fromordinal(day)
        month0 = d.month - 1 + p.value
        year, month = d.year + month0 // 12, month0 % 12 + 1
        return date(year, month, min(d.day, 28)).toordinal() * DAY + 17 * HOUR

    def _dossier_id(self, agency: str, t0: int) -> str:
        day = t0 // DAY
        key = (agency, day)
        n = self.per_agency_day.get(key, 0) + 1
        self.per_agency_day[key] = n
        if n == 1 and len(self.per_agency_day) > 4096:
            self.per_agency_day = {k: v for k, v in self.per_agency_day.items() if k[1] >= day}
        return f"{agency}-{_format(day * DAY)[2:10].replace('-', '')}-{n:04d}"

    def _dossier(self, t0: int, channel: str, p: _Procedure) -> None:
        cfg, rng = self.cfg, self.rng
        r = rng.random
        agency = p.agencies[int(r() * len(p.agencies))]
        dossier_id = self._dossier_id(agency, t0)
        sent_due = self._due(t0, p)
        data: dict[str, Any] = {"agency_id": agency, "procedure_id": p.id, "channel": channel}
        if r() < cfg.due_at_rate:
            data["due_at"] = _format(sent_due)
            due = sent_due
        else:
            due = _from_datetime(
                add_processing_time(_to_datetime(t0), p.value, p.unit, self.calendar)
            )
        online = channel == "online"
        data["full_online"] = online and p.eligible and r() < cfg.full_online_rate
        data["fee_required"] = p.fee_bearing
        data["reused_digitized_data"] = r() < cfg.reused_data_rate
        data["from_personal_repository"] = online and r() < cfg.personal_repository_rate
        data["population_data_used"] = p.individual and r() < cfg.population_data_rate
        events: list[tuple[int, str, dict[str, Any]]] = [(t0, "received", data)]

        # Early events fall in the first third of the time allowed (at most three hours).
        early_span = max(2 * MINUTE, min(3 * HOUR, (due - t0) // 3))
        last = t0
        if r() < cfg.synced_rate:
            last = max(last, t := t0 + self.between(MINUTE, early_span))
            events.append((t, "synced", {}))
        if r() < cfg.digitized_rate:
            last = max(last, t := t0 + self.between(MINUTE, early_span))
            events.append((t, "digitized", {"components": self.between(1, 6)}))
        if p.fee_bearing and r() < cfg.online_payment_rate:
            last = max(last, t := t0 + self.between(MINUTE, early_span))
            events.append(
                (
                    t,
                    "paid_online",
                    {
                        "gateway": "national_portal" if r() < 0.6 else "local_gateway",
                        "amount_vnd": p.fee_vnd,
                    },
                )
            )

        self.due_span_sum += due - t0
        self.due_span_count += 1
        late = r() < self._late_chance()
        withdrawn = not late and r() < cfg.withdrawal_rate / max(cfg.on_time_rate, 1e-9)
        if withdrawn and due - last > 2 * MINUTE:
            events.append((last + self.between(MINUTE, due - last), "withdrawn", {}))
            self._schedule(dossier_id, events)
            self._feedback(agency, dossier_id, t0, linkable=False)
            return

        shifted = due
        if r() < cfg.supplement_rate:
            requests = 2 if late and r() < 0.15 else 1
            for _ in range(requests):
                ask = last + MINUTE + int((shifted - last) * (0.05 + 0.45 * r()))
                events.append(
                    (ask, "supplement_requested", {"reason": rng.choice(_SUPPLEMENT_REASONS)})
                )
                if not late and requests == 1 and r() < _STUCK_SHARE:
                    # Still waiting on the applicant: judged at the request time, stays open.
                    self._schedule(dossier_id, events)
                    self._feedback(agency, dossier_id, t0, linkable=True)
                    return
                gap = HOUR + int(rng.expovariate(1 / (3 * DAY)))
                last = ask + gap
                shifted += gap
                events.append((last, "supplement_completed", {}))

        if late:
            delay = MINUTE + int(rng.expovariate(1 / (2 * DAY)))
            if r() < 0.1:
                delay += self.between(5 * DAY, 30 * DAY)
            end = _office(shifted + delay, shifted, _NEVER)
            self._late_extras(events, t0, due, shifted, end, max(last, t0))
        else:
            span = shifted - last
            end = last + max(MINUTE, int(span * (0.03 + 0.97 * r() ** 1.3)))
            end = _office(min(end, shifted), last, shifted)
        outcome = "approved"
        x = r()
        if x < cfg.rejected_rate:
            outcome = "rejected"
        elif x < cfg.rejected_rate + cfg.stopped_rate:
            outcome = "stopped"
        events.append((end, "resolved", {"outcome": outcome}))
        after = end
        if outcome == "approved" and r() < self._e_result_chance():
            after = end + self.between(MINUTE, 2 * HOUR)
            self.e_delay_sum += after - t0
            self.e_delay_count += 1
            events.append(
                (
                    after,
                    "e_result_issued",
                    {"result_ref": f"KQ-{dossier_id}", "pushed_to_repository": r() < 0.5},
                )
            )
        if r() < cfg.result_returned_rate:
            after += self.between(10 * MINUTE, 3 * DAY)
            events.append((after, "result_returned", {}))
        if r() < cfg.rating_rate:
            satisfied = r() >= cfg.unsatisfied_rate
            rating: dict[str, Any] = {"satisfied": satisfied}
            if r() < 0.5:
                lo, hi = (4, 5) if satisfied else (1, 3)
                rating["scores"] = {
                    c: self.between(lo, hi) for c in ("tien_do", "thai_do", "ket_qua")
                }
            events.append((after + self.between(MINUTE, 2 * DAY), "rated", rating))
        self._schedule(dossier_id, events)
        self._feedback(agency, dossier_id, t0, linkable=True)

    def _late_chance(self) -> float:
        """The chance to run late, raised for late dossiers still in time when the window closes.

        Those are the ones due on or after its last day: about mean time allowed / window of them.
        """
        cut = self.due_span_sum / self.due_span_count / (self.cfg.days * DAY)
        return min(1.0, (1.0 - self.cfg.on_time_rate) / max(0.5, 1.0 - cut))

    def _e_result_chance(self) -> float:
        """The chance for an approved dossier, raised for the e-results the window's end cuts off.

        A dossier received at a uniform time misses the window with chance mean delay / window,
        and the mean delay is learnt from the e-results drawn so far.
        """
        if not self.e_delay_count:
            return min(1.0, self.p_e_result)
        cut = self.e_delay_sum / self.e_delay_count / (self.cfg.days * DAY)
        return min(1.0, self.p_e_result / max(0.5, 1.0 - cut))

    def _late_extras(
        self,
        events: list[tuple[int, str, dict[str, Any]]],
        t0: int,
        due: int,
        shifted: int,
        end: int,
        last: int,
    ) -> None:
        """The apology (at least a day before the due time) and the sender's own late mark."""
        rng = self.rng
        if rng.random() < self.cfg.apology_rate_of_late and due - DAY - t0 > HOUR:
            hi = due - DAY
            lo = max(t0 + MINUTE, hi - 4 * DAY)
            events.append(
                (
                    _office(self.between(lo, hi), t0, hi),
                    "apology_issued",
                    {
                        "new_due_at": _format(end + self.between(0, DAY)),
                        "reason": rng.choice(_APOLOGY_REASONS),
                    },
                )
            )
        if rng.random() < self.cfg.late_mark_rate_of_late and end - shifted > 2 * MINUTE:
            at = max(shifted, last) + self.between(
                MINUTE, max(MINUTE, min(HOUR, (end - shifted) // 2))
            )
            if at < end:
                events.append((at, "late", {"reason": rng.choice(_LATE_REASONS)}))

    def _schedule(self, dossier_id: str, events: list[tuple[int, str, dict[str, Any]]]) -> None:
        events.sort(key=lambda e: e[0])
        previous = -1
        for t, type_, data in events:
            t = max(t, previous + 1)  # strictly increasing, so order survives second precision
            previous = t
            self.push(t, type_, "dossier_id", dossier_id, data)

    def _feedback(self, agency: str, dossier_id: str, t0: int, *, linkable: bool) -> None:
        cfg, rng = self.cfg, self.rng
        if rng.random() >= cfg.feedback_per_dossier:
            return
        self.feedbacks += 1
        feedback_id = f"{cfg.province_id}-PAKN-{cfg.seed}-{self.feedbacks:06d}"
        at = t0 + self.between(HOUR, 20 * DAY)
        x = rng.random()
        data: dict[str, Any] = {
            "agency_id": agency,
            "classification": "procedure" if x < 0.6 else "staff_conduct" if x < 0.85 else "other",
        }
        if linkable and rng.random() < cfg.feedback_linked_rate:
            data["dossier_id"] = dossier_id
        self.push(at, "feedback_received", "feedback_id", feedback_id, data)
        x = rng.random()
        if x < cfg.feedback_unanswered_rate:
            return
        n = self.between(1, 15) if x < cfg.feedback_answer_on_time_rate else self.between(16, 30)
        answered = self.add_wd(at // DAY, n) * DAY + 8 * HOUR + self.between(0, 9 * HOUR)
        self.push(answered, "feedback_answered", "feedback_id", feedback_id, {})
        later = answered
        if rng.random() < cfg.feedback_rating_rate:
            later += self.between(HOUR, 5 * DAY)
            self.push(
                later,
                "feedback_rated",
                "feedback_id",
                feedback_id,
                {"satisfied": rng.random() >= cfg.feedback_unsatisfied_rate},
            )
        if rng.random() < cfg.recomplaint_rate:
            self.push(
                later + self.between(DAY, 10 * DAY),
                "feedback_recomplained",
                "feedback_id",
                feedback_id,
                {},
            )
