"""The ``motcua`` command end to end, as a user runs it: real processes, real broker, real files.

``ingest --wait`` on an empty home starts the bundled broker and the pipeline itself; the counts
it prints are worked out from how the file was built. A user mistake is one line on stderr.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from faults import ROOT, future_start, simulate

SCORECARD_KEYS = {"agency_id", "period", "view_end", "ruleset", "total", "classification",
                  "groups"}
GROUP_KEYS = {"key", "max", "score", "criteria"}
CRITERION_KEYS = {"id", "code", "numerator", "denominator", "ratio", "target", "max", "points"}


def motcua(home: Path, *args: str, timeout: float = 120,
           **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``motcua ARGS`` with only this test's ``MOTCUA_*`` settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    clean.update({"MOTCUA_HOME": str(home), **env})
    return subprocess.run([sys.executable, "-m", "motcua", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(done: subprocess.CompletedProcess[str], names: str) -> None:
    """A user mistake: exit status 2, one stderr line naming the bad input, no traceback."""
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert names in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout


@dataclass
class Built:
    """An NDJSON file and what ``ingest`` must say about it."""

    path: Path
    accepted: int
    duplicates: int
    rejected: dict[str, int]
    dossier: str  # a dossier whose actions came before its ``received``
    dossier_actions: set[str]


def build_file(path: Path) -> Built:
    """A small province with exact repeats, a dossier out of order, and bad lines of every
    kind the schema knows, plus a changed repeat and an action of a dossier that never comes."""
    rng = random.Random(5)
    actions = simulate(2, 60)
    by_dossier: dict[str, list[int]] = {}
    for i, a in enumerate(actions):
        if "dossier_id" in a:
            by_dossier.setdefault(a["dossier_id"], []).append(i)
    # A dossier whose later actions arrive before its ``received`` (same key, so held first).
    dossier, idx = next((d, ix) for d, ix in by_dossier.items() if len(ix) >= 4)
    received = actions[idx[0]]
    lines = [orjson.dumps(a) for a in actions if a is not received]
    lines.insert(lines.index(orjson.dumps(actions[idx[-1]])) + 1, orjson.dumps(received))
    repeats = rng.sample(lines, 10)
    lines += repeats
    # Same (source, action_id), other content.
    changed = dict(actions[idx[1]], data={**actions[idx[1]]["data"], "note": "sent again"})
    orphan = dict(actions[idx[1]], action_id="orphan-1", dossier_id="H15.1-000000-9999")
    schema = dict(actions[0], action_id="bad-schema", schema="motcua.action/0")
    kind = dict(actions[0], action_id="bad-type", type="stamped")
    missing = {k: v for k, v in actions[0].items() if k != "occurred_at"}
    missing["action_id"] = "bad-missing"
    lines += [b"this is not json", b"[1, 2, 3]", orjson.dumps(schema), orjson.dumps(kind),
              orjson.dumps(missing), orjson.dumps(changed), orjson.dumps(orphan)]
    path.write_bytes(b"\n".join(lines) + b"\n\n")  # a trailing blank line is not an action
    return Built(
        path, accepted=len(actions), duplicates=10,
        rejected={"conflicting_duplicate": 1, "malformed_json": 1, "missing_field": 1,
                  "not_an_object": 1, "unknown_dossier": 1, "unknown_type": 1,
                  "unsupported_schema": 1},
        dossier=dossier, dossier_actions={actions[i]["action_id"] for i in idx})


def test_ingest_wait_on_an_empty_home_processes_the_file_and_prints_exact_counts(
    tmp_path: Path, motcua_home: Path,
) -> None:
    """``ingest --wait --json`` with nothing running starts the bundled broker and pipeline,
    and reports every line once: accepted, duplicate, or rejected by reason."""
    built = build_file(tmp_path / "actions.ndjson")
    done = motcua(motcua_home, "ingest", str(built.path), "--wait", "--json",
                  MOTCUA_HOLD_SECONDS="2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = orjson.loads(done.stdout)
    assert summary == {"accepted": built.accepted, "duplicates": built.duplicates,
                       "rejected": built.rejected}
    assert not (motcua_home / "broker.json").exists(), "the embedded broker was left behind"

    history = motcua(motcua_home, "history", built.dossier, "--json")
    assert history.returncode == 0, history.stderr
    causes = Counter(e["cause"]["action_id"] for e in orjson.loads(history.stdout)["events"])
    assert causes == Counter(built.dossier_actions), "an accepted action is not there once"

    year = future_start().year
    scores = motcua(motcua_home, "scores", "H15", "--period", str(year),
                    "--now", f"{year}-12-31T23:59:59+07:00", "--json")
    assert scores.returncode == 0, scores.stderr
    card = orjson.loads(scores.stdout)
    assert card.keys() >= SCORECARD_KEYS
    assert card["agency_id"] == "H15" and card["period"] == str(year)
    assert card["ruleset"] == "portal-2026"
    assert isinstance(card["total"], int | float) and card["groups"]
    for group in card["groups"]:
        assert group.keys() >= GROUP_KEYS
        for c in group["criteria"]:
            assert c.keys() >= CRITERION_KEYS
            assert (c["ratio"] is None) == (c["denominator"] == 0)
    on_time = next(c for g in card["groups"] for c in g["criteria"] if c["code"] == "ON_TIME")
    assert on_time["denominator"] > 0, "the ingested dossiers are not in the scores"


def test_ingest_reads_standard_input_and_takes_a_byte_order_mark(
    tmp_path: Path, motcua_home: Path,
) -> None:
    """``ingest -`` reads the actions from standard input; a UTF-8 byte-order mark (as some
    editors write) before the first line is not part of it: every line counted as from the
    file itself."""
    built = build_file(tmp_path / "actions.ndjson")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    clean.update({"MOTCUA_HOME": str(motcua_home), "MOTCUA_HOLD_SECONDS": "2"})
    done = subprocess.run([sys.executable, "-m", "motcua", "ingest", "-", "--wait", "--json"],
                          cwd=ROOT, env=clean, capture_output=True, timeout=120, check=False,
                          input=b"\xef\xbb\xbf" + built.path.read_bytes())
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {"accepted": built.accepted,
                                         "duplicates": built.duplicates,
                                         "rejected": built.rejected}


def test_ingest_of_a_missing_file_is_one_sentence_and_exit_2(
    tmp_path: Path, motcua_home: Path,
) -> None:
    """A file that does not exist: exit 2, one sentence naming it, no traceback."""
    missing = tmp_path / "nowhere.ndjson"
    done = motcua(motcua_home, "ingest", str(missing), "--wait", "--json")
    assert done.returncode == 2
    one_line_error(done, str(missing))
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["scores", "H15", "--period", "2026-13"], "2026-13"),
        (["scores", "H15", "--now", "yesterday"], "yesterday"),
        (["scores", "NO.SUCH.AGENCY", "--period", "2026"], "NO.SUCH.AGENCY"),
    ],
    ids=["bad-period", "bad-now", "unknown-agency"],
)
def test_scores_with_bad_input_names_it_in_one_line(
    motcua_home: Path, args: list[str], names: str,
) -> None:
    """A bad period, time or agency for ``scores``: non-zero exit, one line naming it."""
    assert motcua(motcua_home, "replay").returncode == 0  # an empty store: scores only reads
    one_line_error(motcua(motcua_home, *args), names)


def test_ingest_to_an_unreachable_broker_names_it_in_one_line(
    tmp_path: Path, motcua_home: Path,
) -> None:
    """``ingest`` with MOTCUA_KAFKA_BOOTSTRAP pointing at nothing: one line naming the address."""
    path = tmp_path / "one.ndjson"
    path.write_bytes(orjson.dumps(simulate(1, 1)[0]) + b"\n")
    done = motcua(motcua_home, "ingest", str(path), MOTCUA_KAFKA_BOOTSTRAP="127.0.0.1:1",
                  timeout=60)
    one_line_error(done, "127.0.0.1:1")


@pytest.mark.parametrize("command", [["replay"], ["history", "D1"], ["status"]])
def test_a_database_that_cannot_be_opened_is_one_line_naming_it(
    tmp_path: Path, command: list[str],
) -> None:
    """A MOTCUA_HOME that cannot hold the database: one line naming the database, exit 2."""
    done = motcua(tmp_path / "no" / "such" / "home", *command)
    one_line_error(done, "motcua.db")
    assert done.returncode == 2


@pytest.mark.parametrize("command", [["scores", "H15"], ["history", "D1"],
                                     ["ingest", "--wait", "README.md"]])
def test_a_file_that_is_not_a_database_is_one_line_naming_it(
    tmp_path: Path, motcua_home: Path, command: list[str],
) -> None:
    """MOTCUA_DATABASE_URL naming a file that is not SQLite: one line naming the database,
    exit 2, and no views database made beside it."""
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 20)
    done = motcua(motcua_home, *command, MOTCUA_DATABASE_URL=f"sqlite:///{garbage}")
    one_line_error(done, "garbage.bin")
    assert done.returncode == 2 and "not a" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("garbage")) == [
        "garbage.bin"]


def test_an_unreachable_postgresql_is_one_line_without_its_password(motcua_home: Path) -> None:
    """A PostgreSQL URL nobody answers: one line naming the server, the password redacted."""
    done = motcua(motcua_home, "scores", "H15",
                  MOTCUA_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/motcua")
    one_line_error(done, "127.0.0.1:1")
    assert "hunter2" not in done.stderr


def test_rulesets_and_fact_rules_from_the_command_line(tmp_path: Path,
                                                      motcua_home: Path) -> None:
    """A draft ruleset scores a what-if (``--ruleset``); an unknown one is one sentence; a
    changed fact rule is refused until ``replay --rederive``, after which ``--verify`` is
    clean under the new rule (and the old rule is refused in turn)."""
    import json
    from importlib import resources

    path = tmp_path / "a.ndjson"
    path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in simulate(2, 80)))
    assert motcua(motcua_home, "ingest", str(path), "--wait", "--json").returncode == 0

    drafts = tmp_path / "rulesets"
    drafts.mkdir()
    doc = json.loads(resources.files("projections.rulesets").joinpath(
        "portal-2026.json").read_text("utf-8"))
    doc.update(name="draft-x", draft=True)
    (drafts / "draft-x.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    card = motcua(motcua_home, "scores", "H15", "--ruleset", "draft-x", "--json",
                  MOTCUA_RULESET_DIR=str(drafts))
    assert card.returncode == 0, card.stderr
    assert orjson.loads(card.stdout)["ruleset"] == "draft-x"
    bad = motcua(motcua_home, "scores", "H15", "--ruleset", "nope")
    one_line_error(bad, "nope")
    assert bad.returncode == 2

    rules = tmp_path / "lifecycle.json"
    rules.write_text(json.dumps({"petition_answer_working_days": 3}), "utf-8")
    changed = str(rules)
    refused = motcua(motcua_home, "replay", "--verify", MOTCUA_LIFECYCLE_RULES=changed)
    one_line_error(refused, "replay --rederive")
    assert refused.returncode == 2
    rederived = motcua(motcua_home, "replay", "--rederive", MOTCUA_LIFECYCLE_RULES=changed)
    assert rederived.returncode == 0, rederived.stderr
    assert "derived the facts of" in rederived.stdout
    verified = motcua(motcua_home, "replay", "--verify", MOTCUA_LIFECYCLE_RULES=changed)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    one_line_error(motcua(motcua_home, "replay", "--verify"), "replay --rederive")
