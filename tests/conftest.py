"""Session fixtures: the bundled broker, a real PostgreSQL server, and settings helpers."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel.broker import BundledBroker, free_port
from kernel.settings import Settings

# The fault suite's long form runs only when asked for (scripts/faults RUNS), not skipped.
collect_ignore = [] if os.environ.get("MOTCUA_FAULT_RUNS") else ["soak"]

# --------------------------------------------------------------------------- broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledBroker]:
    """One bundled tansu broker for the whole session; do not restart it (use ``fresh_broker``)."""
    with BundledBroker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[BundledBroker]:
    """A broker of this test's own, free to be stopped and restarted."""
    with BundledBroker(tmp_path / "broker") as b:
        yield b


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PgServer:
    """A running throwaway PostgreSQL cluster (trust auth, user ``postgres``)."""

    host: str
    port: int
    user: str
    base_dir: Path
    options: str = ""

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        """Shut the server down (fast: open connections are cut), as an outage would."""
        _run([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.base_dir / "data"), "-m", "fast",
              "-w", "stop"], self.base_dir / "pg_ctl.log")

    def start(self) -> None:
        """Start the server again on the same port, with the same data."""
        _run([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.base_dir / "data"), "-l",
              str(self.base_dir / "server.log"), "-o", self.options, "-w", "-t", "60", "start"],
             self.base_dir / "pg_ctl.log")

    def restart(self) -> None:
        self.stop()
        self.start()


def pg_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; fails the test run when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_pg_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pytest.fail(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): "
        "install them with `apt-get install -y postgresql` (scripts/test does this).",
        pytrace=False,
    )


def _pg_version(initdb: str) -> float:
    try:
        return float(Path(initdb).parent.parent.name)
    except ValueError:
        return 0.0


def _as_postgres(args: list[str]) -> list[str]:
    """``initdb`` refuses to run as root: run the server tools as ``postgres`` when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(_as_postgres(args), stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        pytest.fail(f"{Path(args[0]).name} failed ({done.returncode}):\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL cluster on a free loopback port, stopped at the end of the session."""
    bindir = pg_bin_dir()
    # /tmp: traversable by the postgres user, and short enough for the socket path limit.
    tmp = "/tmp" if os.path.isdir("/tmp") else None
    base = Path(tempfile.mkdtemp(prefix="motcua-pg-", dir=tmp))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"  # server.log is written by the server
    port = free_port()
    _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
          "-E", "UTF8", "--no-sync"], base / "initdb.log")  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
          "-t", "60", "start"], base / "pg_ctl.log")  # fmt: skip
    try:
        yield PgServer("127.0.0.1", port, "postgres", base, options)
    finally:
        subprocess.run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


_db_numbers = itertools.count(1)


@pytest.fixture
def new_pg_database(pg_server: PgServer) -> Iterator[Callable[[], str]]:
    """``new_pg_database()``: the URL of a new, empty database, dropped after the test."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"motcua_test_{os.getpid()}_{next(_db_numbers)}"
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return pg_server.url(name)

    yield make
    for name in made:
        try:
            with psycopg.connect(pg_server.url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # the whole cluster goes at session end anyway


@pytest.fixture
def pg_url(new_pg_database: Callable[[], str]) -> str:
    """A fresh, empty database for this test: ``postgresql://postgres@127.0.0.1:PORT/DB``."""
    return new_pg_database()


# --------------------------------------------------------------------------- settings


@pytest.fixture
def motcua_home(tmp_path: Path) -> Path:
    """An empty ``MOTCUA_HOME`` for this test."""
    home = tmp_path / "motcua-home"
    home.mkdir()
    return home


def make_settings(
    home: Path, database_url: str | None = None, bootstrap: str | None = None, **env: str
) -> Settings:
    """``Settings.from_env`` for a test: ``env`` adds more ``MOTCUA_*`` variables."""
    values = {"MOTCUA_HOME": str(home), "MOTCUA_LOG_FORMAT": "console", **env}
    if database_url:
        values["MOTCUA_DATABASE_URL"] = database_url
    if bootstrap:
        values["MOTCUA_KAFKA_BOOTSTRAP"] = bootstrap
    return Settings.from_env(values)


SettingsFor = Callable[..., Settings]


@pytest.fixture
def settings_for(motcua_home: Path) -> SettingsFor:
    """``settings_for(database_url=None, bootstrap=None, **MOTCUA_env)`` under ``motcua_home``."""

    def build(
        database_url: str | None = None, bootstrap: str | None = None, **env: str
    ) -> Settings:
        return make_settings(motcua_home, database_url, bootstrap, **env)

    return build


# --------------------------------------------------------------------------- browser

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium for the browser tests; without it they fail, never skip."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is not installed: install it with `apt-get install -y chromium` "
                    "(scripts/test does this).", pytrace=False)
    return CHROMIUM


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def views_at(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the views live: a SQLite file, or a fresh database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'views.db'}"
    return str(request.getfixturevalue("pg_url"))
