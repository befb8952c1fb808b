"""The HTTP benchmark's two processes: a server over stored views, and a load client.

    python benchmarks/http_load.py serve --views URL --port P [--now RFC3339]
    python benchmarks/http_load.py load --port P --path PATH[,PATH...] -n N -c C [--seconds S]

``serve`` is ``motcua serve`` without the broker it would join: ``create_app`` over a
``StoreSource`` of the view store at URL, under uvicorn (one process, one event loop; the sync
endpoints run in its thread pool), on 127.0.0.1. With ``--now`` its clock starts at that instant
and ticks with the wall clock, so that a province simulated for 2026 is viewed at the end of
2026 whatever the machine's date, and every request without ``now=`` in its query has its own
instant (no two requests share the API's answer cache, as in production).

``load`` issues N requests (stopping early after S seconds) with C in flight, over C keep-alive
connections, cycling through the paths; it prints one JSON line: latencies (ms) of every
request, wall time, statuses. Its HTTP/1.1 client is a few lines on asyncio streams (a request
written, the head read to its blank line, the body by its Content-Length): httpx spent about as
much CPU per request as the server it measured, on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import re
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


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection: the status, the body read whole."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _LENGTH.search(head)
    if length is None:
        raise RuntimeError(f"no Content-Length in the answer: {head[:200]!r}")
    await reader.readexactly(int(length.group(1)))
    return status


_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


async def _load(args: argparse.Namespace) -> dict[str, object]:
    # A minimal HTTP/1.1 client on asyncio streams (keep-alive, Content-Length bodies): httpx
    # costs ≈ 10× its CPU per request, and on this 2-core machine the client shares the cores
    # with the server it measures.
    paths = args.path.split(",")
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n\r\n".encode()
                for p in paths]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    next_i = 0
    deadline = time.perf_counter() + args.seconds
    conns = [await asyncio.open_connection("127.0.0.1", args.port) for _ in range(args.c)]
    # One request per connection first, unmeasured: connections open, caches warm.
    await asyncio.gather(*(_get(r, w, requests[i % len(requests)])
                           for i, (r, w) in enumerate(conns)))

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_i
        while next_i < args.n and time.perf_counter() < deadline:
            request = requests[next_i % len(requests)]
            next_i += 1
            t = time.perf_counter()
            status = await _get(reader, writer, request)
            lat.append((time.perf_counter() - t) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in conns))
    wall = time.perf_counter() - t0
    for _, w in conns:
        w.close()
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
