"""Text for people of ``publish``, ``report legacy`` and ``reconcile``: pure functions from
results to lines (``--json`` prints the results themselves)."""

from __future__ import annotations

from typing import Any

LEGACY_LABELS = (
    ("carried_over", "Tồn kỳ trước (carried over)"),
    ("received", "Tiếp nhận mới (received)"),
    ("resolved", "Đã giải quyết (resolved)"),
    ("resolved_early_or_on_time", "  trước hạn, đúng hạn (early or on time)"),
    ("resolved_late", "  quá hạn (late)"),
    ("pending", "Đang giải quyết (pending)"),
    ("pending_overdue", "  quá hạn (overdue)"),
)
CANDIDATES_SHOWN = 10


def published_lines(result: dict[str, Any], ruleset: str) -> list[str]:
    """A new publication: what it is and where its files are."""
    lines = [f"Published {result['period']} version {result['version']}, as recorded at "
             f"{result['recorded_at']} (ruleset {ruleset}).",
             f"SHA-256 {result['sha256']}"]
    lines += [f"  {kind:<5} {path}" for kind, path in result["files"].items()]
    return lines


def verify_lines(summary: dict[str, Any], differences: list[str]) -> list[str]:
    """The verdict on a publication: identical, or each difference."""
    what = (f"{summary['period']} version {summary['version']} (recorded at "
            f"{summary['recorded_at']}, SHA-256 {summary['sha256']})")
    if not differences:
        return [f"identical: {what} is reproduced exactly from the event store."]
    return [f"different: {what} differs in {len(differences)} place"
            f"{'s' if len(differences) > 1 else ''}:"] + [f"  - {d}" for d in differences]


def legacy_lines(r: dict[str, Any]) -> list[str]:
    """The older monthly form, one figure a line."""
    lines = [f"{r['agency_name']} ({r['agency_id']})  period {r['period']}  view end "
             f"{r['view_end']}"]
    lines += [f"  {label:<42} {r[key]:>10,}" for key, label in LEGACY_LABELS]
    rate = "–" if r["on_time_rate"] is None else f"{r['on_time_rate'] * 100:.2f} %"
    lines.append(f"  {'Tỷ lệ đúng hạn trên đã giải quyết (on-time rate)':<42} {rate:>10}")
    return lines


def reconcile_lines(r: dict[str, Any]) -> list[str]:
    """Where the portal's figures and motcua's differ."""
    n = r["compared"]
    lines = [f"Reconciliation  period {r['period']}  view end {r['view_end']}: "
             f"{n} figure{'' if n == 1 else 's'} compared, {len(r['differences'])} differ."]
    for d in r["differences"]:
        (pn, pd), (mn, md) = d["portal"], d["motcua"]
        lines.append(f"  {d['unit_code']:<12} {d['metric_code']:<36} portal {_n(pn)} / {_n(pd)}"
                     f"   motcua {mn:,} / {md:,}")
        if "candidate_dossiers" in d:
            ids = d["candidate_dossiers"]
            shown = ", ".join(ids[:CANDIDATES_SHOWN])
            more = f" … and {len(ids) - CANDIDATES_SHOWN} more" if len(ids) > 10 else ""
            lines.append(f"      not synced to the portal ({len(ids)}): {shown or '–'}{more}")
    if r["unknown_units"]:
        lines.append(f"Units in the file that motcua does not know: "
                     f"{', '.join(r['unknown_units'])}")
    if r["missing_units"]:
        lines.append(f"Units motcua scores that the file lacks: {', '.join(r['missing_units'])}")
    if r["skipped"]:
        lines.append(f"Skipped rows: {len(r['skipped'])}")
        lines += [f"  line {s['line']}: {s['unit_code']} {s['metric_code']}: {s['reason']}"
                  for s in r["skipped"]]
    return lines


def _n(v: int | None) -> str:
    return "–" if v is None else f"{v:,}"
