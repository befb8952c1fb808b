"""Past one machine: several ``motcua engine`` and ``motcua project`` processes in one group.

Every test runs real processes (``tests/faults.Role``) on a broker of its own with six partitions
per topic, against a fresh database on the real PostgreSQL server, and checks what the stores hold
against references computed in this process: the reference engine (the same actions recorded
once, in order), its events folded once, and the naive scorer (``tests/oracle.py``).

- four processes, one engine and one projection SIGKILLed mid-stream and replaced;
- a zombie engine and a zombie projection (SIGSTOPped at their commit, past the session timeout,
  while another process takes their partitions) are fenced and record nothing;
- the deadline watcher and a replay while members join and die.

A zombie is stopped *at* its commit deterministically: a statement trigger on the ownership table
makes the fence check of a connection whose ``application_name`` starts with ``zombie`` wait for
an advisory lock the test holds (``PGAPPNAME`` names the connections of that one process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from faults import (
    ROOT,
    Probe,
    Recorded,
    Role,
    disorder,
    fold_all,
    future_start,
    lines_of,
    recorded,
    recorded_by,
    reference_engine,
    role_env,
)
from oracle import Oracle

from kernel.broker import BundledBroker
from kernel.settings import ACTIONS_TOPIC
from motcua.ingest import publish
from motcua.pipeline import engine_at
from producers.national import generate_national
from producers.simulator import SimConfig, generate
from projections.periods import parse_instant, parse_period
from projections.ruleset import load_ruleset
from projections.views import scorecard

pytestmark = pytest.mark.postgres

PARTITIONS = 6
SESSION_MS = 4000  # tansu answers a JoinGroup after half of it; a dead member goes after it
RULESET = load_ruleset("portal-2026")
YEAR = future_start().year
PERIOD, NOW = str(YEAR), f"{YEAR}-11-15T12:00:00+07:00"
AGENCIES = ("P01", "P01.2", "P02.3")  # a province and two units (of two provinces)
GATE_LOCK = 766


# ----- the stream and its references ---------------------------------------------------------


@dataclass(frozen=True)
class Province:
    """A few simulated provinces: the actions in time order, the stream with every action twice
    (subjects interleaved), and what recording them once must give."""

    lines: list[bytes]
    stream: list[bytes]
    reference: Recorded
    events: int  # how many events the reference recorded
    want: dict[str, dict[str, Any]]  # agency -> scorecard of the reference's events, folded once
    oracle: dict[str, dict[str, Any]]  # agency -> {"counts": ..., "total": ...} of the oracle


@pytest.fixture(scope="module")
def provinces(tmp_path_factory: pytest.TempPathFactory) -> Province:
    cfg = SimConfig(agencies=4, dossiers=700, start=future_start(), days=300)
    actions = list(generate_national(cfg, 3))
    lines = lines_of(actions)
    engine = reference_engine(tmp_path_factory.mktemp("reference") / "reference.db", lines)
    try:
        ref = recorded_by(engine, keep_events=True)
    finally:
        engine.close()
    counters = fold_all(ref.events)
    period, now = parse_period(PERIOD), parse_instant(NOW)
    want = {a: scorecard(counters, RULESET, a, period, now) for a in AGENCIES}
    naive = Oracle(actions, RULESET)
    oracle = {a: {"counts": naive.counts(a, period.start, period.end, now),
                  "total": naive.scorecard(a, period.start, period.end, now)["total"]}
              for a in AGENCIES}
    events = len(ref.events)
    ref.events = []
    return Province(lines, disorder(lines), ref, events, want, oracle)


# ----- processes -----------------------------------------------------------------------------


class Member(Role):
    """One ``motcua engine|project`` process of the group, with a name and a log of its own."""

    def __init__(self, role: str, name: str, env: dict[str, str], log_dir: Path) -> None:
        d = log_dir / name
        d.mkdir(parents=True, exist_ok=True)
        super().__init__(role, env, d)
        self.name = name

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def logged(self, event: str) -> bool:
        return f'"event":"{event}"' in self.tail(10**7).replace(" ", "")


class Cluster:
    """The processes of one test, the store they share, and waits that quote their logs."""

    def __init__(self, tmp_path: Path, url: str, bootstrap: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.bootstrap = bootstrap
        self.env = role_env(tmp_path / "home", url, bootstrap,
                            MOTCUA_PARTITIONS=str(PARTITIONS),
                            MOTCUA_SESSION_TIMEOUT_MS=str(SESSION_MS),
                            MOTCUA_HOLD_SECONDS="600", MOTCUA_LOG_LEVEL="info")
        self.members: list[Member] = []
        self.probe = Probe(url)

    def start(self, role: str, **env: str) -> Member:
        n = sum(m.role == role for m in self.members) + 1
        m = Member(role, f"{role}-{n}", {**self.env, **env}, self.tmp_path)
        self.members.append(m)
        return m.start()

    def publish(self, lines: list[bytes]) -> None:
        publish(lines, self.bootstrap, None, PARTITIONS)

    def alive(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role and m.alive]

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {m.name} (pid {m.proc.pid if m.proc else '-'}, "
                         f"{'alive' if m.alive else 'gone'}):\n{m.tail(chars)}"
                         for m in self.members)

    def until(self, cond: Callable[[], Any], what: str, timeout: float = 60.0,
              every: float = 0.1, expect_alive: tuple[Member, ...] | None = None) -> Any:
        """Poll ``cond``; fail naming ``what`` with every process's log tail. A member that is
        expected alive (default: those alive when the wait starts) must not exit meanwhile."""
        watched = expect_alive if expect_alive is not None else tuple(
            m for m in self.members if m.alive)
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            for m in watched:
                if not m.alive and m.proc is not None and m.proc.returncode != -signal.SIGKILL:
                    raise AssertionError(f"{m.name} exited with {m.proc.returncode} while "
                                         f"waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n"
                                     f"{self.state()}\n{self.logs()}")
            time.sleep(every)

    def state(self) -> str:
        """What the stores say, for a failure message."""
        p = self.probe
        try:
            return (f"ledger {p.intake()}/{self.expected} {dict(p.outcomes())}; relayed "
                    f"{p.positions('relay:events')}; applied {p.view_positions()}; engine "
                    f"owners {self.engine_owners()}; view owners {self.view_owners()}")
        except Exception as e:  # noqa: BLE001 - a failure message must not fail
            return f"(store state unavailable: {e!r})"

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.resume()  # a paused process cannot take SIGTERM
        for m in reversed(self.members):
            m.stop()

    # ----- the store, as plain SQL -----------------------------------------------------------

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def engine_owners(self) -> dict[int, int]:
        """actions partition -> pid of the engine that claimed it last."""
        return {p: _pid(o) for p, o in self.rows(
            "SELECT part, owner FROM motcua_owners WHERE topic=%s", (ACTIONS_TOPIC,))}

    def view_owners(self) -> dict[int, int]:
        return {p: _pid(o) for p, o in self.rows("SELECT part, owner FROM view_owners")}

    def owned_by(self, owners: dict[int, int], *members: Member) -> bool:
        pids = {m.pid for m in members}
        return len(owners) == PARTITIONS and set(owners.values()) <= pids

    def settled(self, events: int) -> bool:
        """Every published action recorded, every event relayed and applied."""
        p = self.probe
        return (p.intake() == self.expected and ("held", None) not in p.outcomes()
                and p.relayed_all(events) and p.projection_caught_up())

    expected = 0

    # ----- the CLI -------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "motcua", *args], cwd=ROOT, env=self.env,
                              capture_output=True, timeout=timeout, check=False)

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, (f"motcua {' '.join(args)} exited {done.returncode}:\n"
                                      f"{done.stderr.decode()[-3000:]}")
        return orjson.loads(done.stdout)


def _pid(owner: str) -> int:
    """``engine@host:pid`` / ``projection@host:pid:thread`` -> pid."""
    return int(owner.split("@", 1)[1].split(":")[1])


@pytest.fixture
def cluster(pg_url: str, fresh_broker: BundledBroker, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, pg_url, fresh_broker.bootstrap)
    try:
        yield c
    finally:
        c.stop()


# ----- the zombie gate -----------------------------------------------------------------------


class Gate:
    """Holds the fence check of a ``zombie*`` connection: a statement-level trigger on the
    ownership table waits for an advisory lock while the test holds it. The check itself (the
    epoch compare) runs only once the gate opens, so it sees whatever claim happened meanwhile."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(
            "CREATE OR REPLACE FUNCTION motcua_test_gate() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF current_setting('application_name') LIKE 'zombie%' THEN "
            f"PERFORM pg_advisory_xact_lock_shared({GATE_LOCK}); END IF; RETURN NULL; END $$")
        self.conn.execute(f"CREATE TRIGGER motcua_test_gate BEFORE UPDATE ON {table} "
                          "FOR EACH STATEMENT EXECUTE FUNCTION motcua_test_gate()")

    def close(self) -> None:
        self.conn.execute(f"SELECT pg_advisory_lock({GATE_LOCK})")

    def open(self) -> None:
        self.conn.execute(f"SELECT pg_advisory_unlock({GATE_LOCK})")

    def waiting(self, app: str) -> bool:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name=%s AND "
            "wait_event_type='Lock' AND wait_event='advisory'", (app,)).fetchone()
        return bool(row and row[0])

    def drop(self) -> None:
        self.conn.close()


