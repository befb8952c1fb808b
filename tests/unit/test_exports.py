"""A publication's files, read back: the workbook with openpyxl, the PDF's text with pypdf, the
CSV with the csv module. The content is made by hand (scorecards from known counts, a late
list and a delays list written out), so every number checked below is known in advance.
"""

from __future__ import annotations

import csv
import io
import warnings
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

from projections.exports import CSV_FIELDS, to_csv, to_xlsx
from projections.exports_pdf import to_pdf
from projections.ruleset import load_ruleset
from projections.scoring import build_scorecard

RULESET = load_ruleset("portal-2026")
SHA = "5e" * 32


def _card(agency: str, name: str, level: str, ratio: tuple[int, int]) -> dict[str, Any]:
    counts = {c.code: ratio for c in RULESET.criteria()}
    card = build_scorecard(RULESET, counts, agency_id=agency, period="2026-10",
                           view_end="2026-10-31T23:59:59+07:00")
    return {**card, "agency_name": name, "level": level}


def content(with_delays: bool = True) -> dict[str, Any]:
    """Two agencies: the province with every criterion at 10/10 (100 points, Xuất sắc) and a
    department at 1/2 everywhere, two late dossiers and a delays list by unit and by official."""
    cards = [_card("H15", "Tỉnh Đắk Lắk", "province", (10, 10)),
             _card("H15.1", "Sở Tư pháp", "department", (1, 2))]
    rows = [{"rank": i, "agency_id": c["agency_id"], "agency_name": c["agency_name"],
             "level": c["level"], "parent_id": None if i == 1 else "H15", "total": c["total"],
             "classification": c["classification"],
             "groups": {g["key"]: g["score"] for g in c["groups"]}}
            for i, c in enumerate(cards, 1)]
    late = {"agency_id": "H15", "period": "2026-10", "view_end": "2026-10-31T23:59:59+07:00",
            "count": 2, "dossiers": [
                {"dossier_id": "H15.1-261005-0001", "agency_id": "H15.1",
                 "agency_name": "Sở Tư pháp", "procedure_id": "1.000001",
                 "procedure_name": "Cấp phiếu lý lịch tư pháp", "reception_month": "2026-10",
                 "due_date": "2026-10-09", "status": "finished", "end_date": "2026-10-14",
                 "days_late": 3, "multiple_supplements": False, "apology_issued": True,
                 "apology_in_time": True},
                {"dossier_id": "H15.1-261020-0002", "agency_id": "H15.1",
                 "agency_name": "Sở Tư pháp", "procedure_id": "1.000002",
                 "procedure_name": None, "reception_month": "2026-10",
                 "due_date": "2026-10-27", "status": "open", "end_date": None,
                 "days_late": 4, "multiple_supplements": False, "apology_issued": False,
                 "apology_in_time": False}]}
    doc: dict[str, Any] = {
        "format": "motcua.publication/1", "period": "2026-10",
        "recorded_at": "2026-11-05T10:00:00+07:00", "view_end": "2026-10-31T23:59:59+07:00",
        "ruleset": "portal-2026", "scorecards": cards,
        "ranking": {"period": "2026-10", "ruleset": "portal-2026", "level": None,
                    "view_end": "2026-10-31T23:59:59+07:00", "ranking": rows},
        "late_dossiers": [late]}
    if with_delays:
        base = {"agency_id": "H15", "period": "2026-10",
                "view_end": "2026-10-31T23:59:59+07:00", "late_dossiers": 2}
        doc["delays"] = [
            {**base, "by": "unit", "rows": [
                {"unit": "H15.1/phòng-hộ-tịch", "official": None, "late_dossiers": 2,
                 "late_steps": 3, "overrun_hours": 17.25, "apology_in_time": 1,
                 "apology_late": 0, "apology_missing": 1}]},
            {**base, "by": "official", "rows": [
                {"unit": "H15.1/phòng-hộ-tịch", "official": "Nguyễn Thị Ánh",
                 "late_dossiers": 2, "late_steps": 2, "overrun_hours": 12.5,
                 "apology_in_time": 1, "apology_late": 0, "apology_missing": 1},
                {"unit": "H15.1/phòng-hộ-tịch", "official": None, "late_dossiers": 1,
                 "late_steps": 1, "overrun_hours": 4.75, "apology_in_time": 0,
                 "apology_late": 0, "apology_missing": 1}]}]
    return doc


