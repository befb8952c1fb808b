"""Where the CPU of ``motcua up`` goes, by process and thread: the peer benchmark's backlog.

    python benchmarks/peer_threads.py [--rounds 3] [--out /tmp/motcua-peer-threads]

Runs ``motcua up`` on the peer backlog (``peer.py``: its own bundled broker, the issue's
province) and, at the moment the benchmark sees "projection folded all", reads every thread's
user + system CPU from ``/proc`` (the process and its child engine), names the threads with
``py-spy dump`` (Python 3.11 gives the kernel no thread names; ``?`` without py-spy), and the
broker's CPU over the round. CPU per action is what each thread spent, start-up included,
divided by the backlog's actions: what the budget of a target rate has to hold on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer  # noqa: E402

from kernel.broker import BundledBroker  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
_THREAD = re.compile(r'Thread (\d+) \([^)]*\): "([^"]+)"')


def _cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def family(pid: int) -> list[int]:
    """A process and its children."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return pids


def thread_cpu(pids: list[int]) -> dict[tuple[int, int], float]:
    """(process, thread) -> CPU seconds so far."""
    out: dict[tuple[int, int], float] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                out[(pid, int(task.name))] = _cpu(task / "stat")
            except (OSError, ValueError, IndexError):
                continue
    return out


def thread_names(pids: list[int]) -> dict[int, str]:
    """Thread id -> its Python name, from ``py-spy dump`` (empty without py-spy)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    names: dict[int, str] = {}
    for pid in pids if spy else []:
        done = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True,
                              text=True, timeout=30, check=False)
        names.update({int(m[1]): m[2] for m in _THREAD.finditer(done.stdout)})
    return names


def one_round(broker: BundledBroker, backlog: peer.Backlog, out: Path) -> None:
    seen: dict[tuple[int, int], float] = {}
    names: dict[int, str] = {}
    roles: dict[int, str] = {}

    def on_ready(pid: int) -> Callable[[], None]:
        def at_folded() -> None:
            pids = family(pid)
            seen.update(thread_cpu(pids))
            names.update(thread_names(pids))
            roles.update({p: "parent" if p == pid else "child" for p in pids})
        return at_folded

    assert broker.pid is not None
    before = _cpu(Path(f"/proc/{broker.pid}/stat"))
    run = peer.run_motcua(broker.bootstrap, backlog, out, on_ready=on_ready)
    broker_s = _cpu(Path(f"/proc/{broker.pid}/stat")) - before
    per = 1e6 / backlog.count
    print(f"{backlog.count / run.folded_s:,.0f} actions/s to folded all ({run.folded_s:.2f} s); "
          f"CPU {run.cpu_s:.1f} s = {run.cpu_s * per:.1f} µs an action; load "
          f"{os.getloadavg()[0]:.1f}")
    for (pid, tid), s in sorted(seen.items(), key=lambda kv: -kv[1]):
        if s >= 0.05:
            print(f"  {roles[pid]:6} {names.get(tid, '?'):28} {s:6.2f} s {s * per:6.1f} µs")
    for pid, role in roles.items():
        s = sum(v for (p, _), v in seen.items() if p == pid)
        print(f"  {role:6} {'(all threads)':28} {s:6.2f} s {s * per:6.1f} µs")
    print(f"  broker {'(the round, stop included)':28} {broker_s:6.2f} s {broker_s * per:6.1f} µs",
          flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--out", default="/tmp/motcua-peer-threads", help="work directory")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with BundledBroker(out / "broker") as broker:
        backlog = peer.make_backlog(broker.bootstrap, out)
        print(f"backlog: {backlog.count:,} actions", flush=True)
        for _ in range(args.rounds):
            one_round(broker, backlog, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
