"""Schema evolution: motcua.action/2 upcast to /1, and stores written by the v1 domain classes.

A "v1 store" is written the way the code before ``Dossier.Received`` v2 wrote it: the same rows,
but the Received states carry neither ``class_version`` nor ``due_source`` (the new code writes
them last, so removing them gives the old bytes). Snapshots likewise. The new code must read such
a store, go on recording into it, and score and replay it exactly as a store it wrote itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest

from engine.app import Engine, Message, MotcuaApplication, store_env
from engine.domain.base import subject_uuid
from engine.domain.dossier import Dossier
from engine.relay import event_message
from engine.store import OrjsonTranscoder
from kernel.calendar import VN_TZ
from kernel.contract.actions import SCHEMA_V2, SUBJECT_FIELD, InvalidActionError, validate_action
from kernel.contract.upcasting import subject_of, upcast_action_v2
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections import facts as F
from projections.fold import Counters
from projections.periods import parse_period
from projections.replay import Replayer
from projections.ruleset import load_ruleset
from projections.store import ViewStore, views_url
from projections.views import ranking, scorecard

RULESET = load_ruleset("portal-2026")
TOPIC = "motcua.actions"
LOG = "test-log"
NOW = datetime(2026, 7, 15, 12, 0, tzinfo=VN_TZ)
RECEIVED_TOPIC = "engine.domain.dossier:Dossier.Received"

CONTRACT_EXAMPLE: dict[str, Any] = {
    "schema": "motcua.action/1", "action_id": "igate-88231", "source": "daklak-igate",
    "type": "received", "occurred_at": "2026-10-05T08:14:00+07:00",
    "dossier_id": "H15.15-261005-0042",
    "data": {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online",
             "due_at": "2026-10-12T17:00:00+07:00", "full_online": True,
             "fee_required": True},
}


def to_v2(v1: dict[str, Any]) -> dict[str, Any]:
    """The motcua.action/2 object an integrator sends for a v1 action (subject moved)."""
    field = SUBJECT_FIELD[v1["type"]]
    out = {k: v for k, v in v1.items() if k != field}
    out["schema"] = SCHEMA_V2
    out["subject"] = {"kind": field.removesuffix("_id"), "id": v1[field]}
    return out


def province(dossiers: int = 240, seed: int = 11) -> list[dict[str, Any]]:
    """A small simulated province with more feedback than the default rate gives."""
    return list(generate(SimConfig(agencies=5, dossiers=dossiers, seed=seed,
                                   start=date(2026, 1, 1), days=150,
                                   feedback_per_dossier=0.1)))


def record(engine: Engine, actions: list[dict[str, Any]], first_offset: int = 0,
           *, v2: bool = False) -> dict[str, int]:
    """Process actions as one partition's consecutive offsets; returns outcome counts."""
    counts: dict[str, int] = {}
    for i in range(0, len(actions), 500):
        chunk = actions[i:i + 500]
        msgs = [Message(TOPIC, 0, first_offset + i + j, orjson.dumps(to_v2(a) if v2 else a))
                for j, a in enumerate(chunk)]
        for k, n in engine.process(LOG, msgs).items():
            counts[k] = counts.get(k, 0) + n
    return counts


def live_fold(engine: Engine) -> Counters:
    """The counters the projection folds from the relayed messages of every recorded event."""
    c = Counters()
    for note in engine.store.read_facts(1, 10**9):
        c.fold(event_message(note)[1])
    return c


def replayed(url: str, engine: Engine, prefix: str) -> Counters:
    """The counters a Replayer rebuilds from the store (into table set ``prefix``)."""
    views = ViewStore(views_url(url), prefix=prefix)
    try:
        _, counters, _ = Replayer(engine.store, views).rebuild(
            prefix=prefix + "_shadow", resume=False)
        return counters
    finally:
        views.close()


def cards(c: Counters) -> dict[str, Any]:
    out = {p: scorecard(c, RULESET, "H15", parse_period(p), NOW) for p in ("2026", "2026-Q1")}
    out["ranking"] = ranking(c, RULESET, parse_period("2026-H1"), NOW)
    return out


def downgrade_to_v1(db: Path) -> int:
    """Rewrite every Received as the v1 class wrote it; returns how many had due_source
    'catalog' (whose meaning the upcast cannot recover)."""
    catalog = 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rowid, state FROM stored_events WHERE topic = ?",
                            (RECEIVED_TOPIC,)).fetchall()
        for rowid, state in rows:
            s = orjson.loads(state)
            assert s.pop("class_version") == 3
            catalog += s.pop("due_source") == "catalog"
            # What v1 also wrote: the ruleset's option and the index facts.
            s.pop("official_id")
            s.update(apology_moves_due=False, prev=None, facts=None)
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                         (orjson.dumps(s), rowid))
    return catalog


