"""The peer benchmark's harness: one broker, one backlog, and each pipeline run on it in turn.

Used by ``test_peer.py`` (``benchmarks/run -k peer``); run directly it profiles ``motcua up``:

    python benchmarks/peer.py profile [--rate 100] [--subprocesses] [--idle] [--out DIR]
        # py-spy on `motcua up` (--subprocesses: its engine process too)
    python benchmarks/peer.py summarize RAW [RAW...]             # where a raw profile's time goes
    python benchmarks/peer.py ab [--rounds 5] [--gc] OLD=TREE NEW=TREE  # paired A/B of code trees

The backlog is written once by ``motcua simulate`` and published to ``motcua.actions`` by
``motcua.ingest.publish`` (what ``motcua ingest`` does: keyed by subject id) before any pipeline
starts. ``motcua up`` is a real subprocess, as a user runs it (SQLite under a fresh
``MOTCUA_HOME``, ``MOTCUA_KAFKA_BOOTSTRAP`` = the benchmark's broker). Its progress is read from
its stores by a read-only SQLite connection of this process every ``POLL`` seconds, so nothing in
the measured process serves the measurement:

- *engine recorded all*: the engine's tracking position of every ``motcua.actions`` partition
  (written in the transaction that records the events) is at that partition's last offset;
- *projection folded all*: besides, the relay has published up to the event store's last
  position, and every ``motcua.events`` partition's applied position in the view store (written
  in the transaction that writes the counters) is at the relay's last position for it. The
  deadline watcher records ``overdue`` facts for the backlog's dossiers whose due time has
  passed while the backlog goes through; those count as work: the moment is only taken once
  the store stayed still for ``SETTLE`` seconds after it, and a later event moves it.

``shape=SPLIT`` runs the one-role commands instead (``motcua engine``, then, once it is ready,
``motcua project`` and ``motcua serve``), measured the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kernel import kafka as K  # noqa: E402
from kernel.broker import free_port  # noqa: E402
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC, REJECTED_TOPIC  # noqa: E402

# The province: 20 units, 15,000 dossiers (`motcua simulate` defaults otherwise).
AGENCIES, DOSSIERS = 20, 15_000
POLL = 0.05  # seconds between reads of the stores
SETTLE = 3.0  # the store must stay still this long after "folded all" (timer ticks: 0.5 s)


def motcua_command() -> list[str]:
    """``motcua`` as installed beside this interpreter (the console script a user runs)."""
    script = Path(sys.executable).with_name("motcua")
    return [str(script)] if script.exists() else [sys.executable, "-m", "motcua"]


# --------------------------------------------------------------------------- the backlog


@dataclass
class Backlog:
    path: Path
    count: int
    last: dict[int, int]  # partition -> last offset of the backlog
    publish_s: float


def make_backlog(bootstrap: str, workdir: Path) -> Backlog:
    """Simulate the province with ``motcua simulate`` and publish it to ``motcua.actions``."""
    from motcua.ingest import publish, read_lines

    path = workdir / "province.ndjson"
    subprocess.run([*motcua_command(), "simulate", "--agencies", str(AGENCIES), "--dossiers",
                    str(DOSSIERS), "--out", str(path)], check=True, capture_output=True)
    lines = read_lines(path)
    t0 = time.monotonic()
    out = publish(lines, bootstrap, None, 3)
    assert out.count == len(lines)
    return Backlog(path, len(lines), {p: hi for p, (_, hi) in out.ranges.items()},
                   time.monotonic() - t0)


def reset_outputs(bootstrap: str) -> None:
    """Delete ``motcua.events`` and ``motcua.rejected``: a fresh store's projection reads the
    events topic from its start, and must find only its own run's events there."""
    with K.admin_client(bootstrap) as admin:
        present = [t for t in (EVENTS_TOPIC, REJECTED_TOPIC) if t in admin.list_topics()]
        if present:
            admin.delete_topics(present)
        deadline = time.monotonic() + 10
        while set(present) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {present} were not deleted")
            time.sleep(0.05)


# --------------------------------------------------------------------------- the stores


@dataclass
class Sample:
    t: float
    recorded: dict[int, int]  # actions partition -> tracked offset
    store: int  # the event store's last position
    relayed: int
    relayed_parts: dict[int, int]
    applied: dict[int, int]