# ----- checks --------------------------------------------------------------------------------


def assert_recorded_once(c: Cluster, p: Province) -> None:
    """Every offset one ledger row; every action accepted once and repeated once; the same
    facts as the reference engine, one event per (action, subject)."""
    assert c.probe.repeated_offsets() == 0, "an offset has more than one ledger row"
    assert c.probe.outcomes() == Counter({("accepted", None): len(p.lines),
                                          ("duplicate", None): len(p.lines)})
    got = recorded(c.url)
    repeated = {k: n for k, n in got.causes.items() if n != 1}
    assert not repeated, f"actions recorded more than once: {list(repeated.items())[:5]}"
    assert got.actions() == p.reference.actions()
    got_shape, ref_shape = got.shape(), p.reference.shape()
    differ = [sid for sid in ref_shape.keys() | got_shape.keys()
              if got_shape.get(sid) != ref_shape.get(sid)]
    assert not differ, (f"{len(differ)} subjects differ from the reference, e.g. " + "; ".join(
        f"{sid}: got {got_shape.get(sid)} want {ref_shape.get(sid)}" for sid in differ[:3]))


def assert_scores(c: Cluster, p: Province) -> None:
    """``motcua scores --json`` equals the reference fold, and its counts and total equal the
    naive scorer's."""
    for agency in AGENCIES:
        card = c.cli_json("scores", agency, "--period", PERIOD, "--now", NOW)
        assert card == p.want[agency], f"scores of {agency} differ from the reference fold"
        counts = {x["code"]: (x["numerator"], x["denominator"])
                  for g in card["groups"] for x in g["criteria"]}
        naive = {code: tuple(p.oracle[agency]["counts"][code]) for code in counts}
        assert counts == naive, f"counts of {agency} differ from the naive scorer"
        assert card["total"] == p.oracle[agency]["total"]


