"""Inputs everywhere (issue 10 item 6): every user mistake on every command and setting is one
sentence on stderr and exit 2, naming the bad input, with no traceback and nothing created.

Each case runs ``motcua`` as a real process against a home that holds an empty store (so query
commands get past opening it to the argument in question). The table is the list of mistakes; the
assertions are the same for all: exit 2, exactly one stderr line, the bad input named in it, no
traceback, and the files under the test's directory exactly as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from faults import ROOT, simulate


@dataclass(frozen=True)
class Case:
    """One mistake: the arguments, the extra environment, and what the message must name."""

    id: str
    args: tuple[str, ...]
    named: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Place:
    """A test directory: a home with an empty store, and files the cases point at."""

    root: Path
    home: Path

    def files(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}


def run(place: Place, args: tuple[str, ...], env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    clean.update({"MOTCUA_HOME": str(place.home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "motcua", *args], cwd=ROOT, env=clean,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    root = tmp_path_factory.mktemp("inputs")
    p = Place(root, root / "home")
    p.home.mkdir()
    done = run(p, ("replay",))  # creates the empty store the query commands read
    assert done.returncode == 0, done.stderr
    (root / "a-dir").mkdir()
    (root / "list.json").write_bytes(b"[1, 2]")
    (root / "not-json.json").write_bytes(b"{nope")
    (root / "bad-rules.json").write_bytes(b'{"bad')
    (root / "one.ndjson").write_bytes(orjson.dumps(simulate(1, 1)[0]) + b"\n")
    yield p


def cases(root: str) -> list[Case]:
    """Every mistake, by command and then by setting (``root`` is the test directory)."""
    d, missing = f"{root}/a-dir", f"{root}/no-such-file.json"
    bad_pg = "postgresql://u:hunter2@127.0.0.1:99999/motcua"
    args = [
        Case("scores-period-0000", ("scores", "H15", "--period", "0000"), "0000"),
        Case("scores-period-empty", ("scores", "H15", "--period", ""), "--period"),
        Case("scores-period-month-13", ("scores", "H15", "--period", "2026-13"), "2026-13"),
        Case("scores-now-year-1", ("scores", "H15", "--now", "0001-01-01T00:00:00+14:00"),
             "0001-01-01T00:00:00+14:00"),
        Case("scores-now-words", ("scores", "H15", "--now", "yesterday"), "yesterday"),
        Case("scores-as-recorded-9999", ("scores", "H15", "--as-recorded",
                                         "9999-12-31T00:00:00Z"), "9999-12-31T00:00:00Z"),
        Case("scores-as-recorded-future", ("scores", "H15", "--as-recorded",
                                           "2099-01-01T00:00:00+07:00"),
             "2099-01-01T00:00:00+07:00 is in the future"),
        Case("scores-ruleset", ("scores", "H15", "--ruleset", "nope"), "nope"),
        Case("scores-unknown-agency", ("scores", "NO.SUCH"), "NO.SUCH"),
        Case("explain-criterion", ("explain", "H15", "--criterion", "NOPE"), "NOPE"),
        Case("explain-limit", ("explain", "H15", "--criterion", "ON_TIME", "--limit", "-1"),
             "-1"),
        Case("ranking-level", ("ranking", "--level", "galaxy"), "galaxy"),
        Case("ranking-period-empty", ("ranking", "--period", ""), "--period"),
        Case("overdue-now-empty", ("overdue", "H15", "--now", ""), "--now"),
        Case("history-unknown", ("history", "NO-SUCH-DOSSIER"), "NO-SUCH-DOSSIER"),
        Case("score-counts-dir", ("score", "--counts", d), d),
        Case("score-counts-missing", ("score", "--counts", missing), missing),
        Case("score-counts-list", ("score", "--counts", f"{root}/list.json"), "list.json"),
        Case("score-counts-not-json", ("score", "--counts", f"{root}/not-json.json"),
             "not-json.json"),
        Case("simulate-out-dir", ("simulate", "--out", d), d),
        Case("simulate-out-no-dir", ("simulate", "--out", f"{root}/nowhere/x.ndjson"),
             "nowhere"),
        Case("simulate-agencies", ("simulate", "--agencies", "0", "--out", f"{root}/s.nd"),
             "--agencies"),
        Case("simulate-days", ("simulate", "--days", "0", "--out", f"{root}/s.nd"), "--days"),
        Case("simulate-start-9999", ("simulate", "--start", "9999-01-01", "--out",
                                     f"{root}/s.nd"), "9999-01-01"),
        Case("simulate-start-words", ("simulate", "--start", "soon", "--out", f"{root}/s.nd"),
             "soon"),
        Case("simulate-provinces", ("simulate", "--provinces", "35", "--out", f"{root}/s.nd"),
             "--provinces"),
        Case("ingest-missing", ("ingest", missing), missing),
        Case("ingest-dir", ("ingest", d), d),
        Case("ingest-timeout", ("ingest", f"{root}/one.ndjson", "--timeout", "0"),
             "--timeout"),
        Case("replay-until-year-1", ("replay", "--until", "0001-01-01T00:00:00Z"),
             "0001-01-01T00:00:00Z"),
        Case("replay-until-future", ("replay", "--until", "2099-01-01T00:00:00Z"),
             "2099-01-01T00:00:00Z is in the future"),
        Case("replay-rederive-verify", ("replay", "--rederive", "--verify"), "--rederive"),
        Case("replay-verify-until", ("replay", "--verify", "--until", "garbage"), "--until"),
        Case("publish-verify-no-store", ("publish", "--verify", "2026"), "does not exist",
             {"MOTCUA_DATABASE_URL": f"sqlite:///{root}/a-dir/motcua.db"}),
        Case("serve-port", ("serve", "--port", "99999"), "99999"),
        Case("up-port-words", ("up", "--port", "http"), "http"),
        Case("demo-rate", ("demo", "--rate", "-1"), "--rate"),
        Case("demo-agencies", ("demo", "--agencies", "0"), "--agencies"),
        Case("tokens-add-empty-source", ("tokens", "add", "", "--agencies", "H15"), "Source"),
        Case("tokens-add-no-agency", ("tokens", "add", "src", "--agencies", " "), "Agency"),
        Case("tokens-add-control", ("tokens", "add", "nul\x01", "--agencies", "H15"), "Source"),
        Case("tokens-add-wildcard", ("tokens", "add", "src", "--agencies", "H15.*"), "'H15.*'"),
        Case("tokens-rotate-unknown", ("tokens", "rotate", "nobody"), "nobody"),
        Case("tokens-revoke-unknown", ("tokens", "revoke", "nobody"), "nobody"),
        Case("tokens-bogus", ("tokens", "bogus"), "bogus"),
        Case("bogus-command", ("bogus",), "bogus"),
        Case("not-utf8-argument", ("history", os.fsdecode(b"\xff")), "UTF-8"),
    ]
    settings = [
        Case(f"{name}={value}", ("status",), name, {name: value}) for name, value in (
            ("MOTCUA_PARTITIONS", "0"), ("MOTCUA_PARTITIONS", "many"),
            ("MOTCUA_HOLD_SECONDS", "-1"), ("MOTCUA_HOLD_SECONDS", "nan"),
            ("MOTCUA_HOLD_LIMIT", "-5"), ("MOTCUA_LOG_LEVEL", "bogus"),
            ("MOTCUA_LOG_FORMAT", "xml"), ("MOTCUA_HTTP_PORT", "99999"),
            ("MOTCUA_SESSION_TIMEOUT_MS", "0"), ("MOTCUA_DATABASE_URL", "mysql://x"),
            ("MOTCUA_DATABASE_URL", f"sqlite:///{d}"),
            ("MOTCUA_KAFKA_BOOTSTRAP", "kafka:99999"), ("MOTCUA_KAFKA_BOOTSTRAP", "no-port"),
            ("MOTCUA_KAFKA_SECURITY_PROTOCOL", "TLS"),
            ("MOTCUA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("MOTCUA_KAFKA_SASL_MECHANISM", "FOO"), ("MOTCUA_KAFKA_SSL_CAFILE", missing),
            ("MOTCUA_RULESET", "nope"), ("MOTCUA_RULESET_DIR", missing),
            ("MOTCUA_LIFECYCLE_RULES", f"{root}/bad-rules.json"),
            ("MOTCUA_LIFECYCLE_RULES", d), ("MOTCUA_HOME", f"{root}/one.ndjson"),
        )
    ]
    # A database URL with port 99999: one line, the password redacted, on every command that
    # opens the store.
    settings += [Case(f"pg-port-99999-{cmd[0]}", cmd, "99999", {"MOTCUA_DATABASE_URL": bad_pg})
                 for cmd in (("status",), ("history", "D1"), ("replay",), ("scores", "H15"))]
    # A mistyped SQLite URL on commands that only read: refused, and no database is created.
    settings += [Case(f"sqlite-mistyped-{cmd[0]}", cmd, "motcua-typo.db",
                      {"MOTCUA_DATABASE_URL": f"sqlite:///{root}/motcua-typo.db"})
                 for cmd in (("tokens", "list"), ("status",), ("history", "D1"),
                             ("ranking",), ("replay", "--verify"))]
    # Settings are checked at start by every command, even one that would not read them
    # (`up` and `demo` would otherwise start a broker first).
    every = [("demo",), ("up",), ("engine",), ("project",), ("serve",),
             ("ingest", f"{root}/one.ndjson"), ("scores", "H15"),
             ("explain", "H15", "--criterion", "ON_TIME"), ("ranking",), ("overdue", "H15"),
             ("history", "D1"), ("score", "--counts", missing), ("replay",), ("status",),
             ("simulate", "--out", f"{root}/s.nd"), ("tokens", "list")]
    settings += [Case(f"every-command-{cmd[0]}", cmd, "MOTCUA_PARTITIONS",
                      {"MOTCUA_PARTITIONS": "0"}) for cmd in every]
    return args + settings


CASES = cases("{root}")


def _resolve(case: Case, root: Path) -> Case:
    def fill(text: str) -> str:
        return text.replace("{root}", str(root))

    return Case(case.id, tuple(fill(a) for a in case.args), fill(case.named),
                {k: fill(v) for k, v in case.env.items()})


def test_every_user_mistake_is_one_sentence_exit_2_and_creates_nothing(place: Place) -> None:
    """Each case of the table: exit 2, one stderr line naming the bad input, no traceback,
    no password, nothing written on disk. (Run in parallel: each is its own process.)"""
    before = place.files()
    resolved = [_resolve(c, place.root) for c in CASES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: (c, run(place, c.args, c.env)), resolved))
    failures = []
    for case, done in results:
        err = done.stderr.decode(errors="replace")
        lines = err.strip().splitlines()
        problems = [what for what, ok in (
            (f"exit {done.returncode}", done.returncode == 2),
            (f"{len(lines)} stderr lines", len(lines) == 1),
            (f"{case.named!r} not named", bool(lines) and case.named in lines[0]),
            ("a traceback", "Traceback" not in err + done.stdout.decode(errors="replace")),
            ("the password shown", "hunter2" not in err),
        ) if not ok]
        if problems:
            failures.append(f"{case.id}: {', '.join(problems)}: {err.strip()[:300]!r}")
    assert not failures, "\n".join(failures)
    assert place.files() == before, "a refused command created or removed files"


def test_a_reader_that_goes_away_ends_the_output_quietly(place: Place) -> None:
    """``motcua ranking | head -0``: the pipe closes before the output is written; exit 0 and
    nothing on stderr (no BrokenPipeError traceback)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    clean["MOTCUA_HOME"] = str(place.home)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before motcua writes a byte
    try:
        done = subprocess.run([sys.executable, "-m", "motcua", "ranking"], cwd=ROOT, env=clean,
                              stdout=write, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()


def test_ingest_refuses_an_action_over_the_size_limit_and_goes_on(place: Place,
                                                                 tmp_path: Path) -> None:
    """A 2 MB line among good ones: ``ingest --wait`` sends the others, counts the big one as
    rejected ``too_large`` in its summary, and exits 0 without a traceback."""
    actions = simulate(1, 3)
    big = dict(actions[-1], action_id="too-big", data={"note": "x" * 2_000_000})
    lines = [orjson.dumps(a) for a in actions]
    lines.insert(2, orjson.dumps(big))
    path = tmp_path / "with-a-big-line.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    home = Place(tmp_path, tmp_path / "home")
    done = run(home, ("ingest", str(path), "--wait", "--json"), {"MOTCUA_HOLD_SECONDS": "1"},
               timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["accepted"] == len(actions)
    assert summary["rejected"] == {"too_large": 1}