class StoreWatch:
    """Read-only looks at a ``motcua up``'s SQLite stores (both may not exist yet)."""

    def __init__(self, home: Path) -> None:
        self.paths = (home / "motcua.db", home / "motcua-views.db")
        self.conns: list[sqlite3.Connection] = []

    def _connect(self) -> bool:
        if not self.conns:
            if not all(p.exists() for p in self.paths):
                return False
            self.conns = [sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=1.0)
                          for p in self.paths]
        return True

    def sample(self) -> Sample | None:
        if not self._connect():
            return None
        events, views = self.conns
        try:
            tracked = events.execute("SELECT application_name, notification_id FROM tracking "
                                     "WHERE application_name LIKE ?",
                                     (f"%|{ACTIONS_TOPIC}|%",)).fetchall()
            store = events.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0] or 0
            pos = dict(events.execute("SELECT name, value FROM motcua_positions WHERE name "
                                      "LIKE 'relay:events%'").fetchall())
            applied = dict(views.execute("SELECT name, value FROM proj_positions WHERE name "
                                         "LIKE 'pos|%'").fetchall())
        except sqlite3.OperationalError:  # tables not created yet, or busy: next time
            return None
        return Sample(time.monotonic(), {int(n.rsplit("|", 1)[1]): v for n, v in tracked},
                      store, pos.get("relay:events", 0),
                      {int(k.rsplit("|", 1)[1]): v for k, v in pos.items() if "|" in k},
                      {int(k[4:]): v for k, v in applied.items()})

    def close(self) -> None:
        for c in self.conns:
            c.close()


def recorded_all(s: Sample, last: dict[int, int]) -> bool:
    return all(s.recorded.get(p, -1) >= off for p, off in last.items())


def folded_all(s: Sample, last: dict[int, int]) -> bool:
    return (recorded_all(s, last) and s.store > 0 and s.relayed >= s.store
            and all(s.applied.get(p, 0) >= v for p, v in s.relayed_parts.items()))


# --------------------------------------------------------------------------- motcua up


@dataclass
class MotcuaRun:
    ready_s: float  # process start -> the engine's consumer is assigned (log engine_ready)
    first_s: float  # process start -> the first batch is recorded
    recorded_s: float  # process start -> the engine recorded every action
    folded_s: float  # process start -> the projection folded every event
    stop_s: float  # SIGINT -> exit
    cpu_s: float  # CPU seconds of the process (all threads) from its start to folded all
    events: int
    healthz_position: int
    samples: int
    exit_code: int | None
    stderr_tail: list[str] = field(default_factory=list)


