"""Suite 6, HTTP: ``GET /api/v1/agencies/{id}/scorecard`` under a bounded load on loopback.

The views are the scoring province's (100 units, 300 procedures, 20,000 dossiers over 2026),
rebuilt from its cached event store by a replay and swapped in as live views. A server process
(``benchmarks/http_load.py serve``: ``create_app`` over a ``StoreSource``, as ``motcua serve``
builds it, under uvicorn) serves them; a second process (``http_load.py load``, a minimal
keep-alive HTTP/1.1 client on asyncio streams) issues a bounded number of requests (and stops
after 30 s whatever the count), C at a time, and returns every request's latency.

The server's clock starts at 2026-12-31T23:59:59+07:00 and ticks. The API's answer cache is keyed
by what an answer depends on (the views' version and the view's end E, to the second of the
clock): ``period=2026`` viewed at the end of 2026 has one E, so the province's scorecard is
computed once and then answered from the cache, as real traffic on a past or current period is
within a second. Issue 14's target: >= 500 province scorecards/s with 8 in flight. The
``computed`` phases pass a different ``now=`` on every request (each its own E, so each is
computed): the scorecard's service time under HTTP.

Phases: the province's scorecard one request at a time, then 8 at a time (the target); every
agency's scorecard in turn, 8 at a time; the province's computed on every request, 1 and 8 at a
time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import replay_store as RS
from support import check, record

from kernel.broker import free_port

HERE = Path(__file__).resolve().parent
ROOT_ID = "H15"
NOW = "2026-12-31T23:59:59+07:00"
SECONDS = 30.0  # the bound of each phase, whatever its count


@pytest.fixture(scope="module")
def server(bench_dir: Path) -> Iterator[tuple[int, list[str]]]:
    """(port, agency ids) of a server over the scoring province's views."""
    store = RS.build(RS.SIZES["small"], log=sys.stderr)
    views = f"sqlite:///{bench_dir / 'http-views.db'}"
    done = subprocess.run([sys.executable, str(HERE / "replay_store.py"), "--child",
                           f"sqlite:///{store}", "--views", views, "--swap"],
                          capture_output=True, timeout=300, cwd=HERE.parent)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    port = free_port()
    log = (bench_dir / "http-server.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "http_load.py"), "serve", "--views",
                             views, "--port", str(port), "--now", NOW], stdout=log,
                            stderr=subprocess.STDOUT, cwd=HERE.parent)
    try:
        deadline = time.monotonic() + 60
        agencies: list[str] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, (bench_dir / "http-server.log").read_text()[-3000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/agencies", timeout=5)
                agencies = [a["agency_id"] for a in r.json()["agencies"]]
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert len(agencies) == 101, agencies
        yield port, agencies
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _load(port: int, paths: list[str], n: int, c: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "http_load.py"), "load", "--port",
                          str(port), "--path", ",".join(paths), "-n", str(n), "-c", str(c),
                          "--seconds", str(SECONDS)], capture_output=True,
                         timeout=SECONDS + 60, cwd=HERE.parent)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    result: dict[str, Any] = orjson.loads(out.stdout)
    assert set(result["statuses"]) == {"200"}, result["statuses"]
    return result


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


PHASES = [
    # name, which paths, requests, concurrency
    ("province_c1", "root", 1000, 1),
    ("province_c8", "root", 3000, 8),
    ("agencies_c8", "all", 1010, 8),
    ("computed_c1", "computed", 200, 1),
    ("computed_c8", "computed", 400, 8),
]
RPS_TARGET = 500.0  # issue 14: province scorecards/s with 8 in flight


@pytest.mark.parametrize("phase", PHASES, ids=[p[0] for p in PHASES])
def test_http_scorecard(benchmark: Any, server: tuple[int, list[str]],
                        phase: tuple[str, str, int, int]) -> None:
    benchmark.group = "http scorecard"
    name, which, n, c = phase
    port, agencies = server
    base = "/api/v1/agencies/{}/scorecard?period=2026"
    if which == "root":
        paths = [base.format(ROOT_ID)]
    elif which == "all":
        paths = [base.format(a) for a in agencies]
    else:  # a view end of its own per request: 2026-12-31 from 10:00:00, one second apart
        paths = [base.format(ROOT_ID) + f"&now=2026-12-31T{10 + i // 3600:02d}:"
                 f"{i // 60 % 60:02d}:{i % 60:02d}%2B07:00" for i in range(n + c)]
    res: dict[str, Any] = {}

    def run() -> None:
        res["load_before"] = os.getloadavg()[0]
        res.update(_load(port, paths, n, c))

    benchmark.pedantic(run, rounds=1, iterations=1)
    lat = res["latencies_ms"]
    rps = len(lat) / res["wall_s"]
    what = {"root": f"province {ROOT_ID} (100 units), the clock's now (answers cached)",
            "all": f"all {len(agencies)} agencies in turn",
            "computed": f"province {ROOT_ID}, a new now= each (each computed)"}[which]
    bounded = "" if len(lat) == n else f" (stopped at {SECONDS:g} s)"
    record(benchmark, "http", f"{name}_p50_ms", statistics.median(lat), "ms",
           note=f"{len(lat)} requests{bounded}, {c} in flight; {what}")
    record(benchmark, "http", f"{name}_p99_ms", _pct(lat, 0.99), "ms",
           note=f"max {max(lat):,.1f} ms")
    loads = f"load {res['load_before']:.2f} -> {os.getloadavg()[0]:.2f}"
    if name == "province_c8":
        ok = rps >= RPS_TARGET
        record(benchmark, "http", f"{name}_requests_per_s", rps, "requests/s",
               target=f">= {RPS_TARGET:g}", passed=ok, note=loads)
        check(ok, f"{rps:.0f} province scorecards/s with 8 in flight < {RPS_TARGET:g}")
    else:
        record(benchmark, "http", f"{name}_requests_per_s", rps, "requests/s", note=loads)
