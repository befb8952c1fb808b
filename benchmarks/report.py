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


def render(measures: list[dict[str, Any]], args: argparse.Namespace) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        BEGIN,
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
    if args.json:
        rows += ["", f"Raw pytest-benchmark JSON: `{args.json}`."]
    rows += ["", END]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("measures")
    ap.add_argument("--json")
    ap.add_argument("--load-start")
    ap.add_argument("--elapsed")
    ap.add_argument("--update")
    args = ap.parse_args()
    table = render(orjson.loads(Path(args.measures).read_bytes()), args)
    if not args.update:
        print(table)
        return
    path = Path(args.update)
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, text,
                  flags=re.S)
    path.write_text(text)
    print(f"report: updated {path}")


if __name__ == "__main__":
    main()
