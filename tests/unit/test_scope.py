"""Scopes on the engine: a granted source's actions that touch another agency are dead letters.

The sources' grants are real rows of the token table in the engine's own SQLite file
(``producers.tokens.TokenStore``); actions go to ``Engine.process`` as Kafka messages of one
partition (``tests/pipeline.py``) and the real views count the result.

The province H16 (by hand, period 2026, now Tue 6 Oct 2026): one procedure P16 of H16, carried
out by H16.1, fee-bearing, for individual applicants, parts complete, decided Mon 5 Jan 2026 with
its legal basis in force on 20 Jan (5 working days later is Mon 12 Jan: on time) and made public
on Wed 7 Jan (by 12 Jan: on time); three dossiers of H16.1 received in October, the first
fee-bearing, paid online and using population data. So for H16: 1.1, 1.2 and 1.3 are 1/1 (one
procedure decided in 2026, public on time, complete), 3.5, 3.5b and 4.5a are 1/1 (one procedure,
with such a dossier), and 5.4 is 3/3 (no dossier rated unsatisfied, none with feedback, none
overdue before its due time of 12 Oct).

Every attack below by ``h15-igate`` (granted H15) would move one of those figures if applied:
a fee-bearing procedure carried out by H16.1 (3.5 → 1/2), re-publishing P16 under H15 (H16's
procedure criteria lose it, 1.1 moves to H15), repealing it (3.5 → 0/0), an unsatisfied
rating of an H16 dossier (5.4 → 2/3), feedback about one (5.4 → 2/3).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pipeline import Pipeline
from scoped import NOW, P15, P16, act, agency, feedback, procedure, received

from engine.app import Message
from motcua.pipeline import engine_at
from producers.tokens import TokenStore
from projections.periods import parse_period

WATCHED = ("PUBLISH_ON_TIME", "PUBLIC_UPDATE_ON_TIME", "PUBLIC_CONTENT_FULL",
           "PAYMENT_FORMALITY_FEE_DOSSIER", "PAYMENT_FORMALITY_TRANSACTION",
           "CITIZEN_DATA_CONNECTED_FORMALITY", "DOSSIER_RECEIVING_SATISFACTION")
H16_BY_HAND = {"PUBLISH_ON_TIME": (1, 1), "PUBLIC_UPDATE_ON_TIME": (1, 1),
               "PUBLIC_CONTENT_FULL": (1, 1), "PAYMENT_FORMALITY_FEE_DOSSIER": (1, 1),
               "PAYMENT_FORMALITY_TRANSACTION": (1, 1),
               "CITIZEN_DATA_CONNECTED_FORMALITY": (1, 1),
               "DOSSIER_RECEIVING_SATISFACTION": (3, 3)}


def grant(db: Path, source: str, agencies: str) -> None:
    store = TokenStore(f"sqlite:///{db}")
    try:
        store.add(source, agencies)
    finally:
        store.close()


@pytest.fixture
def province(tmp_path: Path) -> Iterator[Pipeline]:
    """H15 and H16 with their units, H16's procedure and first dossier, sent by an ungranted
    catalog source and H16's own system; ``h15-igate`` holds a write grant for H15."""
    db = tmp_path / "m.db"
    grant(db, "h15-igate", "H15")
    grant(db, "h16-igate", "H16")
    with Pipeline(db, clock=NOW) as p:
        p.send([agency("catalog", "H15", None, "province"),
                agency("catalog", "H15.1", "H15", "department"),
                agency("catalog", "H16", None, "province"),
                agency("catalog", "H16.1", "H16", "department"),
                agency("catalog", "H15.9", "H16", "department"),  # an odd id under H16
                procedure("catalog", P16, "H16", ["H16.1"]),
                act("catalog", "procedure_publicized", P16, at="2026-01-07T10:00:00+07:00"),
                received("h16-igate", "H16.1-0001", "H16.1", P16, fee_required=True,
                         population_data_used=True),
                act("h16-igate", "paid_online", "H16.1-0001",
                    {"gateway": "national_portal", "amount_vnd": 50_000})])
        assert p.outcomes == {"accepted": 9}, p.outcomes
        yield p


def dead(p: Pipeline) -> list[tuple[str, str | None]]:
    return [(d["reason"], d["field"]) for d in p.rejected()]


def watched(p: Pipeline, agency_id: str) -> dict[str, tuple[int, int]]:
    counts = p.counts(agency_id, parse_period("2026"), NOW)
    return {code: counts[code] for code in WATCHED}


