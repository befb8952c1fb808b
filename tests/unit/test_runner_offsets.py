"""The engine loop's guard against a fetch that hands the same records twice."""

from __future__ import annotations

from engine.app import Message
from engine.runner import _each_offset_once


def batch(*offsets: int) -> list[Message]:
    return [Message("motcua.actions", 0, off, b"{}") for off in offsets]


def test_records_handed_twice_in_one_fetch_are_kept_once_in_order() -> None:
    """299–301 followed by 299–302 again (tansu after a restart): each offset once."""
    got = _each_offset_once(batch(299, 300, 301, 299, 300, 301, 302), 0)
    assert [m.offset for m in got] == [299, 300, 301, 302]


def test_records_below_the_next_expected_offset_are_dropped() -> None:
    """A redelivery of what was recorded (up to 300) keeps only what comes after it."""
    got = _each_offset_once(batch(298, 299, 300, 301, 303), 301)
    assert [m.offset for m in got] == [301, 303]


# ----- a poll's partitions recorded in turns ----------------------------------------------------


def test_a_polls_partitions_take_turns_each_in_its_own_order() -> None:
    """Partition 2's five records, partition 0's three: turns of two, partition 0 first in
    each round, nothing lost, each partition's records in their order."""
    from kafka import TopicPartition

    from engine.runner import in_turns

    polled = {TopicPartition("motcua.actions", 2): ["c0", "c1", "c2", "c3", "c4"],
              TopicPartition("motcua.actions", 0): ["a0", "a1", "a2"]}
    assert list(in_turns(polled, 2)) == [(0, ["a0", "a1"]), (2, ["c0", "c1"]),
                                         (0, ["a2"]), (2, ["c2", "c3"]), (2, ["c4"])]
    assert list(in_turns({}, 2)) == []
