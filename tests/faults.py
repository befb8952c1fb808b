"""Fault-injection helpers: motcua roles as real subprocesses, store probes, streams with faults.

A test starts ``motcua engine`` / ``motcua project`` with ``Role``, publishes with the real ingest
publisher, watches the stores with ``Probe`` (plain SQL, so the probe never takes part in the
engine's own transactions), and SIGKILLs a role whenever it likes. Every wait has a deadline and,
when it passes, fails with the tail of the roles' stderr.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Self

import orjson

from engine.app import Engine, Message
from engine.relay import Relay, event_message
from kernel import kafka as K
from kernel.idle import IdleWait
from kernel.kafka import ensure_all_topics
from kernel.settings import ACTIONS_TOPIC
from motcua.ingest import Published, publish, subject_key
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.fold import Counters
from projections.store import views_url

ROOT = Path(__file__).resolve().parents[1]
RULESET = "portal-2026"
# Events an action records on a subject other than its own.
CROSS_SUBJECT = frozenset({"FeedbackLinked"})


# ----- streams -------------------------------------------------------------------------------


def future_start() -> date:
    """A simulation start after every due time the engine's wall-clock deadline watcher could
    reach during a test run, so that no ``BecameOverdue`` depends on processing speed."""
    return date(date.today().year + 2, 1, 1)


def simulate(agencies: int, dossiers: int, seed: int = 7, days: int = 300) -> list[dict[str, Any]]:
    """A simulated province's actions in time order."""
    return list(generate(SimConfig(agencies=agencies, dossiers=dossiers, seed=seed,
                                   start=future_start(), days=days)))


