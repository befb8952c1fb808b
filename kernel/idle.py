"""How long a loop that polls the event store waits when it found nothing new.

The relay and, in ``motcua up`` and ``motcua demo``, the projection and the alerting role read
what the engine committed by looking at the store again and again. A short wait keeps the time
from a commit to its pick-up short while actions come; kept up all day it costs an idle
``motcua up`` about a tenth of a core in empty looks (measured: docs/decisions.md, "Store
readers slow down when nothing comes"). So a loop waits ``short`` while something came within
the last ``grace`` seconds, then each empty look doubles the wait up to ``longest``; anything
found sets it back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SHORT_S = 0.005
LONGEST_S = 0.1
GRACE_S = 0.5


class IdleWait:
    """The wait after an empty look; ``found()`` after a look that found work."""

    def __init__(self, short: float = SHORT_S, longest: float = LONGEST_S,
                 grace: float = GRACE_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < short <= longest:
            raise ValueError(f"IdleWait needs 0 < short <= longest, got {short}, {longest}.")
        self.short, self.longest, self.grace = short, longest, grace
        self.clock = clock
        self._last = clock()
        self._wait = short

    def found(self) -> None:
        """A look found work: the next empty look waits ``short`` again."""
        self._last = self.clock()
        self._wait = self.short

    def next(self) -> float:
        """The seconds to wait after an empty look."""
        if self.clock() - self._last < self.grace:
            return self.short
        wait = self._wait
        self._wait = min(self._wait * 2, self.longest)
        return wait

    def after(self, found: bool, stop: threading.Event) -> None:
        """What a loop does after a look: on with the next one if it ``found`` work, else wait
        (cut short by ``stop``) as long as ``next()`` says."""
        if found:
            self.found()
        else:
            stop.wait(self.next())
