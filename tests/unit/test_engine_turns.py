"""The engine loop records the records it fetched in turns, the partitions in step: a dossier
whose procedure comes on another partition waits only until that partition's turn, a partition
with nothing in hand holds the others back until its records come, and a partition just taken
starts with a small turn (the catalog at its head first). And its timers run as soon as a poll
finds nothing more after something was recorded.

A real engine on SQLite; the records are given as the consumer would hand them (no broker: what
is tested is how the loop splits them and when it ticks, not fetching)."""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from kafka import TopicPartition

from engine.app import Message
from engine.in_hand import InHand
from engine.runner import EngineLoop
from kernel.metrics import REGISTRY
from motcua.pipeline import engine_at

Record = namedtuple("Record", "offset value headers")
AT = "2026-10-05T08:00:00+07:00"


def _procedure() -> bytes:
    return orjson.dumps({
        "schema": "motcua.action/1", "action_id": "p-1", "source": "t",
        "type": "procedure_published", "occurred_at": "2026-01-05T08:00:00+07:00",
        "procedure_id": "P1", "data": {
            "authority_id": "H15", "authority_level": "province",
            "decision_date": "2026-01-01", "legal_basis_effective_date": "2026-01-01",
            "implementing_agency_ids": ["A1"],
            "processing_time": {"value": 5, "unit": "working_days"}}})


def _dossier(i: int) -> list[bytes]:
    base = {"schema": "motcua.action/1", "source": "t", "dossier_id": f"D{i}"}
    return [orjson.dumps({**base, "action_id": f"r-{i}", "type": "received", "occurred_at": AT,
                          "data": {"agency_id": "A1", "procedure_id": "P1", "channel": "online"}}),
            orjson.dumps({**base, "action_id": f"d-{i}", "type": "synced",
                          "occurred_at": AT})]


def _poll(dossiers: int, filler: int) -> dict[TopicPartition, list[Record]]:
    """Partition 0: ``dossiers`` dossiers (two actions each); partition 1: the procedure after
    ``filler`` actions of an unrelated dossier set (so its turn comes with its first records)."""
    p0 = [v for i in range(dossiers) for v in _dossier(i)]
    p1 = [_procedure(), *[v for i in range(1000, 1000 + filler) for v in _dossier(i)]]
    return {TopicPartition("motcua.actions", 0): [Record(o, v, []) for o, v in enumerate(p0)],
            TopicPartition("motcua.actions", 1): [Record(o, v, []) for o, v in enumerate(p1)]}


def _held_total() -> float:
    return REGISTRY.get_sample_value("motcua_actions_total", {"outcome": "held"}) or 0.0


def test_turns_hold_only_the_first_turns_dossiers_and_record_every_action(
        tmp_path: Path) -> None:
    """Ten dossiers on partition 0 (20 actions), their procedure first on partition 1: in
    turns of 4 records, only partition 0's first turn (two dossiers: 4 actions) waits for the
    procedure; all 20 + 1 + 2 actions end up recorded, none twice."""
    engine, loop = _loop_on_two_partitions(tmp_path, max_records=4)
    try:
        before = _held_total()
        loop._record(_poll(10, 1))
        assert _held_total() - before == 4  # what the loop counts on motcua_actions_total
        assert loop.next_offset == {0: 20, 1: 3}
        # 1 procedure + 11 dossiers × (received, synced): each recorded once
        assert _recorded_events(engine) == 1 + 11 * 2
    finally:
        engine.close()


def _loop_on_two_partitions(tmp_path: Path, max_records: int) -> tuple[Any, EngineLoop]:
    """An engine (holds waiting an hour; no dossier recorded without its procedure) and its
    loop owning partitions 0 and 1, with no broker to ask and no timer due."""
    engine = engine_at(f"sqlite:///{tmp_path}/s.db", record_uncatalogued=False,
                       hold_seconds=3600.0)
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=max_records, timer_every=1e9)
    loop.log_id = "L#0"
    loop.epochs = {0: engine.store.claim("motcua.actions", 0, loop.owner),
                   1: engine.store.claim("motcua.actions", 1, loop.owner)}
    loop.ready.set()
    loop._last_identity = time.monotonic() + 1e9  # no broker to ask
    return engine, loop


