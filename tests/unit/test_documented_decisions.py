"""Promises of docs/decisions.md, docs/lifecycle.md and docs/schema-evolution.md that no other
test pinned, mostly through ``Engine.process`` on raw bytes (dates read off a 2026 calendar, as
in test_engine_batches)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from faults import Wall
from pipeline import Pipeline
from test_criteria import DEPT, NOV, OCT, base
from test_engine_batches import FEEDBACK, Feed, action, published, received

from kernel.calendar import VN_TZ
from kernel.settings import Settings
from motcua.ingest import subject_key
from motcua.pipeline import engine_at
from producers.bridge import BridgeLimits
from projections import facts as F


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def feed(tmp_path: Path, wall: Wall) -> Iterator[Feed]:
    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}", hold_seconds=10, wall=wall,
                       record_uncatalogued=True)
    yield Feed(engine)
    engine.close()


def test_a_refused_key_is_not_taken_so_a_corrected_resend_is_applied(feed: Feed) -> None:
    """A refused action's (source, action_id) is not taken: the same action again is refused
    again (and counted again), and a corrected one under that id is applied."""
    feed.send(received())  # no fee obligation
    pay = action("a1", "paid_online", "2026-10-06T09:00:00+07:00",
                 data={"gateway": "national_portal", "amount_vnd": 20_000})
    refused = {"rejected": 1, "rejected:no_fee_obligation": 1}
    assert feed.send(pay) == refused
    assert feed.send(pay) == refused
    assert feed.send(action("a1", "synced", "2026-10-06T09:00:00+07:00")) == {"accepted": 1}
    assert feed.types() == ["Received", "Synced"]
    assert [d[0] for d in feed.dead()] == ["no_fee_obligation", "no_fee_obligation"]


def test_a_due_at_before_the_reception_is_refused_as_invalid_time(feed: Feed) -> None:
    """Received Mon 5 Oct 08:00 and due Sun 4 Oct 17:00: ``invalid_time`` on ``data.due_at``."""
    counts = feed.send(received(due_at="2026-10-04T17:00:00+07:00"))
    assert counts == {"rejected": 1, "rejected:invalid_time": 1}
    assert feed.dead() == [("invalid_time", "data.due_at", 0)]
    assert feed.engine.history("dossier", "D1") is None


@pytest.mark.parametrize(("value", "unit"), [(3_651, "days"), (121, "months"),
                                             (87_601, "hours"), (2_501, "working_days")])
def test_a_processing_time_over_ten_years_is_invalid_field(feed: Feed, value: int,
                                                           unit: str) -> None:
    """Ten years in the unit is the most a processing time may be; one more is refused."""
    assert feed.send(published("p1", value, unit)) == {"rejected": 1,
                                                       "rejected:invalid_field": 1}
    assert feed.dead() == [("invalid_field", "data.processing_time.value", 0)]
    assert feed.send(published("p2", value - 1, unit, "1.000002")) == {"accepted": 1}


def test_a_fee_may_be_paid_online_in_parts(feed: Feed) -> None:
    """Two ``paid_online`` on a fee-bearing dossier are both recorded (no ``already_paid``)."""
    bearing = action("r1", "received", "2026-10-05T08:00:00+07:00", data={
        "agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online",
        "due_at": "2026-10-12T17:00:00+07:00", "fee_required": True})
    assert feed.send(bearing) == {"accepted": 1}
    parts = [action(f"p{i}", "paid_online", f"2026-10-0{5 + i}T09:00:00+07:00",
                    data={"gateway": "national_portal", "amount_vnd": 10_000})
             for i in (1, 2)]
    assert feed.send(*parts) == {"accepted": 2}
    assert feed.types() == ["Received", "PaidOnline", "PaidOnline"]


def test_a_feedback_link_to_a_dossier_that_never_comes_is_dropped_silently(
    feed: Feed, wall: Wall,
) -> None:
    """Feedback naming a dossier that does not arrive within the hold is accepted; when the
    hold expires the link is dropped with no dead letter, and a dossier arriving later is not
    marked (docs/decisions.md, "Feedback linked to a dossier")."""
    assert feed.send(FEEDBACK) == {"accepted": 1}
    wall.ahead = 11
    feed.engine.expire_holds()
    assert feed.dead() == []
    assert feed.types("F1", "feedback") == ["Received"]
    assert feed.send(received()) == {"accepted": 1}
    assert feed.types() == ["Received"]
    assert not feed.last_facts()[F.FLAGS] & F.FEEDBACK_LINKED


def test_ingest_keys_v1_and_v2_lines_by_their_subject() -> None:
    """``motcua ingest`` (and the demo) key a ``motcua.action/2`` line by ``subject.id``, as a
    v1 line by its subject field, so one subject's actions stay on one partition."""
    v1 = received(subject="H15.15-261005-0042")
    obj = orjson.loads(v1)
    v2 = {**{k: v for k, v in obj.items() if k != "dossier_id"}, "schema": "motcua.action/2",
          "subject": {"kind": "dossier", "id": "H15.15-261005-0042"}}
    assert subject_key(v1) == subject_key(orjson.dumps(v2)) == b"H15.15-261005-0042"
    assert subject_key(b"not json") is None


