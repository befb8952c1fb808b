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