def _recorded_events(engine: Any) -> int:
    with engine.store.datastore.transaction(commit=False) as c:
        c.execute("SELECT count(*) FROM stored_events")
        return int(c.fetchone()[0])


def test_a_partition_just_taken_starts_with_a_small_turn_so_the_catalog_at_its_head_comes_first(
        tmp_path: Path) -> None:
    """Ten dossiers on partition 0, their procedure at the head of partition 1 (then nine more
    dossiers), both partitions just taken, batches of 20: each starts with a turn of 2 (a
    tenth of a batch), so only partition 0's first dossier (its 2 actions) waits for the
    procedure, where a first turn of 20 would hold all of partition 0's first 20 actions; every
    action is recorded once."""
    engine, loop = _loop_on_two_partitions(tmp_path, max_records=20)
    try:
        loop.hand.fresh = {0, 1}  # as take() leaves them
        before = _held_total()
        loop._record(_poll(10, 9))
        assert _held_total() - before == 2
        assert loop.next_offset == {0: 20, 1: 19}
        assert _recorded_events(engine) == 1 + 19 * 2
    finally:
        engine.close()


def _records(first: int, last: int) -> list[Record]:
    return [Record(o, b"{}", []) for o in range(first, last + 1)]


def _offsets(turns: list[tuple[int, list[Any]]]) -> list[tuple[int, list[int]]]:
    return [(p, [r.offset for r in records]) for p, records in turns]


def test_a_partition_with_nothing_in_hand_holds_the_others_back_until_its_records_come() -> None:
    """Three partitions behind their end, 20 records of partitions 0 and 1 in hand, 2 of
    partition 2, turns of 4: the first round takes 4, 4 and 2; then partitions 0 and 1 may go
    only 4 past where partition 2 can get (2): 2 more each, and no more while partition 2 has
    nothing in hand. After a poll that came back empty one round goes as it comes; partition 2
    at its end holds nothing back, and the others' records are taken to the last."""
    hand = InHand(4)
    at_end: set[int] = set()

    def behind(p: int) -> bool:
        return p not in at_end

    hand.add(0, _records(0, 19))
    hand.add(1, _records(0, 19))
    hand.add(2, _records(0, 1))
    owned = [0, 1, 2]
    assert _offsets(hand.turns(owned, behind)) == [
        (0, [0, 1, 2, 3]), (1, [0, 1, 2, 3]), (2, [0, 1]), (0, [4, 5]), (1, [4, 5])]
    assert hand.turns(owned, behind) == []
    assert _offsets(hand.turns(owned, behind, in_step=False)) == [
        (0, [6, 7, 8, 9]), (1, [6, 7, 8, 9])]
    assert hand.turns(owned, behind) == []
    at_end.add(2)  # its two records were its last
    assert _offsets(hand.turns(owned, behind)) == [
        (0, [10, 11, 12, 13]), (1, [10, 11, 12, 13]), (0, [14, 15, 16, 17]),
        (1, [14, 15, 16, 17]), (0, [18, 19]), (1, [18, 19])]
    assert hand.count() == 0