def lines_of(actions: Iterable[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(a) for a in actions]


def disorder(lines: Sequence[bytes], seed: int = 1) -> list[bytes]:
    """Every line twice: subjects interleaved at random (one subject's first copies keep their
    order, as Kafka keeps one key's order), each second copy somewhere after its first."""
    rng = random.Random(seed)
    queues: dict[bytes | None, list[bytes]] = defaultdict(list)
    for line in lines:
        queues[subject_key(line)].append(line)
    picks = [k for k, q in queues.items() for _ in q]
    rng.shuffle(picks)
    heads = dict.fromkeys(queues, 0)
    firsts: list[bytes] = []
    for k in picks:
        firsts.append(queues[k][heads[k]])
        heads[k] += 1
    later: dict[int, list[bytes]] = defaultdict(list)
    for i, line in enumerate(firsts):
        later[rng.randint(i + 1, len(firsts))].append(line)
    out: list[bytes] = []
    for i, line in enumerate(firsts):
        out.extend(later.pop(i, ()))
        out.append(line)
    out.extend(later.pop(len(firsts), ()))
    return out


# ----- recorded facts ------------------------------------------------------------------------


@dataclass
class Recorded:
    """What an event store holds, in a form two stores can be compared by."""

    types: dict[str, list[str]] = field(default_factory=dict)  # originator → event types
    facts: dict[str, Any] = field(default_factory=dict)  # originator → last facts
    # (source, action_id, originator) → events it caused there: one action may touch two
    # subjects (a feedback linked to its dossier), but each subject at most once.
    causes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    events: list[tuple[Any, ...]] = field(default_factory=list)  # facts cache rows

    def actions(self) -> set[tuple[str, str]]:
        """The (source, action_id) of every action that caused an event."""
        return {(s, a) for s, a, _ in self.causes}

    def shape(self) -> dict[str, tuple[tuple[str, ...], int, Any]]:
        """Per subject: the types of the events its own actions caused, in order; how many
        feedback links it got; its final facts.

        A link is caused by a feedback action, keyed by the feedback id and so on another
        partition: where it falls among the dossier's own events is not defined by Kafka.
        """
        return {sid: (tuple(x for x in t if x not in CROSS_SUBJECT),
                      sum(x in CROSS_SUBJECT for x in t), self.facts.get(sid))
                for sid, t in self.types.items()}


def recorded(database_url: str, keep_events: bool = False) -> Recorded:
    """Walk the whole notification log of a store (with the recorder, whose page size is ours)."""
    engine = engine_at(database_url, hold_seconds=3600)
    try:
        return recorded_by(engine, keep_events)
    finally:
        engine.close()


def recorded_by(engine: Engine, keep_events: bool = False) -> Recorded:
    out = Recorded()
    recorder = engine.app.recorder
    pos = 0
    while True:
        notes = recorder.select_notifications(pos + 1, 5000)
        if not notes:
            return out
        facts = {r[0]: r for r in engine.store.read_facts(pos + 1, 5000, notes[-1].id)}
        for n in notes:
            state = orjson.loads(n.state)
            sid = str(n.originator_id)
            out.types.setdefault(sid, []).append(n.topic.rsplit(".", 1)[-1])
            row = facts[n.id]
            out.facts[sid] = None if row[7] is None else orjson.loads(row[7])
            cause = state.get("cause") or {}
            if cause.get("action_id") is not None:
                out.causes[(str(cause["source"]), str(cause["action_id"]), sid)] += 1
            if keep_events:
                out.events.append(row)
        pos = notes[-1].id


def reference_engine(db_path: Path, lines: Sequence[bytes], batch: int = 1000) -> Engine:
    """The stream processed once, in order, by an in-process engine (one partition)."""
    engine = engine_at(f"sqlite:///{db_path}", hold_seconds=3600)
    record_lines(engine, lines, batch)
    return engine


def record_lines(engine: Engine, lines: Sequence[bytes], batch: int = 1000,
                 log: str = "reference") -> None:
    """``lines`` recorded by ``engine`` in order, as one partition's batches of ``batch``."""
    for i in range(0, len(lines), batch):
        engine.process(log, [Message(ACTIONS_TOPIC, 0, off, line)
                             for off, line in enumerate(lines[i:i + batch], i)])


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 (a process's ``/healthz``, say)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status) == 200
    except OSError:
        return False


def fold_all(rows: Iterable[tuple[Any, ...]]) -> Counters:
    """Every recorded event (facts cache rows) folded once, as the relay would publish it."""
    counters = Counters()
    for row in rows:
        counters.fold(event_message(row)[1])
    return counters


# ----- processes -----------------------------------------------------------------------------


def role_env(home: Path, database_url: str, bootstrap: str, **extra: str) -> dict[str, str]:
    """The environment of a motcua process: this test's home, store and broker, quiet logs
    (``MOTCUA_TEST_LOG_LEVEL=info`` in the test's own environment to see more)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update({"MOTCUA_HOME": str(home), "MOTCUA_DATABASE_URL": database_url,
                "MOTCUA_KAFKA_BOOTSTRAP": bootstrap,
                "MOTCUA_LOG_LEVEL": os.environ.get("MOTCUA_TEST_LOG_LEVEL", "warning"),
                "MOTCUA_LOG_FORMAT": "json",
                # tansu answers a JoinGroup after half the session timeout, and a SIGKILLed
                # member holds its partitions until the timeout: keep both waits short.
                "MOTCUA_SESSION_TIMEOUT_MS": "3000", **extra})
    return env


def embedded_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a motcua process on the embedded default: SQLite under ``home`` and
    the bundled broker that ``motcua up`` starts (no ``MOTCUA_KAFKA_BOOTSTRAP``)."""
    env = role_env(home, f"sqlite:///{home / 'motcua.db'}", "", **extra)
    del env["MOTCUA_KAFKA_BOOTSTRAP"]
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``motcua ARGS`` to its end."""
    return subprocess.run([sys.executable, "-m", "motcua", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          preexec_fn=_die_with_parent)


def stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc ``stat`` file after the name (state first, then the parent's
    pid, …). A name may hold spaces, parentheses or any bytes (one in the middle of an exec
    showed 0xff in a clean CI run): read leniently. Raises OSError if the task is gone."""
    return stat.read_bytes().decode(errors="replace").rsplit(")", 1)[1].split()


def children(pid: int, named: str = "") -> list[int]:
    """The pids of a process's living children whose command line has ``named`` (Linux
    /proc; command lines read leniently too)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_fields(stat)
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and named in cmdline:
            out.append(int(stat.parent.name))
    return out


def embedded_broker_pid(home: Path) -> int | None:
    """The pid of the process that runs the bundled broker of ``home`` (broker.json)."""
    try:
        return int(orjson.loads((home / "broker.json").read_bytes())["pid"])
    except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
        return None


def _die_with_parent() -> None:
    """Have Linux SIGKILL the child if the test process dies first."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Role:
    """One ``motcua ROLE`` subprocess; its stderr goes to a file quoted when a wait fails."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path, *args: str,
                 name: str | None = None) -> None:
        self.role = role
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name or role}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Self:
        assert not self.alive, f"motcua {self.role} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "motcua", self.role, *self.args], cwd=ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of this role (all its starts) whose ``event`` is ``event``."""
        out = []
        for line in self.tail(10**9).splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if doc.get("event") == event:
                    out.append(doc)
        return out

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, no goodbye."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Role:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 60.0,
             roles: Sequence[Role] = (), every: float = 0.05) -> Any:
    """Poll ``cond`` until it is truthy; fail naming ``what`` and quoting the roles' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for r in roles:
            if r.proc is not None and not r.alive:
                raise AssertionError(f"motcua {r.role} exited with {r.proc.returncode} while "
                                     f"waiting for {what}:\n{r.tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- motcua {r.role}:\n{r.tail()}" for r in roles)
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{logs}")
        time.sleep(every)


class Wall:
    """An engine's wall clock for hold ages (``Engine(wall=...)``): the real time plus what the
    test adds to it, so a test moves past a hold instead of sleeping through it (ledger rows
    are stamped with the real time when they are written)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


class EngineThread:
    """The engine role in this process (``EngineLoop`` on a thread): what ``motcua engine``
    runs, with an injectable wall clock and direct access to the loop."""

    def __init__(self, database_url: str, bootstrap: str, *, hold_seconds: float = 600.0,
                 wall: Callable[[], float] = time.time, record_uncatalogued: bool = True,
                 **loop_kw: Any) -> None:
        from engine.runner import EngineLoop

        # ``record_uncatalogued=False`` is the role's default (a dossier waits for its
        # procedure): what a comparison with an in-order reference needs.
        self.engine = engine_at(database_url, hold_seconds=hold_seconds, wall=wall,
                                record_uncatalogued=record_uncatalogued)
        self.loop = EngineLoop(self.engine, bootstrap, None, partitions=3, timer_every=0.1,
                               **loop_kw)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop_event,),
                                       name="engine", daemon=True)

    def __enter__(self) -> EngineThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(30)
        self.engine.close()


