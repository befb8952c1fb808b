"""A publication's files, made from its content: CSV and XLSX here, the PDF in ``exports_pdf``.

The tables are declared once (columns with their Vietnamese headers and how each cell is read
from the content) and every format writes them: the CSV is the criteria table with
machine-friendly English headers (scripts read it); the XLSX has one sheet per table with the
Vietnamese headers. Nothing here computes a figure: every number is the content's.

The delays list is read exactly as ``motcua delays --json`` writes it (accountability §4); a
content without a ``delays`` section gives an empty delays sheet that says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]

APOLOGY_VI = {"in_time": "Đúng hạn", "late": "Muộn", "missing": "Không có"}
STATUS_VI = {"finished": "Đã giải quyết", "open": "Đang giải quyết",
             "waiting_on_applicant": "Chờ bổ sung"}
BY_VI = {"unit": "Đơn vị", "official": "Cán bộ"}
NO_DELAYS_VI = "Bản công bố này không có danh sách chậm trễ."


@dataclass(frozen=True)
class Column:
    header: str  # Vietnamese, for the XLSX and the PDF
    get: Callable[[Row], Any]
    width: float = 12  # XLSX characters; the PDF scales these to the page
    number: str | None = None  # XLSX number format, for numeric cells


@dataclass(frozen=True)
class Table:
    title: str  # sheet name (≤ 31 characters)
    columns: tuple[Column, ...]
    rows: list[Row]
    note: str | None = None  # said when the table is empty


def apology_status(d: Row) -> str:
    """in_time, late or missing (accountability §3) from a late-list row."""
    if d.get("apology_in_time"):
        return "in_time"
    return "late" if d.get("apology_issued") else "missing"


def groups_of(content: Row) -> list[tuple[str, str, Any]]:
    """(key, Vietnamese name, max) of the ruleset's groups, as the scorecards list them."""
    cards = content.get("scorecards") or []
    return [(g["key"], g.get("name_vi", g["key"]), g["max"]) for g in cards[0]["groups"]] \
        if cards else []


def ranking_table(content: Row) -> Table:
    cols = [Column("Hạng", lambda r: r["rank"], 7, "0"),
            Column("Mã", lambda r: r["agency_id"], 12),
            Column("Cơ quan, đơn vị", lambda r: r["agency_name"], 40),
            Column("Cấp", lambda r: r.get("level") or "", 12),
            Column("Tổng điểm", lambda r: r["total"], 11, "0.00"),
            Column("Xếp loại", lambda r: r["classification"], 12)]
    for key, name, _ in groups_of(content):
        cols.append(Column(name, _group_score(key), 12, "0.00"))
    return Table("Xếp hạng", tuple(cols), list(content["ranking"]["ranking"]))


def _group_score(key: str) -> Callable[[Row], Any]:
    return lambda r: r["groups"].get(key)


def criteria_rows(content: Row) -> Iterator[Row]:
    """One row per agency and criterion, with the agency's total."""
    for card in content["scorecards"]:
        for g in card["groups"]:
            for c in g["criteria"]:
                yield {"agency_id": card["agency_id"],
                       "agency_name": card.get("agency_name", card["agency_id"]),
                       "level": card.get("level", ""), "group": g["key"],
                       "group_name": g.get("name_vi", g["key"]), "criterion_id": c["id"],
                       "criterion_code": c["code"], "criterion_name": c.get("name_vi", ""),
                       "numerator": c["numerator"], "denominator": c["denominator"],
                       "ratio": c["ratio"], "target": c["target"], "max": c["max"],
                       "points": c["points"], "agency_total": card["total"],
                       "classification": card["classification"]}


def criteria_table(content: Row) -> Table:
    return Table("Tiêu chí", (
        Column("Mã cơ quan", lambda r: r["agency_id"], 12),
        Column("Cơ quan, đơn vị", lambda r: r["agency_name"], 32),
        Column("Nhóm", lambda r: r["group_name"], 24),
        Column("Tiêu chí", lambda r: r["criterion_id"], 8),
        Column("Mã tiêu chí", lambda r: r["criterion_code"], 30),
        Column("Tên tiêu chí", lambda r: r["criterion_name"], 40),
        Column("Tử số", lambda r: r["numerator"], 10, "#,##0"),
        Column("Mẫu số", lambda r: r["denominator"], 10, "#,##0"),
        Column("Tỷ lệ", lambda r: r["ratio"], 9, "0.0000"),
        Column("Mục tiêu", lambda r: r["target"], 9, "0.00"),
        Column("Điểm tối đa", lambda r: r["max"], 10, "0.00"),
        Column("Điểm", lambda r: r["points"], 9, "0.00"),
    ), list(criteria_rows(content)))


def late_rows(content: Row) -> list[Row]:
    return [d for doc in content.get("late_dossiers", []) for d in doc["dossiers"]]


def late_table(content: Row) -> Table:
    return Table("Hồ sơ trễ hạn", (
        Column("Mã hồ sơ", lambda r: r["dossier_id"], 24),
        Column("Cơ quan", lambda r: r.get("agency_name") or r["agency_id"], 30),
        Column("Thủ tục", lambda r: r.get("procedure_name") or r["procedure_id"], 36),
        Column("Hạn trả", lambda r: r["due_date"], 11),
        Column("Trạng thái", lambda r: STATUS_VI.get(r["status"], r["status"]), 15),
        Column("Ngày kết thúc", lambda r: r.get("end_date") or "", 13),
        Column("Số ngày trễ", lambda r: r["days_late"], 10, "0"),
        Column("Xin lỗi", lambda r: APOLOGY_VI[apology_status(r)], 11),
    ), late_rows(content), "Không có hồ sơ trễ hạn.")