def _sheet(wb: Any, name: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in wb[name].iter_rows(values_only=True)]


def test_department_at_half_scores_as_worked_by_hand() -> None:
    """The hand-made department (every criterion at 1/2): 100 %-target criteria give half their
    points, the 80 % ones (3.5, 3.5b, 4.3; 2 points each) 1.25, the 90 % one (5.4, 6 points)
    3.33: groups 9 + 10 + 6 + 5.5 + 11.25 + 9.33 = 51.08, Trung bình."""
    card = content()["scorecards"][1]
    assert [g["score"] for g in card["groups"]] == [9, 10, 6, 5.5, 11.25, 9.33]
    assert (card["total"], card["classification"]) == (51.08, "Trung bình")


def test_workbook_has_the_four_sheets_with_vietnamese_headers_and_the_contents_numbers() -> None:
    """Ranking, criteria, late dossiers and delays sheets: headers in Vietnamese, each figure
    of the content in its cell, numbers as numbers."""
    wb = load_workbook(io.BytesIO(to_xlsx(content(), SHA)), read_only=True)
    assert wb.sheetnames == ["Xếp hạng", "Tiêu chí", "Hồ sơ trễ hạn", "Chậm trễ", "Thông tin"]

    ranking = _sheet(wb, "Xếp hạng")
    assert ranking[0][:6] == ("Hạng", "Mã", "Cơ quan, đơn vị", "Cấp", "Tổng điểm", "Xếp loại")
    assert ranking[0][6:] == ("Công khai, minh bạch", "Tiến độ, kết quả giải quyết",
                              "Dịch vụ công trực tuyến", "Thanh toán trực tuyến",
                              "Số hóa hồ sơ", "Mức độ hài lòng")
    assert ranking[1][:6] == (1, "H15", "Tỉnh Đắk Lắk", "province", 100, "Xuất sắc")
    assert ranking[1][6:] == (18, 20, 12, 10, 22, 18)

    criteria = _sheet(wb, "Tiêu chí")
    assert criteria[0] == ("Mã cơ quan", "Cơ quan, đơn vị", "Nhóm", "Tiêu chí", "Mã tiêu chí",
                           "Tên tiêu chí", "Tử số", "Mẫu số", "Tỷ lệ", "Mục tiêu",
                           "Điểm tối đa", "Điểm")
    assert len(criteria) == 1 + 2 * len(RULESET.criteria())
    on_time = next(r for r in criteria if r[0] == "H15.1" and r[4] == "ON_TIME")
    assert on_time[6:] == (1, 2, 0.5, 1, 20, 10)

    late = _sheet(wb, "Hồ sơ trễ hạn")
    assert late[0] == ("Mã hồ sơ", "Cơ quan", "Thủ tục", "Hạn trả", "Trạng thái",
                       "Ngày kết thúc", "Số ngày trễ", "Xin lỗi")
    assert late[1] == ("H15.1-261005-0001", "Sở Tư pháp", "Cấp phiếu lý lịch tư pháp",
                       "2026-10-09", "Đã giải quyết", "2026-10-14", 3, "Đúng hạn")
    assert late[2] == ("H15.1-261020-0002", "Sở Tư pháp", "1.000002", "2026-10-27",
                       "Đang giải quyết", None, 4, "Không có")

    delays = _sheet(wb, "Chậm trễ")
    assert delays[0] == ("Danh sách của", "Theo", "Đơn vị", "Cán bộ", "Hồ sơ trễ", "Bước trễ",
                         "Số giờ vượt", "Xin lỗi đúng hạn", "Xin lỗi muộn", "Không xin lỗi")
    assert delays[1:] == [
        ("H15", "Đơn vị", "H15.1/phòng-hộ-tịch", None, 2, 3, 17.25, 1, 0, 1),
        ("H15", "Cán bộ", "H15.1/phòng-hộ-tịch", "Nguyễn Thị Ánh", 2, 2, 12.5, 1, 0, 1),
        ("H15", "Cán bộ", "H15.1/phòng-hộ-tịch", None, 1, 1, 4.75, 0, 0, 1)]

    about = dict(_sheet(wb, "Thông tin"))
    assert about["SHA-256 của nội dung"] == SHA
    assert about["Kỳ"] == "Tháng 10/2026"


