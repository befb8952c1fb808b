"""What a reader of ``motcua.events`` makes of a message (kernel/event_order.py ``turn``)."""

from __future__ import annotations

from kernel.event_order import AHEAD, NEXT, SEEN, turn


def test_a_message_at_or_below_the_applied_position_is_seen() -> None:
    """A redelivery, whatever it follows."""
    assert turn({"pos": 7, "follows": 3}, 7) == SEEN
    assert turn({"pos": 5, "follows": 9}, 7) == SEEN


def test_the_message_after_the_applied_one_is_next() -> None:
    """It follows exactly the applied event, or one before it (the applied position is a
    replay's, between two events of the partition), or it is a log's first."""
    assert turn({"pos": 9, "follows": 7}, 7) == NEXT
    assert turn({"pos": 9, "follows": 4}, 7) == NEXT
    assert turn({"pos": 9, "follows": 0}, 7) == NEXT


def test_a_message_whose_predecessor_was_not_applied_is_ahead() -> None:
    """An event between the applied one and this one never came: this one waits."""
    assert turn({"pos": 12, "follows": 9}, 7) == AHEAD
    assert turn({"pos": 12, "follows": 8}, 7) == AHEAD


def test_a_message_without_follows_is_next_if_new() -> None:
    """From a relay before ``follows``: only its position counts."""
    assert turn({"pos": 12}, 7) == NEXT
    assert turn({"pos": 6}, 7) == SEEN
