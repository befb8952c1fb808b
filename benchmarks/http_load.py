"""The HTTP benchmark's two processes: a server over stored views, and a load client.

    python benchmarks/http_load.py serve --views URL --port P [--now RFC3339]
    python benchmarks/http_load.py load --port P --path PATH[,PATH...] -n N -c C [--seconds S]

``serve`` is ``motcua serve`` without the broker it would join: ``create_app`` over a
``StoreSource`` of the view store at URL, under uvicorn (one process, one event loop; the sync
endpoints run in its thread pool), on 127.0.0.1. With ``--now`` its clock starts at that instant
and ticks with the wall clock, so that a province simulated for 2026 is viewed at the end of
2026 whatever the machine's date, and every request without ``now=`` in its query has its own
instant (no two requests share the API's answer cache, as in production).

``load`` issues N requests (stopping early after S seconds) with C in flight, over keep-alive
connections (httpx.AsyncClient, C connections), cycling through the paths; it prints one JSON
line: latencies (ms) of every request, wall time, statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from projections.api import create_app
    from projections.ruleset import load_ruleset
    from projections.source import StoreSource
    from projections.store import ViewStore

    source = StoreSource(ViewStore(args.views))
    if args.now:
        origin = datetime.fromisoformat(args.now)
        t0 = time.monotonic()

        def clock() -> datetime:
            return origin + timedelta(seconds=time.monotonic() - t0)

        app = create_app(source, load_ruleset("portal-2026"), clock=clock)
    else:
        app = create_app(source, load_ruleset("portal-2026"))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                lifespan="off")


async def _load(args: argparse.Namespace) -> dict[str, object]:
    import httpx

    paths = args.path.split(",")
    lat: list[float] = []
    statuses: dict[int, int] = {}
    next_i = 0
    deadline = time.perf_counter() + args.seconds
    limits = httpx.Limits(max_connections=args.c, max_keepalive_connections=args.c)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}", limits=limits,
                                 timeout=30.0) as client:
        # One request per connection first, unmeasured: connections open, caches warm.
        await asyncio.gather(*(client.get(paths[i % len(paths)]) for i in range(args.c)))

        async def worker() -> None:
            nonlocal next_i
            while next_i < args.n and time.perf_counter() < deadline:
                path = paths[next_i % len(paths)]
                next_i += 1
                t = time.perf_counter()
                r = await client.get(path)
                await r.aread()
                lat.append((time.perf_counter() - t) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.c)))
        wall = time.perf_counter() - t0
    return {"latencies_ms": lat, "wall_s": wall, "statuses": statuses}


def load(args: argparse.Namespace) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(asyncio.run(_load(args)),
                                         option=orjson.OPT_NON_STR_KEYS) + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--views", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--now")
    ld = sub.add_parser("load")
    ld.add_argument("--port", type=int, required=True)
    ld.add_argument("--path", required=True, help="comma-separated request paths, cycled")
    ld.add_argument("-n", type=int, default=500)
    ld.add_argument("-c", type=int, default=4)
    ld.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    serve(args) if args.cmd == "serve" else load(args)


if __name__ == "__main__":
    main()