def test_the_late_list_counts_working_days_late_per_view(tmp_path: Path) -> None:
    """Late list (docs/decisions.md): dossiers finished late, and open ones due before the
    local date of E; ``days_late`` = working days from the due date to the end (or to E).

    All due Fri 9 Oct 2026 17:00. L1 resolved Thu 15 Oct: 12, 13, 14, 15 Oct, 4 days. O1 open at
    E = Tue 20 Oct: 12-16 and 19, 20 Oct, 7 days. Not listed: T1 resolved Fri 9 Oct at noon (on
    time), O2 open but due on E's date (20 Oct)."""
    f = base()
    for did in ("L1", "O1", "T1"):
        f.received(did, "2026-10-05T08:00:00+07:00")
    f.received("O2", "2026-10-05T08:00:00+07:00", "2026-10-20T17:00:00+07:00")
    f.resolved("L1", "2026-10-15T10:00:00+07:00").resolved("T1", "2026-10-09T12:00:00+07:00")
    e = datetime(2026, 10, 20, 9, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=e) as p:
        p.send(f.actions)
        assert p.rejected() == []
        late = p.overdue(DEPT, OCT, e)
    assert {r["dossier_id"]: r["days_late"] for r in late["dossiers"]} == {"L1": 4, "O1": 7}
    assert late["count"] == 2


def test_the_readme_s_configuration_defaults(tmp_path: Path) -> None:
    """The defaults the README's configuration table states, read from an empty environment;
    and the bridge's limits producers.md states (1 MiB, 50 requests/s, bursts of 100)."""
    s = Settings.from_env({"MOTCUA_HOME": str(tmp_path)})
    assert (s.database_url, s.kafka_bootstrap, s.ruleset) == (
        f"sqlite:///{tmp_path / 'motcua.db'}", None, None)
    assert (s.partitions, s.hold_seconds, s.hold_limit, s.engine_cache) == (3, 10, 100_000,
                                                                            200_000)
    assert (s.log_level, s.log_format, s.http_host, s.http_port) == (
        "info", "json", "127.0.0.1", 8766)
    assert (s.consumer_group, s.session_timeout_ms) == ("motcua", 3_000)
    assert s.kafka_security.security_protocol == "PLAINTEXT"
    assert (s.ruleset_dir, s.lifecycle_rules) == (None, None)
    assert Settings.from_env({}).home == Path(".motcua")
    limits = BridgeLimits()
    assert (limits.max_body_bytes, limits.rate, limits.burst) == (1 << 20, 50, 100)


