"""The engine role of ``motcua up`` and ``motcua demo`` in a child process.

Python runs one thread at a time per process: the engine (about two thirds of the work of an
action) and the projections, the alerting role and the Kafka clients of one process share one
core. The child is ``motcua engine --child``: the engine role on every partition (no consumer
group), on the same store and broker. It is spawned as the command starts and runs once the
parent made the store's tables and started the broker (``motcua.engine_spawn``). The parent
supervises it:

- it is ready once it wrote the engine's heartbeat (``engine.app.HEARTBEAT``) after it started;
- if it exits while the parent runs, it is started again after a second (logged);
- the parent's SIGINT/SIGTERM stops it with SIGTERM (SIGKILL after 15 s); if the parent dies,
  even by SIGKILL, the kernel sends the child SIGTERM (``PR_SET_PDEATHSIG``), so no engine
  outlives its ``motcua up``;
- its Prometheus metrics are merged into the parent's ``/metrics`` (``kernel.metrics``), and
  what it cannot reach into the parent's ``/healthz`` (``kernel.health``); while it is not
  running, ``/healthz`` says so (part ``engine-process``).

The child does not relay: the parent publishes what it records (``engine.relay_loop``), on the
parent's core. Nothing of exactly-once depends on this: the child records with the same store
positions and fencing epochs as an engine thread would, and the relay is the same one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import structlog

from engine.app import HEARTBEAT, Engine
from kernel import metrics
from kernel.health import HEALTH, INTERNAL
from kernel.settings import Settings
from motcua import engine_spawn

log = structlog.get_logger("motcua.engine_process")

METRICS_FILE = "engine-process.prom"
PART = "engine-process"  # in /healthz while the child is not running


def metrics_file(settings: Settings) -> Path:
    """Where the child engine writes its metrics for its parent to serve."""
    return settings.home / METRICS_FILE


def health_file(settings: Settings) -> Path:
    """Where the child engine writes what it cannot reach, for its parent's ``/healthz``."""
    return metrics_file(settings).with_suffix(".health.json")


class EngineProcess:
    """Starts, watches and stops the child engine of a pipeline."""

    def __init__(self, settings: Settings, bootstrap: str, engine: Engine,
                 log_level: str, log_format: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.engine = engine  # the parent's, on the same store: reads the heartbeat
        self.log_level, self.log_format = log_level, log_format
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = threading.Event()
        self.restarts = 0
        self._stopping = threading.Event()
        self._started_at = 0.0

    def env(self) -> dict[str, str]:
        """What the child runs with on top of the environment it was spawned with."""
        s = self.settings
        return {"MOTCUA_HOME": str(s.home), "MOTCUA_DATABASE_URL": s.database_url,
                "MOTCUA_KAFKA_BOOTSTRAP": self.bootstrap, "MOTCUA_LOG_LEVEL": self.log_level,
                "MOTCUA_LOG_FORMAT": self.log_format,
                "MOTCUA_PARENT_PID": str(os.getpid())}

    def _files(self) -> tuple[Path, Path]:
        return metrics_file(self.settings), health_file(self.settings)

    def _forget_files(self) -> None:  # a previous child's figures are not the next one's
        for path in self._files():
            path.unlink(missing_ok=True)

    def start(self) -> EngineProcess:
        self._forget_files()
        prom, health = self._files()
        metrics.FOREIGN.append(prom)
        HEALTH.foreign.append(health)
        self._spawn()
        return self

    def _spawn(self) -> None:
        self.ready.clear()
        self._started_at = time.time()
        # The child spawned early by the command (engine_spawn) the first time, else a new one.
        self.proc = engine_spawn.take()
        engine_spawn.go(self.proc, self.env())
        log.info("engine_process_started", pid=self.proc.pid)

    def supervise(self, stop: threading.Event) -> None:
        """The watcher thread: readiness, and a new child if one exits on its own."""
        while not stop.wait(0.1):
            proc = self.proc
            if proc is None or self._stopping.is_set():
                continue
            code = proc.poll()
            if code is None:
                if not self.ready.is_set() and self._beat() > int(self._started_at):
                    self.ready.set()
                    HEALTH.up(PART)
                    log.info("engine_process_ready", pid=proc.pid)
                continue
            log.warning("engine_process_exited", pid=proc.pid, code=code)
            self._forget_files()
            HEALTH.down(PART, INTERNAL, RuntimeError(
                f"The engine process exited with status {code}; it is started again."))
            if stop.wait(1.0) or self._stopping.is_set():
                return
            self.restarts += 1
            self._spawn()

    def _beat(self) -> int:
        try:
            return self.engine.store.get_position(HEARTBEAT)
        except Exception:  # the store away: not ready yet, asked again
            return -1

    def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("engine_process_killed", pid=proc.pid)
                proc.kill()
                proc.wait()
        prom, health = self._files()
        if prom in metrics.FOREIGN:
            metrics.FOREIGN.remove(prom)
        if health in HEALTH.foreign:
            HEALTH.foreign.remove(health)