def test_a_content_without_delays_says_so_in_the_workbook_and_the_pdf() -> None:
    """Until the delays section is wired in, the delays sheet and the PDF say it is absent."""
    doc = content(with_delays=False)
    wb = load_workbook(io.BytesIO(to_xlsx(doc, SHA)), read_only=True)
    assert _sheet(wb, "Chậm trễ")[1][0] == "Bản công bố này không có danh sách chậm trễ."
    text = _pdf_text(to_pdf(doc, SHA))
    assert "Bản công bố này không có danh sách chậm trễ." in text


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns when a font lacks a character's glyph
        return to_pdf(content(), SHA)


def test_pdf_is_a4_with_readable_vietnamese_and_the_contents_figures(pdf: bytes) -> None:
    """The PDF's extracted text holds the diacritics, the totals, the late list and the delays
    list; its pages are A4; its fonts are the bundled DejaVu Sans (no glyph was missing)."""
    data = pdf
    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == \
            (595, 842)
    text = _pdf_text(data)
    for phrase in ("CHỈ SỐ PHỤC VỤ NGƯỜI DÂN, DOANH NGHIỆP", "Tháng 10/2026", "Tỉnh Đắk Lắk",
                   "Xuất sắc", "Trung bình", "Bảng xếp hạng", "Danh sách hồ sơ trễ hạn",
                   "H15.1-261005-0001", "Cấp phiếu lý lịch tư pháp", "Đúng hạn", "Không có",
                   "Nguyễn Thị Ánh", "17.25", "12.50", "4.75", "100.00", SHA):
        assert phrase in text, phrase
    assert "51.08" in text
    fonts: set[str] = set()
    for page in reader.pages:
        resources = page["/Resources"]
        assert isinstance(resources, DictionaryObject)
        font = resources["/Font"].get_object()
        assert isinstance(font, DictionaryObject)
        fonts |= {str(f["/BaseFont"]) for f in font.values()}
    assert fonts and all("DejaVuSans" in f for f in fonts), fonts


def test_csv_has_one_row_per_agency_and_criterion() -> None:
    """Every (agency, criterion) pair once, with its counts and points as the content has them."""
    rows = list(csv.DictReader(io.StringIO(to_csv(content()).decode("utf-8"))))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == 2 * len(RULESET.criteria())
    assert len({(r["agency_id"], r["criterion_code"]) for r in rows}) == len(rows)
    sync = next(r for r in rows if r["agency_id"] == "H15" and r["criterion_code"] ==
                "DOSSIER_SYNC")
    assert (sync["numerator"], sync["denominator"], sync["points"], sync["agency_name"]) == \
        ("10", "10", "6.0", "Tỉnh Đắk Lắk")
    assert {r["period"] for r in rows} == {"2026-10"}


def test_the_same_content_makes_the_same_files(pdf: bytes) -> None:
    """Files carry the recording instant, not the time they were made: rendering a stored
    content again gives the same bytes."""
    doc = content()
    assert to_pdf(doc, SHA) == pdf
    assert to_xlsx(doc, SHA) == to_xlsx(doc, SHA)
