"""kernel.idle: a store reader's wait after an empty look (short while work came recently,
then doubling up to a cap; back to short once work is found)."""

from __future__ import annotations

import threading

import pytest

from kernel.idle import IdleWait


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_short_waits_while_work_came_within_the_grace() -> None:
    clock = Clock()
    idle = IdleWait(short=0.005, longest=0.1, grace=0.5, clock=clock)
    waits = []
    for _ in range(20):  # 20 empty looks spread over 0.4 s: still within the grace
        waits.append(idle.next())
        clock.t += 0.02
    assert waits == [0.005] * 20


def test_after_the_grace_each_empty_look_doubles_the_wait_up_to_the_cap() -> None:
    clock = Clock()
    idle = IdleWait(short=0.005, longest=0.1, grace=0.5, clock=clock)
    clock.t += 0.5
    waits = [idle.next() for _ in range(8)]
    assert waits == [0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1, 0.1]


def test_work_found_sets_the_wait_back_to_short_for_another_grace() -> None:
    clock = Clock()
    idle = IdleWait(short=0.005, longest=0.1, grace=0.5, clock=clock)
    clock.t += 10
    for _ in range(10):
        idle.next()
    assert idle.next() == 0.1
    idle.found()
    assert idle.next() == 0.005
    clock.t += 0.49
    assert idle.next() == 0.005
    clock.t += 0.02  # the grace is over: the doubling starts again from short
    assert [idle.next() for _ in range(3)] == [0.005, 0.01, 0.02]


@pytest.mark.parametrize(("short", "longest"), [(0.0, 0.1), (0.2, 0.1), (-1.0, 1.0)])
def test_a_wait_that_cannot_work_is_refused(short: float, longest: float) -> None:
    with pytest.raises(ValueError, match="0 < short <= longest"):
        IdleWait(short=short, longest=longest)


def test_after_a_look_a_loop_goes_on_or_waits_as_long_as_next_says() -> None:
    clock = Clock()
    idle = IdleWait(short=0.005, longest=0.1, grace=0.5, clock=clock)
    clock.t += 10
    waited: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waited.append(timeout or 0.0)
            return False

    stop = Stop()
    idle.after(False, stop)
    idle.after(False, stop)
    idle.after(True, stop)  # work found: no wait, and short again
    idle.after(False, stop)
    assert waited == [0.005, 0.01, 0.005]