def test_a_supplement_completed_before_its_request_adds_no_time(tmp_path: Path) -> None:
    """A negative wait counts as zero (docs/decisions.md): requested Wed 7 Oct 10:00, completed
    "Tue 6 Oct 10:00", resolved Fri 9 Oct 16:00 before the 17:00 due time: on time (a shift of
    minus a day would make it late)."""
    f = base().received("D1", "2026-10-05T08:00:00+07:00")
    f("supplement_requested", "D1", "2026-10-07T10:00:00+07:00", {"reason": "thiếu giấy tờ"})
    f("supplement_completed", "D1", "2026-10-06T10:00:00+07:00")
    f.resolved("D1", "2026-10-09T16:00:00+07:00")
    e = datetime(2026, 10, 20, 9, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=e) as p:
        p.send(f.actions)
        assert p.rejected() == []
        assert p.counts(DEPT, OCT, e)["ON_TIME"] == (1, 1)


def test_a_later_amendment_does_not_move_a_received_dossier_s_due_time(tmp_path: Path) -> None:
    """Procedure 2D takes 2 working days when D1 is received Mon 23 Nov 2026 (due Thu 26 Nov,
    24 Nov being a holiday); amended to 10 working days on 24 Nov; D1 resolved Fri 27 Nov is
    late. D2, received after the amendment on Wed 25 Nov, gets the 10 days (due 9 Dec)."""
    f = base(("2D", {"processing_time": (2, "working_days")}))
    f.received("D1", "2026-11-23T10:00:00+07:00", None, procedure="2D")
    f.procedure("2D", "2026-11-24", "2026-12-01", processing_time=(10, "working_days"))
    f.received("D2", "2026-11-25T10:00:00+07:00", None, procedure="2D")
    f.resolved("D1", "2026-11-27T10:00:00+07:00").resolved("D2", "2026-12-09T20:00:00+07:00")
    e = datetime(2026, 12, 20, 9, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=e) as p:
        p.send(f.actions)
        assert p.rejected() == []
        assert p.counts(DEPT, NOV, e)["ON_TIME"] == (1, 2)
        late = p.overdue(DEPT, NOV, e)["dossiers"]
    assert [(r["dossier_id"], r["due_date"]) for r in late] == [("D1", "2026-11-26")]


def test_the_engine_switches_default_off_and_reach_the_engine_from_the_environment(
        tmp_path: Path) -> None:
    """``MOTCUA_RECORD_UNCATALOGUED`` and ``MOTCUA_REQUIRE_GRANTS`` are ``0`` by default (the
    README's table): a dossier of a procedure not seen yet waits; set to ``1``, the engine the
    commands make records it at once and refuses a source without a grant. An unknown
    ``MOTCUA_*`` name is not refused (docs/decisions.md: other tools use the prefix)."""
    from motcua.pipeline import make_engine
    from producers.tokens import TokenStore

    default = Settings.from_env({"MOTCUA_HOME": str(tmp_path / "a"), "MOTCUA_UNRELATED": "x"})
    assert (default.record_uncatalogued, default.require_grants) == (False, False)
    (tmp_path / "a").mkdir()
    engine = make_engine(default)
    try:
        assert Feed(engine).send(received(procedure_id="9.999999")) == {"held": 1}
    finally:
        engine.close()
    (tmp_path / "b").mkdir()
    on = Settings.from_env({"MOTCUA_HOME": str(tmp_path / "b"), "MOTCUA_RECORD_UNCATALOGUED": "1",
                            "MOTCUA_REQUIRE_GRANTS": "1"})
    tokens = TokenStore(on.database_url)
    try:
        tokens.add("daklak-igate", "H15")
    finally:
        tokens.close()
    engine = make_engine(on)
    try:
        stranger = orjson.loads(received("r2", "D2", procedure_id="9.999999"))
        stranger["source"] = "anyone"
        assert Feed(engine).send(received(procedure_id="9.999999"), orjson.dumps(stranger)) == {
            "accepted": 1, "rejected": 1, "rejected:source_not_registered": 1}
    finally:
        engine.close()