def assert_status(c: Cluster, engines: list[Member], projections: list[Member]) -> None:
    """``motcua status --json``: every partition of both roles owned by a live process, lag 0."""
    s = c.cli_json("status")
    e_pids, p_pids = {m.pid for m in engines}, {m.pid for m in projections}
    rows = {r["partition"]: r for r in s["engine"]}
    assert sorted(rows) == list(range(PARTITIONS)), s["engine"]
    for r in rows.values():
        assert r["owner"] and _pid(r["owner"]) in e_pids, f"engine partition not owned: {r}"
        assert r["lag"] == 0, f"engine partition lags: {r}"
    rows = {r["partition"]: r for r in s["projection"]}
    assert set(range(PARTITIONS)) <= set(rows), s["projection"]
    for part in range(PARTITIONS):
        r = rows[part]
        assert r["owner"] and _pid(r["owner"]) in p_pids, f"projection partition not owned: {r}"
        assert r["lag"] == 0, f"projection partition lags: {r}"
    assert s["held_actions"] == 0


def status_lag_zero(c: Cluster) -> bool:
    """In-process ``status`` (cheaper than the CLI) for the waits."""
    from motcua.status import status
    from projections.store import ViewStore

    engine = engine_at(c.url)
    views = ViewStore(c.url)
    try:
        s = status(engine, views, c.bootstrap, None)
    finally:
        views.close()
        engine.close()
    lags = [r["lag"] for r in s["engine"]] + [
        r["lag"] for r in s["projection"] if r["partition"] < PARTITIONS]
    return len(lags) == 2 * PARTITIONS and all(x == 0 for x in lags)


# ----- a. four processes, two killed ---------------------------------------------------------