def test_a_partition_stopped_mid_poll_forgets_its_records_in_hand(tmp_path: Path) -> None:
    """A turn that ends its partition's run (sought back to its stored position, revoked,
    fenced) leaves that partition's later turns and records in hand unrecorded: the consumer
    reads them again from where the store says, so none is skipped or recorded twice; and
    its place among the partitions in step is where it will be read from again."""
    engine = engine_at(f"sqlite:///{tmp_path}/s.db")
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=2)
    done: list[tuple[int, int]] = []

    def process(partition: int, msgs: list[Message], *_: Any, **__: Any) -> bool:
        done.append((partition, msgs[0].offset))
        if partition == 0 and msgs[0].offset == 2:
            loop.next_offset[0] = 2  # sought back to its stored position, as a redo does
            return False
        return True

    loop._process = process  # type: ignore[method-assign]
    loop._last_identity = loop._last_timer = time.monotonic() + 1e9  # nothing else due
    try:
        loop.epochs = {0: 1, 1: 1}
        loop.ready.set()
        loop._record({TopicPartition("motcua.actions", 0): _records(0, 7),
                      TopicPartition("motcua.actions", 1): _records(0, 7)})
        assert done == [(0, 0), (1, 0), (0, 2), (1, 2), (1, 4), (1, 6)]
        assert 0 not in loop.hand.fetched
        # and it counts as taken as far as it will be read again from, not as far as it got
        assert (loop.hand.progress(0), loop.hand.progress(1)) == (2, 8)
    finally:
        engine.close()


class _Member:
    """A group member as the loop asks it between turns (``K.rejoin_asked``: the group id
    and kafka-python's coordinator flag, held to the library by
    ``integration/test_kafka_group.py``) and as the timers do (no end known)."""

    def __init__(self) -> None:
        self.config = {"group_id": "g"}
        self._coordinator = SimpleNamespace(rejoin_needed=False)

    def highwater(self, _tp: Any) -> None:
        return None


def test_a_rebalance_stops_the_turns_and_the_rest_waits_in_hand_for_after_the_poll(
    tmp_path: Path,
) -> None:
    """A group member told that its group rebalances (a member came or went) stops after the
    turn it is in, since no partition moves until it polls again: the turns not recorded go
    back in hand, in order. If its partitions are still its own after the poll (a rebalance
    that gives them out again has them taken afresh from their stored positions instead),
    they are recorded from there — each record once, the partitions still in step."""
    engine = engine_at(f"sqlite:///{tmp_path}/r.db")
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=2, group="g")
    member = _Member()
    done: list[tuple[int, int]] = []

    def process(partition: int, msgs: list[Message], *_: Any, **__: Any) -> bool:
        if not done:  # heard of while the first turn ran
            member._coordinator.rejoin_needed = True
        done.extend((partition, m.offset) for m in msgs)
        return True

    loop._process = process  # type: ignore[method-assign]
    loop._last_identity = loop._last_timer = time.monotonic() + 1e9  # nothing else due
    try:
        loop.consumer = member
        loop.epochs = {0: 1, 1: 1}
        loop.ready.set()
        loop._record({TopicPartition("motcua.actions", 0): _records(0, 7),
                      TopicPartition("motcua.actions", 1): _records(0, 7)})
        assert done == [(0, 0), (0, 1)]
        assert [r.offset for r in loop.hand.fetched[0]] == [2, 3, 4, 5, 6, 7]
        assert [r.offset for r in loop.hand.fetched[1]] == list(range(8))
        assert (loop.hand.progress(0), loop.hand.progress(1)) == (2, 0)

        member._coordinator.rejoin_needed = False  # rejoined by the next poll
        loop._record({})
        assert len(done) == 16 and loop.hand.count() == 0
        for p in (0, 1):
            assert [o for q, o in done if q == p] == list(range(8))
        assert done[2:6] == [(0, 2), (0, 3), (1, 0), (1, 1)]  # a round, in step again
    finally:
        engine.close()


def test_a_member_with_a_batch_in_hand_everywhere_still_polls_to_rejoin(tmp_path: Path) -> None:
    """With a batch in hand on every partition the loop does not poll (its records would wait
    in the consumer), unless its group rebalances: then it polls, every partition paused, so
    that the member rejoins."""
    engine = engine_at(f"sqlite:///{tmp_path}/p.db")
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=2, group="g")
    polls: list[int] = []
    member = _Member()
    tps = {TopicPartition("motcua.actions", 0), TopicPartition("motcua.actions", 1)}
    paused: set[Any] = set()
    member.assignment = lambda: tps  # type: ignore[attr-defined]
    member.pause = lambda *t: paused.update(t)  # type: ignore[attr-defined]
    member.resume = lambda *t: paused.difference_update(t)  # type: ignore[attr-defined]

    def poll(**kw: Any) -> dict[Any, Any]:
        polls.append(kw["timeout_ms"])
        return {}

    member.poll = poll  # type: ignore[attr-defined]
    try:
        loop.consumer = member
        loop.epochs = {0: 1, 1: 1}
        loop.hand.add(0, _records(0, 3))
        loop.hand.add(1, _records(0, 3))
        assert loop._poll() == {} and polls == []
        member._coordinator.rejoin_needed = True
        assert loop._poll() == {} and len(polls) == 1 and paused == tps
    finally:
        engine.close()