class _Stderr:
    """Keeps ``motcua up``'s JSON log lines and when the engine said it was ready."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[bytes] = []
        self.ready_at: float | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            if self.ready_at is None and b'"engine_ready"' in line:
                self.ready_at = time.monotonic()
                self.ready.set()

    def tail(self, n: int = 15) -> list[str]:
        return [ln.decode(errors="replace").rstrip() for ln in self.lines[-n:]]


UP = (("up",),)
# The production shape (docker-compose.yml): one process per role, sharing the store.
SPLIT = (("engine",), ("project",), ("serve",))


def run_motcua(bootstrap: str, backlog: Backlog, workdir: Path, *, shape: Any = UP,
               timeout: float = 900.0, on_ready: Any = None) -> MotcuaRun:
    """``motcua up`` (or the one-role commands of ``shape``) on a fresh home until it processed
    the backlog; then SIGINT.

    ``on_ready(pid)`` is called once the engine logged ``engine_ready`` (the profiler starts
    there); whatever it returns is called with no argument at the moment "folded all" is seen.
    """
    reset_outputs(bootstrap)
    home = Path(tempfile.mkdtemp(prefix="motcua-home-", dir=workdir))
    port = free_port()
    env = {**os.environ, "MOTCUA_HOME": str(home), "MOTCUA_KAFKA_BOOTSTRAP": bootstrap,
           "MOTCUA_LOG_LEVEL": "info", "MOTCUA_LOG_FORMAT": "json"}
    env.pop("MOTCUA_DATABASE_URL", None)
    watch = StoreWatch(home)
    t0 = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    errs: list[_Stderr] = []
    try:
        for args in shape:
            if errs:  # several processes on a fresh SQLite store race to create its tables
                _wait_ready(procs[0], errs[0], t0 + 60)
            extra = ["--port", str(port)] if args[0] in ("up", "serve") else []
            procs.append(subprocess.Popen([*motcua_command(), *args, *extra], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            errs.append(_Stderr(procs[-1]))
        done = _watch(procs, watch, errs, backlog, t0 + timeout, on_ready)
        healthz = orjson.loads(_get(f"http://127.0.0.1:{port}/healthz"))["position"]
    finally:
        t_stop = time.monotonic()
        codes = [_stop(p) for p in procs]
        t_exit = time.monotonic()
        watch.close()
        # A round's store is about 300 MB: `ab` and `profile` runs of many rounds filled the
        # disk with them (14 GB once). Nothing reads it after the round.
        shutil.rmtree(home, ignore_errors=True)
    ready = min((e.ready_at for e in errs if e.ready_at is not None), default=t0)
    return MotcuaRun(ready_s=ready - t0, first_s=done.first - t0,
                     recorded_s=done.recorded - t0, folded_s=done.folded.t - t0,
                     stop_s=t_exit - t_stop, cpu_s=done.cpu, events=done.folded.store,
                     healthz_position=int(healthz), samples=done.samples,
                     exit_code=max((c for c in codes if c is not None), default=None),
                     stderr_tail=[ln for e in errs for ln in e.tail(5)])


def _wait_ready(proc: subprocess.Popen[bytes], err: _Stderr, deadline: float) -> None:
    while not err.ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r} did not start:\n" + "\n".join(err.tail()))


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class _Done:
    first: float
    recorded: float
    folded: Sample
    cpu: float
    samples: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), and of its living
    children (``motcua up``'s child engine)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _watch(procs: list[subprocess.Popen[bytes]], watch: StoreWatch, errs: list[_Stderr],
           backlog: Backlog, deadline: float, on_ready: Any) -> _Done:
    first = recorded = cpu = 0.0
    after_folded: Any = None
    started_hook = on_ready is None
    folded_at: Sample | None = None
    n = 0
    while True:
        for proc, err in zip(procs, errs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited ({proc.returncode}):\n"
                                   + "\n".join(err.tail()))
        if time.monotonic() > deadline:
            raise RuntimeError("motcua did not process the backlog in time:\n"
                               + "\n".join(ln for e in errs for ln in e.tail(5)))
        if not started_hook and errs[0].ready.is_set():
            started_hook = True
            after_folded = on_ready(procs[0].pid)
        time.sleep(POLL)
        s = watch.sample()
        if s is None:
            continue
        n += 1
        if not first and s.recorded:
            first = s.t
        if not recorded and recorded_all(s, backlog.last):
            recorded = s.t
        if folded_at is not None and s.store != folded_at.store:
            folded_at = None  # more events came (overdue facts): not all folded then
        if folded_at is None and folded_all(s, backlog.last):
            folded_at, cpu = s, sum(cpu_seconds(p.pid) for p in procs)
            if after_folded is not None:
                after_folded()
                after_folded = None
        if folded_at is not None and s.t - folded_at.t >= SETTLE:
            return _Done(first, recorded, folded_at, cpu, n)


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (loopback)
        return bytes(r.read())


# --------------------------------------------------------------------------- the peers


def run_peer(what: str, bootstrap: str, backlog: Backlog, workdir: Path) -> dict[str, Any]:
    """Run one of ``peer_apps.py``'s pipelines; its JSON plus ``t_start`` (process start)."""
    args = [what, bootstrap, str(backlog.count)]
    if what == "quix":
        state = tempfile.mkdtemp(prefix="quix-state-", dir=workdir)
        args += [state, f"peer-quix-{Path(state).name}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]).rstrip(os.pathsep)}
    t_start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "peer_apps.py"), *args], env=env,
                          capture_output=True, timeout=600)
    t_end = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    out: dict[str, Any] = orjson.loads(proc.stdout.splitlines()[-1])
    out.update(t_start=t_start, t_end=t_end)
    return out


# --------------------------------------------------------------------------- profiling


def profile(args: argparse.Namespace) -> None:
    """``motcua up`` on the backlog under ``py-spy record`` (every thread), then its summary."""
    from profile_summary import summarize

    from kernel.broker import BundledBroker

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "motcua-up.raw"
    with BundledBroker(out / "broker") as broker:
        backlog = make_backlog(broker.bootstrap, out)
        print(f"backlog: {backlog.count:,} actions, published in {backlog.publish_s:.1f} s",
              file=sys.stderr)
        spy: list[subprocess.Popen[bytes]] = []

        def start(pid: int) -> Any:
            beside = Path(sys.executable).with_name("py-spy")  # the venv's, as for motcua
            cmd = [str(beside) if beside.exists() else "py-spy", "record", "--pid", str(pid),
                   "--rate", str(args.rate), "--format", "raw", "--threads", "--output", str(raw)]
            if args.gil:
                cmd.append("--gil")
            if args.subprocesses:
                cmd.append("--subprocesses")
            if args.idle:
                cmd.append("--idle")
            spy.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE))
            return lambda: spy[0].send_signal(signal.SIGINT)

        run = run_motcua(broker.bootstrap, backlog, out, on_ready=start)
        for p in spy:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
    print(orjson.dumps({k: v for k, v in vars(run).items() if k != "stderr_tail"},
                       option=orjson.OPT_INDENT_2).decode())
    print(f"rate to folded all: {backlog.count / run.folded_s:,.0f} actions/s "
          "(profiled: py-spy pauses the process at each sample)")
    print(summarize([raw]))


