"""The command line's text for people: pure functions from results to lines; commands print
them (``--json`` prints the results themselves)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from kernel.grants import Grant


def scorecard_lines(card: dict[str, Any]) -> list[str]:
    """A scorecard: the total, then each group and its criteria with their points."""
    lines = [f"{card.get('agency_name', card['agency_id'])} ({card['agency_id']})  "
             f"period {card['period']}  view end {card['view_end']}  ruleset {card['ruleset']}",
             f"TOTAL {card['total']:.2f} / 100   {card['classification']}"]
    for g in card["groups"]:
        lines += ["", f"{g['key']:<16} {g['score']:>6.2f} / {g['max']}"]
        for c in g["criteria"]:
            lines.append(f"  {c['id']:<5} {c['code']:<36} {c['numerator']:>9,} / "
                         f"{c['denominator']:<9,} {_ratio(c)}  {c['points']:>6.2f} / {c['max']}")
    return lines


def _ratio(c: dict[str, Any]) -> str:
    # A criterion without a target is a quantity (e.g. days), not a share: no percent sign.
    if c["ratio"] is None:
        return "   –   "
    if c.get("target") is None:
        return f"{c['ratio']:7.2f}"
    return f"{c['ratio'] * 100:6.2f}%"


def explain_lines(agency_id: str, result: dict[str, Any], limit: int) -> list[str]:
    """What a criterion counts for an agency: the subjects not counted first (up to ``limit``)."""
    c = result["criterion"]
    not_counted, counted = result["not_counted"], result["counted"]
    lines = [f"{c['id']} {c['code']} — {c['name_vi']} ({c['name_en']})",
             f"{agency_id}  period {result['period']}  view end {result['view_end']}: "
             f"{result['numerator']:,} / {result['denominator']:,}",
             "", f"not counted ({len(not_counted)}): where the points are lost"]
    for item in not_counted[:limit]:
        lines.append(f"  {item['id']:<26} {item.get('agency_id', ''):<10} {item['why']}")
        for who in item.get("lost_by", ()):
            holder = who["unit"] + (f" / {who['official']}" if who["official"] else "")
            lines.append(f"  {'':<26} {'':<10}   lost by {who['step']}: {holder} "
                         f"(+{who['overrun_hours']:.2f} office hours)")
    if len(not_counted) > limit:
        lines.append(f"  … {len(not_counted) - limit} more (--limit, or --json)")
    lines += ["", f"counted ({len(counted)})"]
    lines += [f"  {item['id']}" for item in counted[:min(limit, 10)]]
    if len(counted) > 10:
        lines.append(f"  … {len(counted) - 10} more")
    return lines


def ranking_lines(result: dict[str, Any]) -> list[str]:
    """The agencies by rank, with total and classification."""
    lines = [f"Ranking  period {result['period']}  view end {result['view_end']}"]
    for r in result["ranking"]:
        lines.append(f"{r['rank']:>4}. {r['total']:>6.2f}  {r['classification']:<11} "
                     f"{r['agency_id']:<12} {r['agency_name']}")
    return lines


def overdue_lines(agency_id: str, result: dict[str, Any]) -> list[str]:
    """An agency's late dossiers, with how late they are and their apology status."""
    lines = [f"Late dossiers of {agency_id}  period {result['period']}  view end "
             f"{result['view_end']}: {result['count']}"]
    for r in result["dossiers"]:
        apology = ("apology in time" if r["apology_in_time"] else
                   "apology late" if r["apology_issued"] else "no apology")
        lines.append(f"  {r['dossier_id']:<24} due {r['due_date']}  {r['days_late']:>3} working "
                     f"days late  {r['status']:<20} {apology}")
    return lines


def history_lines(events: list[dict[str, Any]]) -> list[str]:
    """A dossier's events, each with the action (or the engine's reason) that caused it."""
    # Imported here: the engine is not loaded for `motcua --help` or commands that do not use it.
    from projections.facts import flag_names

    lines = []
    for e in events:
        c = e["cause"] or {}
        where = (f"{c.get('source')}/{c.get('action_id')} @ {c.get('topic')}"
                 f"[{c.get('partition')}]:{c.get('offset')}" if c.get("action_id")
                 else f"{c.get('source', '')} ({c.get('reason', '')})")
        lines += [f"{e['version']:>3}  {e['type']:<20} at {e['at']}  recorded {e['recorded_at']}",
                  f"     caused by {where}"]
        if e["data"]:
            lines.append(f"     data {orjson.dumps(e['data']).decode()}")
        facts = e["facts"]
        if isinstance(facts, list) and len(facts) > 3:
            lines.append(f"     facts {', '.join(flag_names(facts[3])) or '-'}")
    return lines


def control_sheet_lines(sheet: list[dict[str, Any]]) -> list[str]:
    """The control sheet (phiếu kiểm soát): one line per step with its holder, times and
    result."""
    lines = ["", "control sheet (phiếu kiểm soát)"]
    for s in sheet:
        holder = s["unit"] + (f" / {s['official']}" if s["official"] else "")
        result = s["result"] + (f" +{s['overrun_hours']:.2f} h" if s["result"] == "late" else "")
        lines.append(f"  {s['step']:<10} {holder:<34} {s['start'][:16]} → "
                     f"{(s['end'] or 'open')[:16]:<16}  due {(s['due'] or '-')[:16]:<16}  "
                     f"{result}")
    return lines