def test_engines_and_projections_killed_mid_stream_record_and_score_exactly_once(
    provinces: Province, cluster: Cluster,
) -> None:
    """Two engines and two projections share six partitions; one of each is SIGKILLed
    mid-stream and a third of each joins. Every action is recorded once, the scores equal
    the references, and ``motcua status`` shows every partition owned and caught up."""
    c, p = cluster, provinces
    total = len(p.stream)
    c.expected = total
    first = total * 2 // 3  # the rest comes after the kill
    c.publish(p.stream[:first])
    e1, e2 = c.start("engine"), c.start("engine")
    p1, p2 = c.start("project"), c.start("project")
    c.until(lambda: c.probe.intake() > total // 8 and c.probe.projected() > 0
            and len(c.engine_owners()) == PARTITIONS, "the group to record and fold")
    # The relay's owner (actions partition 0) and one projection die without a word.
    victim = e1 if c.engine_owners()[0] == e1.pid else e2
    victim.kill()
    p1.kill()
    at_kill = c.probe.intake()
    assert at_kill < total, "the kill came too late to be mid-stream"
    e3, p3 = c.start("engine"), c.start("project")
    c.publish(p.stream[first:])
    engines = [m for m in (e1, e2, e3) if m is not victim]
    c.until(lambda: c.settled(p.events), "every action recorded, relayed and folded",
            timeout=150)
    c.until(lambda: status_lag_zero(c), "status to show lag 0 everywhere", timeout=30,
            every=0.5)
    assert_status(c, engines, [p2, p3])
    assert_recorded_once(c, p)
    assert_scores(c, p)


# ----- b. zombies ----------------------------------------------------------------------------


def test_a_paused_engine_is_fenced_and_records_nothing_it_held(
    provinces: Province, cluster: Cluster,
) -> None:
    """An engine stopped (SIGSTOP) at its commit past the session timeout loses its partitions
    to another engine; when it goes on, its commit is refused (FencedError) and nothing of the
    batch it held is recorded: the new owner records those offsets, once."""
    c, p = cluster, provinces
    c.expected = len(p.stream)
    c.publish(p.stream)
    zombie = c.start("engine", PGAPPNAME="zombie-engine")
    c.until(lambda: c.probe.intake() > 0 and c.owned_by(c.engine_owners(), zombie),
            "the first engine to own every partition and record")
    gate = Gate(c.url, "motcua_owners")
    try:
        gate.close()
        c.until(lambda: gate.waiting("zombie-engine"), "the engine to reach its fence check")
        zombie.pause()
        paused_at = time.time()
        before = c.probe.intake()
        heir = c.start("engine")
        c.until(lambda: c.owned_by(c.engine_owners(), heir),
                "the second engine to claim every partition", timeout=45,
                expect_alive=(heir,))
        gate.open()
        zombie.resume()
        c.until(lambda: zombie.logged("engine_fenced"), "the zombie's commit to be fenced",
                timeout=20)
    finally:
        gate.open()
        gate.drop()
    c.until(lambda: c.settled(p.events) or (c.probe.intake() == len(p.stream)
                                            and ("held", None) not in c.probe.outcomes()
                                            and c.probe.relayed_all(p.events)),
            "every action recorded and relayed", timeout=120)
    # Rows stamped before the pause are exactly those committed before it: the batch the
    # zombie held (stamped before it stopped) was never committed.
    stamped = c.rows("SELECT count(*) FROM motcua_intake WHERE topic=%s AND recorded_at < %s",
                     (ACTIONS_TOPIC, paused_at))[0][0]
    assert stamped == before, f"{stamped - before} ledger rows of the zombie's batch committed"
    assert_recorded_once(c, p)


def test_a_paused_projection_is_fenced_and_writes_nothing(
    provinces: Province, cluster: Cluster,
) -> None:
    """A projection stopped at its flush past the session timeout loses its partitions; when
    it goes on, its flush is refused (ViewsFencedError) and the scores and a verifying replay
    show every event applied once."""
    c, p = cluster, provinces
    c.expected = len(p.stream)
    c.publish(p.stream)
    c.start("engine")
    c.until(lambda: c.probe.intake() > len(p.stream) // 3, "the engine to record a backlog")
    zombie = c.start("project", PGAPPNAME="zombie-projection")
    c.until(lambda: c.probe.projected() > 0 and c.owned_by(c.view_owners(), zombie),
            "the first projection to own every partition and fold")
    gate = Gate(c.url, "view_owners")
    try:
        gate.close()
        c.until(lambda: gate.waiting("zombie-projection"),
                "the projection to reach its fence check")
        zombie.pause()
        heir = c.start("project")
        c.until(lambda: c.owned_by(c.view_owners(), heir),
                "the second projection to claim every partition", timeout=45,
                expect_alive=(heir,))
        gate.open()
        zombie.resume()
        c.until(lambda: zombie.logged("projection_fenced"), "the zombie's flush to be fenced",
                timeout=20)
    finally:
        gate.open()
        gate.drop()
    c.until(lambda: c.settled(p.events), "every event folded", timeout=120)
    assert_scores(c, p)
    done = c.cli("replay", "--verify")
    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-2000:]


