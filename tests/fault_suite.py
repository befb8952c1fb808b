"""The fault suite's driver: one run of real processes with faults injected, and its tally.

Used by ``tests/integration/test_faults.py`` (the short form in the test command, the long form
through ``scripts/faults``); the invariants it checks are listed in docs/reliability.md.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from faults import Probe, Role, cli, disorder, lines_of, recorded, role_env, simulate, wait_for

from engine.relay import Relay
from kernel import kafka as K
from kernel.settings import ACTIONS_TOPIC

FAULT_KINDS = ("kill_ingest", "kill_engine", "kill_relay", "kill_project", "kill_replay",
               "restart_broker", "restart_postgres")


@dataclass
class Tally:
    """What fault runs tried and what the invariants found."""

    runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0  # lines of submissions that `motcua ingest` acknowledged
    lost: int = 0  # acknowledged, neither recorded nor dead-lettered
    doubled: int = 0  # recorded or dead-lettered more often than submitted
    stuck: int = 0  # partitions (or spool, relay, views) not at the end once all is quiet
    views_differ: int = 0  # runs whose `replay --verify` found a difference
    dead_lettered: Counter[str] = field(default_factory=Counter)  # acknowledged, by reason

    def add(self, other: Tally) -> None:
        self.runs += other.runs
        self.faults.update(other.faults)
        self.acknowledged += other.acknowledged
        self.lost += other.lost
        self.doubled += other.doubled
        self.stuck += other.stuck
        self.views_differ += other.views_differ
        self.dead_lettered.update(other.dead_lettered)

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "faults_injected": sum(self.faults.values()),
                "faults": dict(sorted(self.faults.items())), "acknowledged": self.acknowledged,
                "lost": self.lost, "doubled": self.doubled, "partitions_stuck": self.stuck,
                "views_differ": self.views_differ,
                "dead_lettered": dict(sorted(self.dead_lettered.items()))}


def junk(n: int, seed: int) -> list[bytes]:
    """Lines the engine must dead-letter exactly once each: not JSON, or JSON without a key."""
    return [b"not json %d.%d" % (seed, i) if i % 2 else
            orjson.dumps({"schema": "motcua.action/1", "type": "received", "n": [seed, i]})
            for i in range(n)]


class FaultRun:
    """One run: a duplicated, reordered stream with junk, ingested in chunks by real
    ``motcua ingest`` processes next to ``motcua engine`` and ``motcua project``, one fault
    injected at a random point of each chunk; then the invariants."""

    def __init__(self, tmp: Path, database_url: str, broker: Any, pg: Any | None, *,
                 seed: int, agencies: int = 2, dossiers: int = 300,
                 faults: Sequence[str] | None = None, chunks: int = 6) -> None:
        self.tmp = tmp
        self.url = database_url
        self.broker = broker
        self.pg = pg
        self.rng = random.Random(seed)
        self.seed = seed
        kinds = [k for k in FAULT_KINDS if pg is not None or k != "restart_postgres"]
        self.plan = list(faults) if faults is not None else [self.rng.choice(kinds)
                                                              for _ in range(chunks)]
        stream = disorder(lines_of(simulate(agencies, dossiers, seed=seed)), seed)
        for line in junk(max(2, len(stream) // 400), seed):
            stream.insert(self.rng.randrange(len(stream) + 1), line)
        size = -(-len(stream) // len(self.plan))
        self.chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        self.env = role_env(tmp / "home", database_url, broker.bootstrap,
                            MOTCUA_HOLD_SECONDS="600")
        self.engine = Role("engine", self.env, tmp)
        self.project = Role("project", self.env, tmp)
        self.probe = Probe(database_url)
        self.submitted: Counter[bytes] = Counter()  # line → ingest runs that were given it
        self.verify_output = ""
        self.doubled_by: Counter[str] = Counter()  # what the doubled count is made of
        self.stuck_by: dict[str, int] = {}  # and the stuck count
        self.stuck_why = ""
        self.tally = Tally(runs=1)

    @property
    def roles(self) -> list[Role]:
        return [self.engine, self.project]

    def run(self) -> Tally:
        acknowledged: list[bytes] = []
        try:
            self.engine.start()
            self.project.start()
            for i, (chunk, fault) in enumerate(zip(self.chunks, self.plan, strict=False)):
                self._ingest(i, chunk, fault)
                acknowledged.extend(chunk)
            self._settle()
            verify = cli(self.env, "replay", "--verify")
            self.verify_output = verify.stdout + verify.stderr
            self.tally.views_differ = int(verify.returncode != 0)
        finally:
            for r in self.roles:
                r.stop()
        self._check(acknowledged)
        return self.tally

    def _ingest(self, i: int, chunk: list[bytes], fault: str) -> None:
        """Ingest one chunk with a fault at a random point; again until acknowledged."""
        path = self.tmp / f"chunk-{i}.ndjson"
        path.write_bytes(b"\n".join(chunk) + b"\n")
        for attempt in range(5):
            ingest = Role("ingest", self.env, self.tmp, str(path), name=f"ingest-{i}")
            self.submitted.update(chunk)
            ingest.start()
            if attempt == 0:
                self._during(ingest, self.rng.uniform(0.0, 1.5))
                self._inject(fault, ingest)
            assert ingest.proc is not None
            try:
                code = ingest.proc.wait(300)
            except subprocess.TimeoutExpired:
                ingest.kill()
                code = -9
            if code == 0 and "published" in ingest.tail():
                self.tally.acknowledged += len(chunk)
                return
        raise AssertionError(f"chunk {i} was never acknowledged:\n{ingest.tail()}")

    def _inject(self, fault: str, ingest: Role) -> None:
        self.tally.faults[fault] += 1
        if fault == "kill_ingest":
            ingest.kill()
        elif fault in ("kill_engine", "kill_relay"):
            if fault == "kill_relay":  # a moment when the relay is behind the store
                self._until(lambda: self.probe.positions(Relay.EVENTS).get(Relay.EVENTS, 0)
                            < self._last_pos(), 3.0)
            self.engine.kill()
            self.engine.start()
        elif fault == "kill_project":
            self.project.kill()
            self.project.start()
        elif fault == "kill_replay":
            replay = Role("replay", self.env, self.tmp, name="replay").start()
            self._during(replay, self.rng.uniform(0.5, 3.0))
            replay.kill()
            done = cli(self.env, "replay")  # resumes (or restarts) and swaps under the projection
            assert done.returncode == 0, done.stderr
        elif fault == "restart_broker":
            self.broker.restart()
        elif fault == "restart_postgres":
            assert self.pg is not None  # the fault is only drawn with a PostgreSQL server
            self.pg.restart()
        else:  # pragma: no cover
            raise AssertionError(fault)

    @staticmethod
    def _during(role: Role, seconds: float) -> None:
        """Let ``role`` run for ``seconds`` (a random point of its life), or until it ends."""
        until = time.monotonic() + seconds
        while role.alive and time.monotonic() < until:
            time.sleep(0.02)

    def _last_pos(self) -> int:
        rows = self.probe._rows(self.url, "SELECT MAX(pos) FROM motcua_facts")
        return int(rows[0][0] or 0) if rows else 0

    @staticmethod
    def _until(cond: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _settle(self) -> None:
        """Wait until everything acknowledged is recorded, relayed and folded; count what
        stays behind as stuck."""
        def quiet() -> bool:
            return (self.probe.spool_backlog() == 0 and ("held", None) not in self.probe.outcomes()
                    and self.probe.relayed_all(self._last_pos())
                    and self.probe.projection_caught_up() and not self._engine_behind())
        try:
            wait_for(quiet, "every acknowledged action to be recorded and folded", timeout=180,
                     roles=self.roles, every=0.2)
        except AssertionError as e:
            behind = {"engine partitions": self._engine_behind(),
                      "spool": int(self.probe.spool_backlog() > 0),
                      "held": int(("held", None) in self.probe.outcomes()),
                      "relay": int(not self.probe.relayed_all(self._last_pos())),
                      "projection": int(not self.probe.projection_caught_up())}
            self.stuck_by = {k: v for k, v in behind.items() if v}
            self.stuck_why = str(e)[-3000:]
            self.tally.stuck = sum(behind.values()) or 1

    def _engine_behind(self) -> int:
        """Partitions of motcua.actions whose end the engine has not recorded."""
        ends = K.end_offsets(self.broker.bootstrap, ACTIONS_TOPIC)
        logs = self.probe.logs()
        if not logs:
            return len([e for e in ends.values() if e > 0])
        log = logs[-1]
        rows = self.probe._rows(self.url, "SELECT part, MAX(off) FROM motcua_intake WHERE log = ? "
                                "AND topic = ? GROUP BY part", (log, ACTIONS_TOPIC))
        done = {int(r[0]): int(r[1]) for r in rows}
        return sum(1 for p, end in ends.items() if end > 0 and done.get(p, -1) < end - 1)

    def _check(self, acknowledged: list[bytes]) -> None:
        """Lost, doubled, and what was dead-lettered, by reason."""
        accepted = self.probe.accepted_keys()
        dead = self.probe.dead_letters()
        reasons = dict(self.probe._rows(self.url, "SELECT raw, reason FROM motcua_dead_letters"))
        t = self.tally
        doubled: Counter[str] = Counter()
        for line in set(acknowledged):
            key = _key(line)
            if dead[line] > self.submitted[line]:
                doubled["dead letters"] += dead[line] - self.submitted[line]
            if key is not None and accepted[key] > 1:
                doubled["accepted keys"] += accepted[key] - 1
            if (key is None or accepted[key] == 0) and dead[line] == 0:
                t.lost += 1
            elif dead[line] and (key is None or accepted[key] == 0):
                t.dead_lettered[str(reasons.get(line) or "unknown")] += 1
        got = recorded(self.url)
        doubled["events"] = sum(n - 1 for n in got.causes.values() if n > 1)
        doubled["spool settlements"] = self.probe.spool_settled_twice()
        doubled["ledger offsets"] = self.probe.repeated_offsets()
        self.doubled_by = +doubled
        t.doubled = sum(doubled.values())


def _key(line: bytes) -> str | None:
    """The (source, action_id) key of a line, as the intake ledger writes it; None without."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("source"), str) or not isinstance(
            doc.get("action_id"), str):
        return None
    return f"{doc['source']}\x1f{doc['action_id']}"


def dump(probe: Probe, where: Path) -> Path:
    """The store's ledger, events, dead letters and positions as JSON lines under ``where``
    (evidence of a failed run: the PostgreSQL cluster goes away with the test session)."""
    out = where / "dump"
    out.mkdir(exist_ok=True)
    tables = {
        "intake": "SELECT id, log, topic, part, off, outcome, akey, reason, recorded_at "
                  "FROM motcua_intake ORDER BY id",
        "dead_letters": "SELECT id, log, part, off, akey, reason, raw FROM motcua_dead_letters "
                        "ORDER BY id",
        "events": "SELECT originator_id, originator_version, topic, state FROM stored_events",
        "tracking": "SELECT application_name, notification_id FROM notification_tracking",
        "spool_done": "SELECT id, log, part, off, at FROM motcua_spool_done ORDER BY id",
        "positions": "SELECT name, value FROM motcua_positions",
    }
    for name, sql in tables.items():
        rows = probe._rows(probe.url, sql)
        with (out / f"{name}.jsonl").open("wb") as f:
            for r in rows:
                f.write(orjson.dumps([bytes(v).decode("utf-8", "replace")
                                      if isinstance(v, bytes | memoryview) else str(v)
                                      for v in r]) + b"\n")
    return out