def delays_lines(result: dict[str, Any]) -> list[str]:
    """The delays list for people: who made the view's late dossiers late."""
    by_official = result["by"] == "official"
    lines = [f"Delays of {result['agency_id']}  period {result['period']}  view end "
             f"{result['view_end']}: {result['late_dossiers']} late dossiers", ""]
    head = f"{'unit':<34} " + (f"{'official':<16} " if by_official else "")
    lines.append(head + "dossiers  steps  overrun h  apology: in time / late / missing")
    for r in result["rows"]:
        who = f"{r['unit']:<34} " + (f"{r['official'] or '-':<16} " if by_official else "")
        lines.append(f"{who}{r['late_dossiers']:>8} {r['late_steps']:>6} "
                     f"{r['overrun_hours']:>10.2f}  {r['apology_in_time']:>8} / "
                     f"{r['apology_late']} / {r['apology_missing']}")
    return lines


def at_risk_lines(result: dict[str, Any]) -> list[str]:
    """The at-risk list for people: what falls due soon, what is already late, and its cost."""
    out = [f"{result['agency_id']} at {result['now']}: due within {result['within']} working "
           "days"]
    for title, key in (("Due soon", "due_soon"), ("Open past due", "overdue_open")):
        rows = result[key]
        out.append(f"{title}: {len(rows)}")
        for r in rows:
            h = r["holder"]
            who = f"{h['unit']}" + (f" / {h['official']}" if h["official"] else "")
            out.append(f"  {r['dossier_id']:<14} due {r['due_at'][:16]}  {h['step']:<10} "
                       f"{who:<30} apology {'yes' if r['apology_issued'] else 'no ':<3}  "
                       f"at stake: unit {r['stake_unit']:.2f}, {result['agency_id']} "
                       f"{r['stake']:.2f}")
    return out


def alert_lines(subs: list[dict[str, Any]]) -> list[str]:
    """Alert subscriptions for people: where they go, what, and how their deliveries stand."""
    if not subs:
        return ["no alert subscription; add one with `motcua alerts add --agencies H15 "
                "--webhook URL`"]
    out = []
    for s in subs:
        d = s["deliveries"]
        out.append(f"{s['id']}  {s['state']:<6} {s['channel']:<7} {s['target']}")
        out.append(f"    agencies {','.join(s['agencies'])}; rules {','.join(s['rules'])}; "
                   f"within {s['within']}; delivered {d['delivered']}, pending {d['pending']}, "
                   f"dead {d['dead']}, cancelled {d['cancelled']}"
                   + (f"; last error: {s['last_error']}" if s["last_error"] else ""))
    return out


def token_lines(grants: Iterable[Grant]) -> list[str]:
    """The sources with a token: kind, agencies, token id and dates (never the token)."""
    return [f"{g.source:<24} {g.kind:<5} {','.join(g.agencies):<24} {g.token_id}  "
            f"created {g.created_at}"
            + (f", rotated {g.rotated_at}" if g.rotated_at else "") for g in grants]


# ----- replay --------------------------------------------------------------------------------


def verify_lines(diffs: list[dict[str, Any]],
                 dossiers: list[tuple[str, str, list[str]]]) -> list[str]:
    """``replay --verify``: equal, or the differences and the dossiers of the differing cells."""
    # ``dossiers`` are (agency, month, dossier ids) of the agency-months whose counts differ.
    if not diffs:
        return ["replay --verify: the live views equal the replayed history."]
    lines = [f"replay --verify: {len(diffs)} difference(s) between the live views and the "
             "replayed history:"]
    for d in diffs[:200]:
        lines.append(f"  {d['kind']:<18} {d['agency_id'] or '-':<12} {d['month'] or '-':<8} "
                     f"{d['counter']:<26} live {d['live']}  replayed {d['replayed']}")
    for agency, month, ids in dossiers:
        more = f" … ({len(ids)} in all)" if len(ids) > 15 else ""
        lines.append(f"  dossiers of {agency} received in {month}: {', '.join(ids[:15])}{more}")
    return lines


def until_line(at: datetime, until: str) -> str:
    """``replay --until``: where the frozen views are and how to score them."""
    return (f"replay --until {at.isoformat()}: the views as recorded then are in the 'asof' "
            f"table set; score them with `motcua scores AGENCY --as-recorded {until}`.")


def rebuild_line(done: int, events: int, seconds: float, generation: int,
                 elapsed: float) -> str:
    """``replay``: how many events the rebuild read, how fast, and the generation swapped in."""
    return (f"replay: rebuilt the views from {done:,} recorded events ({events:,} this run, "
            f"{events / max(seconds, 1e-6):,.0f} events/s) and swapped them in (generation "
            f"{generation}) in {elapsed:.1f} s.")