# Put first on a process's path by ``ab --gc``: the time each process spends in the cyclic
# garbage collector, by generation, written after each collection and when it exits.
_GC_PROBE = """import atexit, gc, os, time
_t, _s, _n = {}, [0.0, 0.0, 0.0], [0, 0, 0]
def _cb(phase, info):
    g = info["generation"]
    if phase == "start":
        _t[g] = time.perf_counter()
    else:
        _s[g] += time.perf_counter() - _t.pop(g, time.perf_counter())
        _n[g] += 1
        _dump()  # motcua ends with os._exit (no atexit): written after every collection
gc.callbacks.append(_cb)
def _dump():
    with open(os.path.join(os.environ["MOTCUA_AB_GC_DIR"], f"{os.getpid()}.txt"), "w") as f:
        f.write(f"pid {os.getpid()} (parent {os.getppid()}): {sum(_s):.2f} s of GC in "
                f"{sum(_n)} collections (by generation {_n[0]}/{_n[1]}/{_n[2]}: "
                f"{_s[0]:.2f}/{_s[1]:.2f}/{_s[2]:.2f} s), "
                f"{time.process_time():.1f} s CPU by the last\\n")
atexit.register(_dump)
"""


def _started(f: Path) -> float:
    return f.stat().st_mtime


def ab(args: argparse.Namespace) -> None:
    """``motcua up`` on one backlog, the code trees taking turns round by round (PYTHONPATH),
    so a change is judged against its base on the same machine at nearly the same moment."""
    from kernel.broker import BundledBroker

    trees = []
    for spec in args.tree:
        name, _, path = spec.partition("=")
        if not name or not (Path(path) / "motcua" / "__init__.py").is_file():
            raise SystemExit(f"ab: {spec!r} is not NAME=DIR with DIR a motcua source tree")
        trees.append((name, str(Path(path).resolve())))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # `python -m` puts the working directory first on the engine child's path
    probe = out / "gc-probe"
    if args.gc:
        probe.mkdir(exist_ok=True)
        (probe / "sitecustomize.py").write_text(_GC_PROBE)
    with BundledBroker(out / "broker") as broker:
        backlog = make_backlog(broker.bootstrap, out)
        print(f"backlog: {backlog.count:,} actions", flush=True)
        for r in range(args.rounds):
            for name, path in trees:
                gc_dir = out / f"gc-{r}-{name}"
                gc_dir.mkdir(exist_ok=True)
                for old in gc_dir.glob("*.txt"):
                    old.unlink()
                os.environ["PYTHONPATH"] = f"{probe}:{path}" if args.gc else path
                os.environ["MOTCUA_AB_GC_DIR"] = str(gc_dir)
                run = run_motcua(broker.bootstrap, backlog, out)
                gc_s = "; ".join(f.read_text().strip() for f in sorted(gc_dir.glob("*.txt"),
                                                                         key=_started))
                print(f"{r} {name:10} {backlog.count / run.folded_s:7,.0f} actions/s  folded "
                      f"{run.folded_s:5.2f} s  ready {run.ready_s:4.2f} s  first batch "
                      f"{run.first_s:4.2f} s  tail {run.folded_s - run.recorded_s:4.2f} s  "
                      f"CPU {run.cpu_s:5.1f} s  load {os.getloadavg()[0]:.1f}"
                      + (f"\n    per process: {gc_s}" if args.gc else ""), flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.
                                 RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profile", help="profile motcua up on the backlog with py-spy")
    p.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    p.add_argument("--gil", action="store_true", help="only the thread holding the GIL")
    p.add_argument("--subprocesses", action="store_true",
                   help="also the engine process (its samples show as other threads)")
    p.add_argument("--idle", action="store_true", help="also the samples of waiting threads")
    p.add_argument("--out", default="/tmp/motcua-peer-profile", help="output directory")
    s = sub.add_parser("summarize", help="where the time of raw py-spy profiles goes")
    s.add_argument("raw", nargs="+")
    a = sub.add_parser("ab", help="motcua up from several code trees, in turns, on one backlog")
    a.add_argument("tree", nargs="+", help="NAME=DIR: a motcua source tree (a git worktree)")
    a.add_argument("--rounds", type=int, default=5, help="rounds of every tree (default 5)")
    a.add_argument("--gc", action="store_true", help="also time each process's garbage collector")
    a.add_argument("--out", default="/tmp/motcua-peer-ab", help="output directory")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    if args.cmd == "profile":
        profile(args)
    elif args.cmd == "ab":
        ab(args)
    else:
        from profile_summary import summarize

        print(summarize([Path(r) for r in args.raw]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