def test_actions_touching_another_agency_are_dead_letters_and_its_scores_stay(
        province: Pipeline) -> None:
    """Every agency reference of a granted source's action is scoped, the existing subject's
    included: each attack is dead-lettered as agency_out_of_scope, H16's figures stay."""
    p = province
    attacks = [
        procedure("h15-igate", "2.000099", "H15", ["H16.1"]),       # implementing outside
        procedure("h15-igate", P16, "H15", ["H15.1"]),               # re-publish H16's
        act("h15-igate", "procedure_publicized", P16),
        act("h15-igate", "procedure_repealed", P16, {"decision_date": "2026-10-01"}),
        act("h15-igate", "rated", "H16.1-0001", {"satisfied": False}),  # a dossier of H16.1
        feedback("h15-igate", "F-1", "H15.1", "H16.1-0001"),          # about an H16 dossier
        agency("h15-igate", "H15.9", "H15", "department"),           # its parent is H16 now
    ]
    assert p.send(attacks) == {"rejected": 7, "rejected:agency_out_of_scope": 7}
    assert dead(p) == [("agency_out_of_scope", f) for f in (
        "data.implementing_agency_ids[0]", "procedure_id", "procedure_id", "procedure_id",
        "dossier_id", "data.dossier_id", "agency_id")]
    messages = [d["message"] for d in p.rejected()]
    assert messages[1] == ("procedure_id '2.000016', whose current authority_id is 'H16', is "
                           "outside the agencies of 'h15-igate' (H15).")
    # Held, then applied when its subject arrives: checked then too. A feedback's link to a
    # dossier that arrives later is refused when the dossier comes.
    assert p.send([act("h15-igate", "rated", "H16.1-0002", {"satisfied": False}),
                   feedback("h15-igate", "F-2", "H15.1", "H16.1-0003")]) == {"held": 1,
                                                                             "accepted": 1}
    p.send([received("h16-igate", "H16.1-0002", "H16.1", P16),
            received("h16-igate", "H16.1-0003", "H16.1", P16)])
    assert dead(p)[-1][0] == "agency_out_of_scope"
    history = p.engine.history("dossier", "H16.1-0003") or []
    assert [h["type"] for h in history] == ["Received"]  # no FeedbackLinked
    assert watched(p, "H16") == H16_BY_HAND
    assert watched(p, "H15")["PUBLISH_ON_TIME"] == (0, 0)


def test_in_scope_actions_of_a_granted_source_are_applied(province: Pipeline) -> None:
    """The same kinds of actions within H15 are accepted; H15's catalog counts P15 (decided
    Mon 2 Feb, in force 1 Mar: on time), H16's figures stay."""
    p = province
    assert p.send([agency("h15-igate", "H15.2", "H15", "department"),
                   procedure("h15-igate", P15, "H15", ["H15.1", "H15.2"], "2026-02-02",
                             "2026-03-01"),
                   received("h15-igate", "H15.1-0001", "H15.1", P15),
                   act("h15-igate", "rated", "H15.1-0001", {"satisfied": True}),
                   feedback("h15-igate", "F-3", "H15.1", "H15.1-0001")]) == {"accepted": 5}
    assert watched(p, "H15")["PUBLISH_ON_TIME"] == (1, 1)
    p.send([received("h16-igate", f"H16.1-000{i}", "H16.1", P16) for i in (2, 3)])
    assert dead(p) == [] and watched(p, "H16") == H16_BY_HAND


def test_a_source_without_grant_is_not_scoped_unless_grants_are_required(tmp_path: Path) -> None:
    """An ungranted source may send for any agency; with require_grants it is refused as
    source_not_registered while a granted source's in-scope action is applied."""
    db = tmp_path / "m.db"
    with Pipeline(db, clock=NOW) as p:
        assert p.send([received("anyone", "H16.1-0001", "H16.1", "1.000001")]) == {"accepted": 1}
    grant(db, "h15-igate", "H15")
    engine = engine_at(f"sqlite:///{db}", require_grants=True, record_uncatalogued=True)
    try:
        msgs = [received("anyone", "H16.1-0002", "H16.1", "1.000001"),
                received("h15-igate", "H15.1-0001", "H15.1", "1.000001")]
        counts = engine.process("strict", [Message("motcua.actions", 0, i, orjson.dumps(m))
                                           for i, m in enumerate(msgs)])
        assert {k: v for k, v in counts.items() if v} == {
            "rejected": 1, "rejected:source_not_registered": 1, "accepted": 1}
        letters = engine.store.dead_letters_after(0, 10)
        assert [(d["reason"], d["field"]) for d in letters] == [
            ("source_not_registered", "source")]
        assert "'anyone'" in letters[0]["message"]
    finally:
        engine.close()