def delays_rows(content: Row) -> list[Row]:
    """The rows of every delays list of the content, each with its view's agency and kind."""
    return [{**r, "view": doc["agency_id"], "by": doc["by"]}
            for doc in content.get("delays") or [] for r in doc["rows"]]


def delays_table(content: Row) -> Table:
    note = "Không có hồ sơ trễ hạn." if "delays" in content else NO_DELAYS_VI
    return Table("Chậm trễ", (
        Column("Danh sách của", lambda r: r["view"], 12),
        Column("Theo", lambda r: BY_VI.get(r["by"], r["by"]), 12),
        Column("Đơn vị", lambda r: r["unit"], 28),
        Column("Cán bộ", lambda r: r.get("official") or "", 18),
        Column("Hồ sơ trễ", lambda r: r["late_dossiers"], 10, "0"),
        Column("Bước trễ", lambda r: r["late_steps"], 9, "0"),
        Column("Số giờ vượt", lambda r: r["overrun_hours"], 11, "0.00"),
        Column("Xin lỗi đúng hạn", lambda r: r["apology_in_time"], 10, "0"),
        Column("Xin lỗi muộn", lambda r: r["apology_late"], 10, "0"),
        Column("Không xin lỗi", lambda r: r["apology_missing"], 10, "0"),
    ), delays_rows(content), note)


def tables(content: Row) -> list[Table]:
    """The tables of a publication, in the order of the workbook's sheets."""
    return [ranking_table(content), criteria_table(content), late_table(content),
            delays_table(content)]


# ----- CSV -----------------------------------------------------------------------------------

CSV_FIELDS = ("period", "agency_id", "agency_name", "level", "group", "criterion_id",
              "criterion_code", "criterion_name", "numerator", "denominator", "ratio", "target",
              "max", "points", "agency_total", "classification")


def to_csv(content: Row) -> bytes:
    """One row per agency and criterion (UTF-8, comma-separated, header of field names)."""
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_FIELDS)
    for r in criteria_rows(content):
        r = {**r, "period": content["period"]}
        w.writerow(["" if r[f] is None else r[f] for f in CSV_FIELDS])
    return out.getvalue().encode("utf-8")


# ----- XLSX ----------------------------------------------------------------------------------


def about_rows(content: Row, sha256: str) -> list[tuple[str, str]]:
    """What the publication is: shown on the workbook's last sheet and atop the PDF."""
    return [("Kỳ", period_vi(content["period"])),
            ("Số liệu ghi nhận đến", content["recorded_at"]),
            ("Thời điểm đánh giá", content["view_end"]),
            ("Bộ tiêu chí", content["ruleset"]),
            ("SHA-256 của nội dung", sha256)]


def period_vi(label: str) -> str:
    """A period as people say it: Tháng 10/2026, Quý 4/2026, 6 tháng đầu năm 2026, Năm 2026."""
    year, _, rest = label.partition("-")
    if not rest:
        return f"Năm {year}"
    if rest.startswith("Q"):
        return f"Quý {rest[1:]}/{year}"
    if rest.startswith("H"):
        return f"6 tháng {'đầu' if rest == 'H1' else 'cuối'} năm {year}"
    return f"Tháng {int(rest)}/{year}"


def recorded_instant(content: Row) -> datetime:
    """T as a naive UTC datetime (file metadata), so the same content makes the same file."""
    return datetime.fromisoformat(content["recorded_at"]).astimezone(UTC).replace(tzinfo=None)


def to_xlsx(content: Row, sha256: str) -> bytes:
    """The workbook: ranking, criteria, late dossiers, delays, and what it is."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    wb.set_properties({"title": f"Chỉ số phục vụ người dân, doanh nghiệp — "
                                f"{period_vi(content['period'])}",
                       "author": "motcua", "created": recorded_instant(content)})
    head = wb.add_format({"bold": True, "bg_color": "#E3E7EC", "border": 1, "text_wrap": True,
                          "valign": "top"})
    formats: dict[str, Any] = {}
    for table in tables(content):
        ws = wb.add_worksheet(table.title)
        for j, col in enumerate(table.columns):
            ws.write_string(0, j, col.header, head)
            ws.set_column(j, j, col.width)
        for i, row in enumerate(table.rows, 1):
            for j, col in enumerate(table.columns):
                value = col.get(row)
                if value is None or value == "":
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    fmt = col.number and formats.setdefault(
                        col.number, wb.add_format({"num_format": col.number}))
                    ws.write_number(i, j, value, fmt or None)
                else:
                    ws.write_string(i, j, str(value))
        if not table.rows and table.note:
            ws.write_string(1, 0, table.note)
        ws.freeze_panes(1, 0)
        if table.rows:
            ws.autofilter(0, 0, len(table.rows), len(table.columns) - 1)
    ws = wb.add_worksheet("Thông tin")
    ws.set_column(0, 0, 24)
    ws.set_column(1, 1, 70)
    for i, (k, v) in enumerate(about_rows(content, sha256)):
        ws.write_string(i, 0, k, head)
        ws.write_string(i, 1, v)
    wb.close()
    return buf.getvalue()
