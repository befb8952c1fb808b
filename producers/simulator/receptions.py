"""When dossiers arrive and by which channel: busy working days, a trickle online on days off."""

from __future__ import annotations

from collections.abc import Iterator

from producers.simulator.clock import DAY, HOUR, MINUTE, OFFICE_OPENS
from producers.simulator.province import Province

_WORKING_DAY_WEIGHT = 100  # so that SimConfig.off_day_reception_percent is a percentage
_ONLINE_HOURS = (6 * HOUR, 23 * HOUR)
_AFTERNOON_OPENS = 13 * HOUR + 30 * MINUTE
_SESSION = 4 * HOUR - 30 * MINUTE  # receptions stop half an hour before a session ends


def receptions(province: Province) -> Iterator[tuple[int, str]]:
    """(reception time, channel) of every dossier, in time order."""
    cfg, rng, between = province.cfg, province.rng, province.between
    first = cfg.start.toordinal()
    working = [province.working.is_working(first + i) for i in range(cfg.days)]
    off_day = cfg.off_day_reception_percent
    weight = [_WORKING_DAY_WEIGHT if w else off_day for w in working]
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
                times.append((base + between(*_ONLINE_HOURS), "online"))
            else:
                morning = rng.random() < cfg.morning_reception_rate
                opens = OFFICE_OPENS if morning else _AFTERNOON_OPENS
                channel = "postal" if rng.random() < cfg.postal_rate else "direct"
                times.append((base + opens + between(0, _SESSION), channel))
        times.sort()
        yield from times
