"""Suite 6, HTTP: ``GET /api/v1/agencies/{id}/scorecard`` under a bounded load on loopback.

The views are the scoring province's (100 units, 300 procedures, 20,000 dossiers over 2026:
116,004 events), rebuilt from its cached event store by a replay and swapped in as live views.
A server process (``benchmarks/http_load.py serve``: ``create_app`` over a ``StoreSource``, as
``motcua serve`` builds it, under uvicorn) serves them; a second process (``http_load.py load``,
httpx on asyncio, keep-alive connections) issues a bounded number of requests (and stops after
30 s whatever the count), C at a time, and returns every request's latency.

The server's clock starts at 2026-12-31T23:59:59+07:00 and ticks, so requests without ``now=``
each get their own instant and are computed (the API caches answers per instant and version);
one phase passes a fixed ``now=`` and so measures the cache hit: the HTTP stack alone.

Phases: the province's scorecard one request at a time (service time), then 8 at a time
(queueing included); every agency's scorecard in turn, 8 at a time; the cached answer, 8 at a
time. No target was set for this endpoint: reported only.
"""

from __future__ import annotations

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
from support import record

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
    ("province_c1", "root", 300, 1),
    ("province_c8", "root", 400, 8),
    ("agencies_c8", "all", 505, 8),
    ("cached_c8", "cached", 1000, 8),
]


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
    else:
        paths = [base.format(ROOT_ID) + "&now=" + NOW.replace("+", "%2B")]
    res: dict[str, Any] = {}

    def run() -> None:
        res.update(_load(port, paths, n, c))

    benchmark.pedantic(run, rounds=1, iterations=1)
    lat = res["latencies_ms"]
    rps = len(lat) / res["wall_s"]
    what = {"root": f"province {ROOT_ID} (100 units)", "all": f"all {len(agencies)} agencies "
            "in turn", "cached": f"province {ROOT_ID}, fixed now= (answer cache hit)"}[which]
    bounded = "" if len(lat) == n else f" (stopped at {SECONDS:g} s)"
    record(benchmark, "http", f"{name}_p50_ms", statistics.median(lat), "ms",
           note=f"{len(lat)} requests{bounded}, {c} in flight; {what}")
    record(benchmark, "http", f"{name}_p99_ms", _pct(lat, 0.99), "ms",
           note=f"max {max(lat):,.1f} ms")
    record(benchmark, "http", f"{name}_requests_per_s", rps, "requests/s")