# ----- store probes --------------------------------------------------------------------------


class Probe:
    """Plain-SQL reads of a motcua store (event store and views), one short connection each."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.views = views_url(database_url)

    def _rows(self, url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            if not Path(path).exists():
                return []
            conn = sqlite3.connect(path, timeout=30)
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            try:
                return pg.execute(sql.replace("?", "%s"), params).fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def intake(self, log: str | None = None) -> int:
        """How many consumed ``motcua.actions`` offsets the engine has an outcome for."""
        if log is None:
            rows = self._rows(self.url, "SELECT COUNT(*) FROM motcua_intake WHERE topic=?",
                              (ACTIONS_TOPIC,))
        else:
            rows = self._rows(self.url, "SELECT COUNT(*) FROM motcua_intake WHERE topic=? "
                              "AND log=?", (ACTIONS_TOPIC, log))
        return int(rows[0][0]) if rows else 0

    def logs(self) -> list[str]:
        """The actions logs the engine has recorded offsets of, oldest first."""
        rows = self._rows(self.url, "SELECT log, MIN(id) FROM motcua_intake WHERE topic=? "
                          "GROUP BY log ORDER BY MIN(id)", (ACTIONS_TOPIC,))
        return [r[0] for r in rows]

    def outcomes(self, log: str | None = None) -> Counter[tuple[str, str | None]]:
        """(outcome, reason) → count over the consumed offsets."""
        sql = "SELECT outcome, reason, COUNT(*) FROM motcua_intake WHERE topic=?"
        params: list[Any] = [ACTIONS_TOPIC]
        if log is not None:
            sql += " AND log=?"
            params.append(log)
        rows = self._rows(self.url, sql + " GROUP BY outcome, reason", params)
        return Counter({(r[0], r[1]): int(r[2]) for r in rows})

    def repeated_offsets(self) -> int:
        """Offsets with more than one intake row (there must be none)."""
        rows = self._rows(self.url, "SELECT COUNT(*) FROM (SELECT log, part, off FROM "
                          "motcua_intake WHERE topic=? GROUP BY log, part, off "
                          "HAVING COUNT(*) > 1) x", (ACTIONS_TOPIC,))
        return int(rows[0][0]) if rows else 0

    def accepted_keys(self) -> Counter[str]:
        """(source, action_id) key → how many times it was accepted (must be at most once)."""
        rows = self._rows(self.url, "SELECT akey, COUNT(*) FROM motcua_intake WHERE outcome = "
                          "'accepted' AND akey IS NOT NULL GROUP BY akey")
        return Counter({str(r[0]): int(r[1]) for r in rows})

    def dead_letters(self) -> Counter[bytes]:
        """Dead-lettered bytes → how many dead letters hold them."""
        rows = self._rows(self.url, "SELECT raw FROM motcua_dead_letters")
        return Counter(bytes(r[0]) for r in rows)

    def spool_backlog(self) -> int:
        """Spooled lines the engine has not recorded yet."""
        rows = self._rows(self.url, "SELECT COUNT(*) FROM motcua_spool s WHERE NOT EXISTS "
                          "(SELECT 1 FROM motcua_spool_done d WHERE d.id = s.id)")
        return int(rows[0][0]) if rows else 0

    def spool_settled_twice(self) -> int:
        """Recorded spooled lines whose settling copy is not exactly one ledger row."""
        rows = self._rows(self.url, "SELECT COUNT(*) FROM motcua_spool_done d WHERE (SELECT "
                          "COUNT(*) FROM motcua_intake i WHERE i.log = d.log AND i.part = d.part "
                          "AND i.off = d.off AND i.topic = 'motcua.actions') <> 1")
        return int(rows[0][0]) if rows else 0

    def positions(self, prefix: str = "") -> dict[str, int]:
        rows = self._rows(self.url, "SELECT name, value FROM motcua_positions WHERE name LIKE ?",
                          (prefix + "%",))
        return {r[0]: int(r[1]) for r in rows}

    def view_positions(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._rows(self.views,
                                                    "SELECT name, value FROM proj_positions")}

    def projected(self) -> int:
        """Total folded events position over partitions (for "mid-stream" checks)."""
        return sum(v for k, v in self.view_positions().items() if k.startswith("pos|"))

    def last_position(self) -> int:
        """The store position of the last event recorded (its facts row)."""
        rows = self._rows(self.url, "SELECT MAX(pos) FROM motcua_facts")
        return int(rows[0][0] or 0) if rows else 0

    def relayed_all(self, last_pos: int) -> bool:
        """The relay published every event up to ``last_pos``."""
        return self.positions(Relay.EVENTS).get(Relay.EVENTS, 0) >= last_pos

    def projection_caught_up(self) -> bool:
        """The projection applied, per partition, what the relay last published to it."""
        relayed = {k.rsplit("|", 1)[1]: v for k, v in self.positions(f"{Relay.EVENTS}|").items()}
        applied = self.view_positions()
        return bool(relayed) and all(applied.get(f"pos|{p}", 0) >= v for p, v in relayed.items())


def publish_lines(bootstrap: str, lines: list[bytes]) -> Published:
    """Publish with the real ingest publisher (key: subject id; 3 partitions)."""
    return publish(lines, bootstrap, None, partitions=3)


def publish_each(bootstrap: str, lines: list[bytes]) -> list[tuple[int, int]]:
    """Publish keyed by subject like ``publish_lines``; the (partition, offset) of each line."""
    ensure_all_topics(bootstrap, None, 3)
    producer = K.producer(bootstrap)
    try:
        futures = [producer.send(ACTIONS_TOPIC, key=subject_key(line), value=line)
                   for line in lines]
        producer.flush()
        return [(md.partition, md.offset) for md in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close()


def consume(bootstrap: str, topic: str, at_least: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (all partitions, from offset 0) once it holds ``at_least``."""
    ends = wait_for(lambda: (e := K.end_offsets(bootstrap, topic)) and sum(e.values()) >= at_least
                    and e, f"{at_least} records on {topic}", timeout=timeout, every=0.2)
    consumer = K.consumer(bootstrap)
    try:
        tps = {p: K.TopicPartition(topic, p) for p in ends}
        consumer.assign(list(tps.values()))
        for tp in tps.values():
            consumer.seek(tp, 0)
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[p] for p, tp in tps.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(200).values():
                got.extend(r for r in records if r.offset < ends[r.partition])
        return got
    finally:
        consumer.close()


class CountingIdle(IdleWait):
    """The idle wait of ``kernel.idle``, counting what the loop tells it and asks of it."""

    def __init__(self) -> None:
        super().__init__(short=0.001, longest=0.01, grace=0.05)
        self.founds = 0
        self.empties = 0

    def found(self) -> None:
        self.founds += 1
        super().found()

    def next(self) -> float:
        self.empties += 1
        return super().next()