def copy_store(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


# ----- motcua.action/2 --------------------------------------------------------------------------


def test_contract_example_sent_as_v2_is_the_same_action() -> None:
    """The contract example in motcua.action/2 validates to the equal Action, fingerprint
    included."""
    v1, v2 = validate_action(CONTRACT_EXAMPLE), validate_action(to_v2(CONTRACT_EXAMPLE))
    assert v2 == v1
    assert (v2.fingerprint, v2.subject_field, v2.subject_id, dict(v2.data)) == (
        v1.fingerprint, v1.subject_field, v1.subject_id, dict(v1.data))


def test_every_simulated_action_upcasts_to_its_v1_form() -> None:
    """Every action of a simulated province, of every subject kind, means the same as v2."""
    actions = province(60)
    kinds = set()
    for a in actions:
        v2 = to_v2(a)
        kinds.add(v2["subject"]["kind"])
        assert upcast_action_v2(v2) == a
        assert validate_action(v2) == validate_action(a)
    assert kinds == {"dossier", "feedback", "procedure", "agency"}


@pytest.mark.parametrize(("change", "reason", "field"), [
    (lambda o: o.pop("subject"), "missing_field", "subject"),
    (lambda o: o.update(subject="H15.15-1"), "invalid_field", "subject"),
    (lambda o: o["subject"].pop("kind"), "missing_field", "subject.kind"),
    (lambda o: o["subject"].update(kind="feedback"), "invalid_field", "subject.kind"),
    (lambda o: o["subject"].update(kind=["dossier"]), "invalid_field", "subject.kind"),
    (lambda o: o["subject"].update(kind="case"), "invalid_field", "subject.kind"),
    (lambda o: o["subject"].pop("id"), "missing_field", "subject.id"),
    (lambda o: o["subject"].update(id=""), "invalid_field", "subject.id"),
    (lambda o: o["subject"].update(id="x" * 65), "invalid_field", "subject.id"),
    (lambda o: o.update(dossier_id="H15.15-1"), "invalid_field", "dossier_id"),
    (lambda o: o["data"].update(channel="fax"), "invalid_field", "data.channel"),
    (lambda o: o.update(type="teleported"), "unknown_type", "type"),
])
def test_errors_in_a_v2_action_name_the_v2_field(change: Any, reason: str, field: str) -> None:
    """A bad v2 action is refused with its reason and the field path as the sender wrote it."""
    obj = to_v2(orjson.loads(orjson.dumps(CONTRACT_EXAMPLE)))
    change(obj)
    with pytest.raises(InvalidActionError) as info:
        validate_action(obj)
    assert (info.value.reason, info.value.field) == (reason, field)
    assert field in info.value.message or reason == "unknown_type"


def test_the_kafka_key_of_either_schema_is_its_subject_id() -> None:
    """subject_of finds the subject id of a v1 and of a v2 action, and None when absent."""
    assert subject_of(CONTRACT_EXAMPLE) == "H15.15-261005-0042"
    assert subject_of(to_v2(CONTRACT_EXAMPLE)) == "H15.15-261005-0042"
    assert subject_of({"schema": SCHEMA_V2, "subject": "x"}) is None


def _received(**over: Any) -> dict[str, Any]:
    return {**orjson.loads(orjson.dumps(CONTRACT_EXAMPLE)), **over}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = engine_at(f"sqlite:///{tmp_path / 'm.db'}", record_uncatalogued=True)
    yield e
    e.close()


def test_same_action_as_v1_then_v2_is_a_duplicate(engine: Engine) -> None:
    """The same (source, action_id) and meaning sent as v1 and again as v2 is a duplicate, not
    a conflict, and records one fact."""
    first = record(engine, [_received()])
    again = engine.process(LOG, [Message(TOPIC, 0, 1, orjson.dumps(to_v2(_received())))])
    assert (first, again) == ({"accepted": 1}, {"duplicate": 1})
    assert len(engine.history("dossier", "H15.15-261005-0042") or []) == 1


def test_same_action_as_v2_then_v1_is_a_duplicate(engine: Engine) -> None:
    """Order does not matter: v2 first, then the v1 form, is a duplicate too."""
    first = record(engine, [_received()], v2=True)
    again = engine.process(LOG, [Message(TOPIC, 0, 1, orjson.dumps(_received()))])
    assert (first, again) == ({"accepted": 1}, {"duplicate": 1})


def test_same_key_with_another_meaning_in_v2_is_a_conflict(engine: Engine) -> None:
    """A v2 action reusing a v1 action's key with a different subject is
    conflicting_duplicate."""
    record(engine, [_received()])
    other = to_v2(_received())
    other["subject"]["id"] = "H15.15-261005-0043"
    out = engine.process(LOG, [Message(TOPIC, 0, 1, orjson.dumps(other))])
    assert out == {"rejected": 1, "rejected:conflicting_duplicate": 1}


def test_a_held_v2_action_is_applied_when_its_dossier_arrives(engine: Engine) -> None:
    """A v2 action kept (as its original bytes) while it waits for its dossier is parsed again
    and applied when the dossier's received comes."""
    digitized = {**_received(), "action_id": "igate-88232", "type": "digitized",
                 "occurred_at": "2026-10-05T09:00:00+07:00", "data": {"components": 2}}
    assert record(engine, [digitized], v2=True) == {"held": 1}
    assert record(engine, [_received()], 1, v2=True) == {"accepted": 1}
    types = [e["type"] for e in engine.history("dossier", "H15.15-261005-0042") or []]
    assert types == ["Received", "Digitized"]


# ----- Dossier.Received v2 and the Dossier aggregate v2 --------------------------------------


def test_new_received_records_where_its_due_time_came_from(engine: Engine) -> None:
    """due_source is 'action' when the action gave due_at and 'catalog' when it was computed."""
    actions = province(40)
    record(engine, actions)
    received = [a for a in actions if a["type"] == "received"]
    assert {a["data"].get("due_at") is None for a in received} == {True, False}
    for a in received:
        d: Dossier = engine.app.repository.get(subject_uuid("dossier", a["dossier_id"]))
        assert d.due_source == ("catalog" if a["data"].get("due_at") is None else "action")


def test_a_v1_store_reads_scores_and_replays_as_the_same_actions_recorded_now(
    tmp_path: Path,
) -> None:
    """A store whose Received events were written by the v1 class: the engine reads its
    dossiers (due_source 'action'), records more actions into it, and its live fold and its
    replay score exactly as a store the new code wrote from the same actions."""
    # Receptions as v1 senders sent them: v1 recorded no receiving official.
    actions = [{**a, "data": {k: v for k, v in a["data"].items() if k != "official_id"}}
               if a["type"] == "received" else a for a in province()]
    half = len(actions) // 2
    new_db, old_db = tmp_path / "new.db", tmp_path / "old.db"
    new_url, old_url = f"sqlite:///{new_db}", f"sqlite:///{old_db}"
    new = engine_at(new_url, record_uncatalogued=True)
    record(new, actions[:half])
    new.close()
    copy_store(new_db, old_db)
    assert downgrade_to_v1(old_db) > 0  # some v1 dossiers had a computed due time
    with sqlite3.connect(old_db) as conn:
        states = [orjson.loads(s) for (s,) in conn.execute(
            "SELECT state FROM stored_events WHERE topic = ?", (RECEIVED_TOPIC,))]
    assert states and all("class_version" not in s and "due_source" not in s for s in states)

    new, old = (engine_at(u, record_uncatalogued=True) for u in (new_url, old_url))
    try:
        for a in actions[:half]:
            if a["type"] == "received":
                sid = subject_uuid("dossier", a["dossier_id"])
                d_old: Dossier = old.app.repository.get(sid)
                d_new: Dossier = new.app.repository.get(sid)
                assert d_old.due_source == "action"
                assert (F.facts_of(d_old), d_old.version, d_old.due()) == (
                    F.facts_of(d_new), d_new.version, d_new.due())
        # The rest of the stream, with the new code, on top of the v1 events.
        assert record(old, actions[half:], half) == record(new, actions[half:], half)
        expected = cards(live_fold(new))
        assert cards(live_fold(old)) == expected
        assert cards(replayed(old_url, old, "old")) == expected
        assert cards(replayed(new_url, new, "new")) == expected
    finally:
        new.close()
        old.close()


# ----- snapshots ------------------------------------------------------------------------------


def _tag(o: Any) -> Any:
    if isinstance(o, datetime):
        return {"__dt__": o.isoformat()}
    if isinstance(o, timedelta):
        return {"__td__": o.total_seconds()}
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _untag(o: Any) -> Any:
    if isinstance(o, dict):
        if len(o) == 1 and "__dt__" in o:
            return datetime.fromisoformat(o["__dt__"])
        if len(o) == 1 and "__td__" in o:
            return timedelta(seconds=o["__td__"])
        return {k: _untag(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_untag(v) for v in o]
    return o


class SnapshotTranscoder(OrjsonTranscoder):
    """Round-trips aggregate state (datetimes, timedeltas) for snapshots; reads the engine's
    plain events as OrjsonTranscoder does. The engine itself does not snapshot: it caches."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_tag, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def decode(self, data: bytes) -> Any:
        return _untag(super().decode(data))


class SnapshottingApplication(MotcuaApplication):
    is_snapshotting_enabled = True

    def construct_transcoder(self) -> SnapshotTranscoder:
        return SnapshotTranscoder()


def _snapshot_state(db: Path, sid: UUID) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        (state,) = conn.execute("SELECT state FROM stored_snapshots WHERE originator_id = ?",
                                (sid.hex,)).fetchone()
    return dict(orjson.loads(state))


def _write_snapshot_state(db: Path, sid: UUID, state: dict[str, Any]) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE stored_snapshots SET state = ? WHERE originator_id = ?",
                     (orjson.dumps(state), sid.hex))


@pytest.fixture
def snapshotted(tmp_path: Path) -> Iterator[tuple[Path, Engine, SnapshottingApplication, UUID]]:
    """A store with a catalog-due dossier that was received and digitized, and a snapshot."""
    db = tmp_path / "snap.db"
    engine = engine_at(f"sqlite:///{db}", record_uncatalogued=True)
    actions = province(40)
    pid = next(a["data"]["procedure_id"] for a in actions if a["type"] == "received"
               and a["data"].get("due_at") is None)
    catalog = [a for a in actions if a["type"] in ("agency_registered", "procedure_published")]
    base = {"schema": "motcua.action/1", "source": "s", "dossier_id": "D-1"}
    lifecycle = [
        {**base, "action_id": "1", "type": "received", "occurred_at": "2026-03-02T08:00:00+07:00",
         "data": {"agency_id": "H15.1", "procedure_id": pid, "channel": "direct"}},
        {**base, "action_id": "2", "type": "digitized",
         "occurred_at": "2026-03-02T09:00:00+07:00", "data": {"components": 1}},
    ]
    assert record(engine, catalog + lifecycle) == {"accepted": len(catalog) + 2}
    app = SnapshottingApplication(env=store_env(f"sqlite:///{db}"))
    sid = subject_uuid("dossier", "D-1")
    app.take_snapshot(sid)
    yield db, engine, app, sid
    app.close()
    engine.close()


def test_a_v2_snapshot_keeps_due_source(
    snapshotted: tuple[Path, Engine, SnapshottingApplication, UUID],
) -> None:
    """A snapshot taken by the new code records class_version 3 and reads back unchanged."""
    db, engine, app, sid = snapshotted
    state = _snapshot_state(db, sid)
    assert (state["state"]["class_version"], state["state"]["due_source"]) == (3, "catalog")
    d: Dossier = app.repository.get(sid)
    assert (d.due_source, d.version) == ("catalog", 2)
    assert F.facts_of(d) == F.facts_of(engine.app.repository.get(sid))


def test_a_v1_snapshot_upcasts_and_the_dossier_goes_on(
    snapshotted: tuple[Path, Engine, SnapshottingApplication, UUID],
) -> None:
    """A snapshot as the v1 Dossier wrote it (no class_version, no due_source; its marks
    named ``flags``, with the index facts and the ruleset's option in it) reads as v3 with
    due_source 'action', the same facts, and takes events recorded after it."""
    db, engine, app, sid = snapshotted
    state = _snapshot_state(db, sid)
    s = state["state"]
    del s["class_version"], s["due_source"], s["apology_at"], s["apology_due_then"]
    del s["official_id"]
    s["flags"] = s.pop("marks")
    s.update(month="2026-03", facts=["H15.1", "2026-03"], processing_days=-1,
             apology_moves_due=False)
    _write_snapshot_state(db, sid, state)
    msg = {"schema": "motcua.action/1", "source": "s", "dossier_id": "D-1", "action_id": "3",
           "type": "resolved", "occurred_at": "2026-03-05T10:00:00+07:00",
           "data": {"outcome": "approved"}}
    assert engine.process(LOG, [Message(TOPIC, 0, 99, orjson.dumps(msg))]) == {"accepted": 1}
    from_snapshot: Dossier = app.repository.get(sid)
    from_events: Dossier = engine.app.repository.get(sid)
    assert isinstance(from_snapshot, Dossier)
    assert from_snapshot.due_source == "action"
    assert from_events.due_source == "catalog"
    assert (from_snapshot.version, F.facts_of(from_snapshot), from_snapshot.due()) == (
        from_events.version, F.facts_of(from_events), from_events.due())
    assert from_snapshot.version == 3