class _NoEnds:
    """The one consumer call the timers make (``highwater``): no end known yet, so no held
    action is taken for missing (``EngineLoop._caught_up``)."""

    def highwater(self, _tp: Any) -> None:
        return None


def _overdue(engine: Any) -> int:
    with engine.store.datastore.transaction(commit=False) as c:
        c.execute("SELECT count(*) FROM stored_events WHERE topic LIKE '%BecameOverdue'")
        return int(c.fetchone()[0])


def test_the_timers_run_once_a_poll_finds_nothing_more_after_records(tmp_path: Path) -> None:
    """Three dossiers received on 5 Oct with 5 working days are overdue by now (12 Oct 17:00
    passed). The periodic round is not due (``timer_every`` an hour away): their overdue facts
    are recorded by the tick of the first empty poll after the records, not before it, and
    an empty poll with nothing recorded since runs no round."""
    engine = engine_at(f"sqlite:///{tmp_path}/s.db", hold_seconds=3600.0)
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=4, timer_every=3600.0)
    rounds: list[int] = []
    timers = loop._timers

    def counted_timers() -> None:
        rounds.append(1)
        timers()

    loop._timers = counted_timers  # type: ignore[method-assign]
    try:
        loop.log_id = "L#0"
        loop.epochs = {0: engine.store.claim("motcua.actions", 0, loop.owner),
                       1: engine.store.claim("motcua.actions", 1, loop.owner)}
        loop.consumer = _NoEnds()
        loop.ready.set()
        loop._last_identity = loop._last_timer = time.monotonic()  # neither is due
        loop._record(_poll(3, 0))
        loop._tick(caught_up=False)  # a poll that brought records: the backlog goes on
        assert (rounds, _overdue(engine)) == ([], 0)
        loop._tick(caught_up=True)
        assert (rounds, _overdue(engine)) == ([1], 3)
        loop._tick(caught_up=True)  # nothing recorded since
        assert (rounds, _overdue(engine)) == ([1], 3)
    finally:
        loop.consumer = None
        engine.close()


class _Ends:
    """The consumer's last reported ends, by partition (missing: none reported yet)."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends

    def highwater(self, tp: Any) -> int | None:
        return self.ends.get(tp.partition)


def test_caught_up_means_every_owned_partition_read_to_a_reported_end(tmp_path: Path) -> None:
    """Held actions may be taken for missing only then: an end not reported yet, or a
    position short of it, on any owned partition, is not caught up; a partition not owned
    does not count."""
    engine = engine_at(f"sqlite:///{tmp_path}/c.db")
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=2)
    try:
        loop.epochs = {0: 1, 1: 1}
        loop.next_offset = {0: 5, 1: 7}
        cases = [({0: 5}, False),  # partition 1's end not known yet
                 ({0: 5, 1: 8}, False),  # partition 1 one record short
                 ({0: 5, 1: 7}, True),
                 ({0: 4, 1: 7, 2: 100}, True)]  # partition 2 is not this engine's
        for ends, expected in cases:
            loop.consumer = _Ends(ends)
            assert loop._caught_up() is expected, ends
        loop.next_offset = {}
        loop.consumer = _Ends({0: 0, 1: 0})
        assert loop._caught_up() is True  # empty partitions, nothing read: at their ends
    finally:
        engine.close()
