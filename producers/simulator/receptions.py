"""When dossiers arrive and by which channel: busy working days, a trickle online on days off."""

from __future__ import annotations

from collections.abc import Iterator

from producers.simulator.clock import DAY, HOUR, MINUTE
from producers.simulator.province import Province


def receptions(province: Province) -> Iterator[tuple[int, str]]:
    """(reception time, channel) of every dossier, in time order."""
    cfg, rng, between = province.cfg, province.rng, province.between
    first = cfg.start.toordinal()
    working = [province.working.is_working(first + i) for i in range(cfg.days)]
    weight = [100 if w else 8 for w in working]
    total = sum(weight)
    off_share = sum(w for w, ok in zip(weight, working, strict=True) if not ok) / total
    online_on_working = min(1.0, max(0.0, (cfg.online_rate - off_share) / (1 - off_share)))
    cumulative = 0
    done = 0
    for i in range(cfg.days):
        cumulative += weight[i]
        upto = cfg.dossiers * cumulative // total
        count, done = upto - done, upto
        base = (first + i) * DAY
        times = []
        for _ in range(count):
            if not working[i] or rng.random() < online_on_working:
                times.append((base + between(6 * HOUR, 23 * HOUR), "online"))
            else:
                morning = rng.random() < 0.55
                lo = 7 * HOUR + 30 * MINUTE if morning else 13 * HOUR + 30 * MINUTE
                channel = "postal" if rng.random() < 0.1 else "direct"
                times.append((base + lo + between(0, 4 * HOUR - 30 * MINUTE), channel))
        times.sort()
        yield from times
