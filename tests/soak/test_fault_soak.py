"""The fault suite's long form (``scripts/faults RUNS``): collected only when
``MOTCUA_FAULT_RUNS`` is set (tests/conftest.py); the short form is
tests/integration/test_faults.py.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import orjson
import pytest
from conftest import PgServer
from fault_suite import FaultRun, Tally, dump

from kernel.broker import BundledBroker

ROOT = Path(__file__).resolve().parents[2]


def test_fault_suite_long_form(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory,
                               ) -> None:
    """``MOTCUA_FAULT_RUNS`` runs, on SQLite and PostgreSQL in turn, random faults: the
    invariants hold in every one; the tally goes to benchmarks/results/faults.json."""
    import psycopg

    runs = int(os.environ["MOTCUA_FAULT_RUNS"])
    seed = int(os.environ.get("MOTCUA_FAULT_SEED", "1"))
    total = Tally()
    for i in range(runs):
        tmp = tmp_path_factory.mktemp(f"faults-{i}")
        rng = random.Random(seed + i)
        if i % 2:
            name = f"motcua_faults_{os.getpid()}_{i}"
            with psycopg.connect(pg_server.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url, pg = pg_server.url(name), pg_server
        else:
            url, pg = f"sqlite:///{tmp / 'motcua.db'}", None
        with BundledBroker(tmp / "broker") as broker:
            run = FaultRun(tmp, url, broker, pg, seed=seed + i, agencies=rng.randint(2, 4),
                           dossiers=rng.randint(300, 900), chunks=rng.randint(6, 10))
            tally = run.run()
        if tally.doubled or tally.stuck or tally.lost or tally.views_differ:
            print(f"evidence: {dump(run.probe, tmp)}", flush=True)
        total.add(tally)
        print(f"run {i + 1}/{runs} ({'postgresql' if pg else 'sqlite'}, seed {seed + i}, "
              f"{run.plan}): {tally.as_dict()}", flush=True)
        assert tally.doubled == 0, (dict(run.doubled_by), url, tmp)
        assert tally.stuck == 0, (run.stuck_by, run.stuck_why, tmp)
        assert tally.views_differ == 0, run.verify_output
        assert (tally.lost, tally.doubled, tally.stuck, tally.views_differ) == (0, 0, 0, 0), \
            tally.as_dict()
    out = ROOT / "benchmarks" / "results" / "faults.json"
    out.write_bytes(orjson.dumps(total.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    print(f"total: {total.as_dict()}")