# ----- c. timers and replays during a rebalance ----------------------------------------------


def overdue_stream() -> tuple[list[bytes], int]:
    """A catalog and dossiers received 13 months ago, never resolved: each is overdue now."""
    start = date.today() - timedelta(days=400)
    actions = [a for a in generate(SimConfig(agencies=4, dossiers=2500, start=start, days=30,
                                             seed=11))
               if "dossier_id" not in a or a["type"] == "received"]
    return disorder(lines_of(actions)), sum(a["type"] == "received" for a in actions)


def test_each_overdue_dossier_is_marked_once_while_engines_join_and_die(
    cluster: Cluster,
) -> None:
    """The deadline watchers of several engines race for the same due dossiers while one
    engine is SIGKILLed and another joins: each overdue dossier gets one BecameOverdue."""
    c = cluster
    stream, dossiers = overdue_stream()
    c.expected = len(stream)
    e1, e2 = c.start("engine"), c.start("engine")
    chunks = [stream[i * len(stream) // 8:(i + 1) * len(stream) // 8] for i in range(8)]
    c.publish(chunks[0])
    c.until(lambda: overdue_count(c) > 0, "the watchers to mark a dossier overdue")
    c.publish(chunks[1] + chunks[2])
    c.until(lambda: c.probe.intake() > len(chunks[0]), "the engines to record more")
    # The relay's owner dies while the watchers work; another engine joins at once, in the
    # middle of the rebalance; the rest of the stream arrives a chunk at a time meanwhile,
    # each once the engines have recorded something more (progress, not time).
    victim = e1 if c.engine_owners().get(0) == e1.pid else e2
    victim.kill()
    marked_at_kill = overdue_count(c)
    c.start("engine")
    for chunk in chunks[3:]:
        before = c.probe.intake()
        c.publish(chunk)

        def recorded_more(b: int = before) -> bool:
            return bool(c.probe.intake() > b)

        c.until(recorded_more, "the engines to keep recording", timeout=60)
    assert marked_at_kill < dossiers, "the kill came after the watchers were done"

    def done() -> bool:
        return (c.probe.intake() == len(stream) and ("held", None) not in c.probe.outcomes()
                and overdue_count(c) >= dossiers and not c.rows(
                    "SELECT 1 FROM motcua_deadlines WHERE due <= %s LIMIT 1", (time.time(),)))

    c.until(done, f"all {dossiers} dossiers marked overdue", timeout=120)
    per = c.rows("SELECT originator_id, count(*) FROM motcua_events WHERE topic LIKE "
                 "'%%BecameOverdue' GROUP BY originator_id")
    twice = [(o, n) for o, n in per if n != 1]
    assert not twice, f"dossiers marked overdue more than once: {twice[:5]}"
    assert len(per) == dossiers
    assert c.probe.repeated_offsets() == 0
    assert c.probe.outcomes() == Counter({("accepted", None): len(stream) // 2,
                                          ("duplicate", None): len(stream) // 2})


def overdue_count(c: Cluster) -> int:
    rows = c.rows("SELECT count(*) FROM motcua_events WHERE topic LIKE '%%BecameOverdue'")
    return int(rows[0][0]) if rows else 0


def test_a_replay_while_a_projection_dies_and_another_joins_verifies(
    provinces: Province, cluster: Cluster,
) -> None:
    """``motcua replay`` runs while new events flow, one projection is SIGKILLed and another
    joins; afterwards ``motcua replay --verify`` finds the live views equal to the history."""
    c, p = cluster, provinces
    c.expected = len(p.stream)
    half = len(p.stream) // 2
    c.publish(p.stream[:half])
    c.start("engine")
    p1, p2 = c.start("project"), c.start("project")
    c.until(lambda: c.probe.intake() == half and c.probe.projection_caught_up()
            and len(c.view_owners()) == PARTITIONS, "the first half folded")
    replay = subprocess.Popen([sys.executable, "-m", "motcua", "replay"], cwd=ROOT, env=c.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        c.publish(p.stream[half:])
        p1.kill()
        c.start("project")
        out, err = replay.communicate(timeout=120)
    finally:
        if replay.poll() is None:
            replay.kill()
    assert replay.returncode == 0, (out + err).decode()[-3000:]
    c.until(lambda: c.settled(p.events), "every event folded after the replay", timeout=120)
    result = c.cli_json("replay", "--verify")
    assert result["equal"], result["differences"][:10]
    assert_scores(c, p)
    del p2
