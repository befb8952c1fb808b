"""Render a benchmark run's measures as the RESULTS.md table (between its markers).

    python benchmarks/report.py MEASURES.json [--json BENCH.json] [--load-start "a b c"]
                                [--elapsed S] [--update benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# Suites with a section of their own in RESULTS.md (their rows stay out of the main table, and
# a run of only those suites leaves the main table as it was).
SECTIONS = {"peer": ("<!-- peer:begin -->", "<!-- peer:end -->", "## Peer benchmark")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(v: float, unit: str) -> str:
    if unit in ("ms", "µs/action", "µs/event", "s"):
        return f"{v:,.2f} {unit}"
    if unit == "MiB":
        return f"{v:,.1f} {unit}"
    if unit.startswith("x "):
        return f"{v:.3f} × {unit[2:]}"
    return f"{v:,.0f} {unit}"


KEPT = "from the run of "


def earlier_rows(text: str, suites: set[str], begin: str = BEGIN, end: str = END) -> list[str]:
    """The rows of the table between ``begin`` and ``end`` whose suite this run did not
    measure, each noting the run it comes from: a run of some suites (``benchmarks/run -k X``)
    replaces their rows and keeps the others'."""
    if begin not in text or end not in text:
        return []
    table = text.split(begin, 1)[1].split(end, 1)[0]
    date = re.search(r"^\| Date \(`date -u`\) \| (.+?) \|$", table, flags=re.M)
    out = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[0] in ("Suite", "---") or cells[0] in suites:
            continue
        if date and not cells[5].startswith(KEPT):
            cells[5] = f"{KEPT}{date.group(1)}; {cells[5]}".rstrip("; ")
        out.append("| " + " | ".join(cells) + " |")
    return out


def render(measures: list[dict[str, Any]], args: argparse.Namespace,
           markers: tuple[str, str] = (BEGIN, END), kept: list[str] | None = None) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        markers[0],
        "",
        "| Machine | |",
        "|---|---|",
        f"| Date (`date -u`) | {now} |",
        f"| CPUs (`nproc`) | {os.cpu_count()} |",
        f"| CPU model | {_cpu_model()} |",
        f"| RAM | {_ram_gib()} |",
        f"| Python | {platform.python_version()} ({platform.python_implementation()}) |",
        f"| Code | {_git()} |",
        f"| Load average (1/5/15 min) | start {args.load_start or '?'}; end {load_end} |",
        f"| Run time | {args.elapsed or '?'} s |",
        "",
        "| Suite | Measure | Target | Measured | Result | Note |",
        "|---|---|---|---|---|---|",
    ]
    for m in measures:
        verdict = "" if m["passed"] is None else ("**pass**" if m["passed"] else "**MISS**")
        rows.append(f"| {m['suite']} | `{m['name']}` | {m['target']} | "
                    f"{_fmt(m['value'], m['unit'])} | {verdict} | {m['note']} |")
    rows += kept or []
    if args.json:
        rows += ["", f"Raw pytest-benchmark JSON: `{args.json}`."]
    rows += ["", markers[1]]
    return "\n".join(rows)


def _replace(text: str, table: str, begin: str, end: str, heading: str) -> str:
    if begin not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{begin}\n{end}\n"
    return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: table, text, flags=re.S)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("measures")
    ap.add_argument("--json")
    ap.add_argument("--load-start")
    ap.add_argument("--elapsed")
    ap.add_argument("--update")
    args = ap.parse_args()
    measures = orjson.loads(Path(args.measures).read_bytes())
    main_rows = [m for m in measures if m["suite"] not in SECTIONS]
    if not args.update:
        print(render(main_rows or measures, args))
        return
    path = Path(args.update)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if main_rows:
        kept = earlier_rows(text, {m["suite"] for m in main_rows})
        text = _replace(text, render(main_rows, args, kept=kept), BEGIN, END, "")
    for suite, (begin, end, heading) in SECTIONS.items():
        own = [m for m in measures if m["suite"] == suite]
        if own:
            text = _replace(text, render(own, args, (begin, end)), begin, end, heading)
    path.write_text(text)
    print(f"report: updated {path}")


if __name__ == "__main__":
    main()
