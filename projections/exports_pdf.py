"""A publication's PDF (A4): what it is, the ranking with each agency's group bars, the
publishing authorities' group scores, the late dossiers and the delays list, in Vietnamese.

Made with fpdf2 and the bundled DejaVu Sans (``projections/fonts``, Bitstream Vera licence),
whose glyphs cover Vietnamese; the tables are the ones ``exports`` declares for the workbook.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from projections.exports import (
    Row,
    Table,
    about_rows,
    delays_table,
    groups_of,
    late_table,
    period_vi,
    recorded_instant,
)

FONTS = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVu"
# The scoreboard's colours of the six groups (projections/dashboard/style.css), in order.
GROUP_COLOURS = {"transparency": (79, 124, 172), "progress": (42, 157, 143),
                 "online_service": (125, 107, 184), "payment": (212, 154, 42),
                 "digitization": (90, 154, 91), "satisfaction": (207, 106, 90)}
OTHER_COLOUR = (140, 140, 140)
LINE_H = 4.6


def nfc(text: Any) -> str:
    """Text with Vietnamese letters precomposed (the font has a glyph for each)."""
    return unicodedata.normalize("NFC", "" if text is None else str(text))


class _Doc(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(True, margin=14)
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.set_text_color(110, 110, 110)
        self.cell(0, 4, self.footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 4, f"Trang {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)


def to_pdf(content: Row, sha256: str) -> bytes:
    """The publication as an A4 PDF."""
    doc = _Doc(f"motcua · {period_vi(content['period'])} · SHA-256 {sha256[:16]}…")
    doc.set_creation_date(recorded_instant(content))
    doc.set_title(nfc(f"Chỉ số phục vụ người dân, doanh nghiệp — {period_vi(content['period'])}"))
    doc.set_author("motcua")
    doc.add_page()
    _title(doc, content, sha256)
    _ranking(doc, content)
    _authority_groups(doc, content)
    _heading(doc, "Danh sách hồ sơ trễ hạn")
    _table(doc, late_table(content), (20, 18, 24, 10, 11, 10, 7, 9))
    _heading(doc, "Danh sách cơ quan, đơn vị, cán bộ để xảy ra chậm trễ")
    _table(doc, delays_table(content), (10, 10, 24, 16, 8, 8, 9, 9, 8, 9))
    return bytes(doc.output())


def _title(doc: _Doc, content: Row, sha256: str) -> None:
    doc.set_font(FONT, "B", 14)
    doc.multi_cell(0, 7, nfc("CHỈ SỐ PHỤC VỤ NGƯỜI DÂN, DOANH NGHIỆP"), align="C",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.set_font(FONT, "", 10)
    doc.multi_cell(0, 5, nfc(f"Theo Quyết định 766/QĐ-TTg · {period_vi(content['period'])}"),
                   align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.ln(2)
    doc.set_font(FONT, "", 8)
    for key, value in about_rows(content, sha256):
        doc.set_font(FONT, "B", 8)
        doc.cell(42, LINE_H, nfc(key))
        doc.set_font(FONT, "", 8)
        doc.cell(0, LINE_H, nfc(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _heading(doc: _Doc, text: str) -> None:
    if doc.get_y() > doc.h - 40:
        doc.add_page()
    doc.ln(3)
    doc.set_font(FONT, "B", 11)
    doc.cell(0, 7, nfc(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _fit(doc: _Doc, text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit a cell of ``width`` mm."""
    text = nfc(text)
    room = width - 2 * doc.c_margin
    if doc.get_string_width(text) <= room:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with its ellipsis
        mid = (lo + hi + 1) // 2
        if doc.get_string_width(text[:mid] + "…") <= room:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def _cell_text(value: Any, number: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and number and "0.0000" in number:
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and number and "," in number:
        return f"{value:,}".replace(",", ".")
    return str(value)


def _header(doc: _Doc, headers: Sequence[str], widths: Sequence[float]) -> None:
    """A header row whose labels wrap within their columns."""
    doc.set_font(FONT, "B", 7)
    doc.set_fill_color(227, 231, 236)
    lines = [doc.multi_cell(w, 3.4, nfc(h), dry_run=True, output="LINES")
             for h, w in zip(headers, widths, strict=True)]
    height = 3.4 * max(len(x) for x in lines if isinstance(x, list)) + 1
    if doc.get_y() + height + LINE_H > doc.page_break_trigger:
        doc.add_page()
    y, x = doc.get_y(), doc.l_margin
    for h, w in zip(headers, widths, strict=True):
        doc.rect(x, y, w, height, style="DF")
        doc.set_xy(x, y + 0.5)
        doc.multi_cell(w, 3.4, nfc(h), align="C")
        x += w
    doc.set_xy(doc.l_margin, y + height)
    doc.set_font(FONT, "", 7)


def _table(doc: _Doc, table: Table, weights: Sequence[float]) -> None:
    """A table over the page's width (columns in proportion to ``weights``), its header
    repeated on every page it spans."""
    widths = [doc.epw * w / sum(weights) for w in weights]
    headers = [c.header for c in table.columns]
    _header(doc, headers, widths)
    if not table.rows:
        doc.set_font(FONT, "", 8)
        doc.cell(0, 6, nfc(table.note or ""), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return
    for row in table.rows:
        if doc.get_y() + LINE_H > doc.page_break_trigger:
            doc.add_page()
            _header(doc, headers, widths)
        values = [col.get(row) for col in table.columns]
        _row(doc, [_cell_text(v, c.number) for v, c in zip(values, table.columns, strict=True)],
             widths, ["R" if isinstance(v, int | float) else "L" for v in values])


def _row(doc: _Doc, texts: Sequence[str], widths: Sequence[float],
         aligns: Sequence[str]) -> None:
    """One table row of plain text cells and a rule under it, then the next line. Drawn with
    ``text`` rather than ``cell``: a late list has thousands of rows."""
    x, y = doc.l_margin, doc.get_y()
    baseline = y + LINE_H / 2 + doc.font_size * 0.35
    for text, w, align in zip(texts, widths, aligns, strict=False):
        shown = _fit(doc, text, w)
        left = x + doc.c_margin
        if align == "R":
            left = x + w - doc.c_margin - doc.get_string_width(shown)
        doc.text(left, baseline, shown)
        x += w
    doc.set_draw_color(200, 205, 211)
    doc.line(doc.l_margin, y + LINE_H, doc.l_margin + sum(widths), y + LINE_H)
    doc.set_draw_color(0, 0, 0)
    doc.set_xy(doc.l_margin, y + LINE_H)


def _ranking(doc: _Doc, content: Row) -> None:
    """The ranking, each row with its groups as one stacked bar out of 100 points."""
    _heading(doc, "Bảng xếp hạng")
    groups = groups_of(content)
    _legend(doc, groups)
    headers = ["Hạng", "Mã", "Cơ quan, đơn vị", "Tổng điểm", "Xếp loại", "Điểm theo nhóm"]
    widths = [doc.epw * w / 100 for w in (6, 9, 33, 9, 11, 32)]
    _header(doc, headers, widths)
    for r in content["ranking"]["ranking"]:
        if doc.get_y() + LINE_H > doc.page_break_trigger:
            doc.add_page()
            _header(doc, headers, widths)
        y = doc.get_y()
        _stack(doc, doc.l_margin + sum(widths[:-1]) + 1, y + 1, widths[-1] - 2, LINE_H - 2,
               groups, r["groups"])
        _row(doc, (str(r["rank"]), r["agency_id"], r["agency_name"], f"{r['total']:.2f}",
                   r["classification"]), widths, ("R", "L", "L", "R", "L"))


def _legend(doc: _Doc, groups: Sequence[tuple[str, str, Any]]) -> None:
    doc.set_font(FONT, "", 7)
    for key, name, top in groups:
        label = nfc(f"{name} ({top})")
        need = 5 + doc.get_string_width(label) + 4
        if doc.get_x() + need > doc.w - doc.r_margin:
            doc.ln(LINE_H)
        doc.set_fill_color(*GROUP_COLOURS.get(key, OTHER_COLOUR))
        doc.rect(doc.get_x(), doc.get_y() + 1, 3, 2.6, style="F")
        doc.set_x(doc.get_x() + 4)
        doc.cell(need - 4, LINE_H, label)
    doc.ln(LINE_H + 1)


def _stack(doc: _Doc, x: float, y: float, w: float, h: float,
           groups: Sequence[tuple[str, str, Any]], scores: dict[str, Any]) -> None:
    """One bar of ``w`` mm for 100 points: a segment per group's score, in the group's colour."""
    doc.set_fill_color(238, 240, 243)
    doc.rect(x, y, w, h, style="F")
    for key, _, _ in groups:
        part = w * float(scores.get(key) or 0) / 100
        if part > 0:
            doc.set_fill_color(*GROUP_COLOURS.get(key, OTHER_COLOUR))
            doc.rect(x, y, part, h, style="F")
            x += part


def _authority_groups(doc: _Doc, content: Row) -> None:
    """Each publishing authority's score per group, as bars of the group's maximum."""
    cards = {c["agency_id"]: c for c in content["scorecards"]}
    roots = [r["agency_id"] for r in content["ranking"]["ranking"] if r.get("parent_id") is None]
    for root in roots:
        card = cards[root]
        _heading(doc, f"Điểm theo nhóm: {card.get('agency_name', root)} — "
                      f"{card['total']:.2f}/100, {card['classification']}")
        doc.set_font(FONT, "", 8)
        for g in card["groups"]:
            if doc.get_y() + 6 > doc.page_break_trigger:
                doc.add_page()
            y = doc.get_y()
            doc.cell(55, 6, _fit(doc, g.get("name_vi", g["key"]), 55))
            x, w = doc.get_x(), doc.epw - 55 - 28
            doc.set_fill_color(238, 240, 243)
            doc.rect(x, y + 1.2, w, 3.6, style="F")
            top = float(g["max"]) or 1.0
            doc.set_fill_color(*GROUP_COLOURS.get(g["key"], OTHER_COLOUR))
            doc.rect(x, y + 1.2, w * min(float(g["score"]) / top, 1.0), 3.6, style="F")
            doc.set_x(x + w)
            doc.cell(28, 6, f"{g['score']:.2f} / {g['max']}", align="R",
                     new_x=XPos.LMARGIN, new_y=YPos.NEXT)
