"""``motcua status``: per role and partition, the position, the lag, the owner and how long ago
the owner last committed, so an operator sees a stuck partition at once."""

from __future__ import annotations

import time
from typing import Any

from engine.app import Engine
from kernel import kafka as K
from kernel.errors import UserError
from kernel.kafka import LogIdentity
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC, KafkaSecurity
from projections.store import ViewStore

# How long ``status`` waits for the broker to answer before it says it does not.
REACH_S = 5.0


def _ends(bootstrap: str | None, security: KafkaSecurity | None,
          topic: str) -> dict[int, int] | None:
    if bootstrap is None:
        return None
    try:
        return K.end_offsets(bootstrap, topic, security)
    except (UserError, Exception):  # unreachable: show what the stores know
        return None


def _log_id(bootstrap: str | None, security: KafkaSecurity | None, topic: str) -> str | None:
    if bootstrap is None:
        return None
    ident = LogIdentity(bootstrap, security)
    try:
        return ident.of(topic)
    except Exception:
        return None
    finally:
        ident.close()


def status(engine: Engine, views: ViewStore, bootstrap: str | None,
           security: KafkaSecurity | None) -> dict[str, Any]:
    """The engine's and the projection's partitions as the stores (and the broker) see them.
    A broker that does not answer within ``REACH_S`` is said so, once, and not asked again
    (each question would wait its own timeout)."""
    now = time.time()
    unreachable = None
    if bootstrap is not None:
        try:
            K.wait_until_reachable(bootstrap, security, timeout=REACH_S)
        except UserError as e:
            unreachable = str(e)
    asked = None if unreachable else bootstrap
    base = _log_id(asked, security, ACTIONS_TOPIC)
    epoch = engine.store.get_position(f"epoch:{ACTIONS_TOPIC}")
    log_id = f"{base}#{epoch}" if base else None
    ends = _ends(asked, security, ACTIONS_TOPIC)
    owners = {o["part"]: o for o in engine.store.owners() if o["topic"] == ACTIONS_TOPIC}
    parts = sorted(set(owners) | set(ends or {}))
    engine_rows = []
    for p in parts:
        pos = engine.position(log_id, ACTIONS_TOPIC, p) if log_id else None
        end = (ends or {}).get(p)
        o = owners.get(p)
        engine_rows.append({
            "partition": p, "position": pos, "end": end,
            "lag": None if end is None else max(0, end - (pos + 1 if pos is not None else 0)),
            "owner": o["owner"] if o else None, "epoch": o["epoch"] if o else None,
            "last_commit_age_s": round(now - o["beat"], 1) if o else None,
        })
    events_log = _log_id(asked, security, EVENTS_TOPIC)
    ev_ends = _ends(asked, security, EVENTS_TOPIC)
    positions = views.positions()
    v_owners = {p: (owner, ep, beat) for p, owner, ep, beat in views.owners()}
    relayed = engine.store.positions_like("relay:events|")
    v_parts = sorted(set(v_owners) | set(ev_ends or {}) | {
        int(k[4:]) for k in positions if k.startswith("pos|")})
    projection_rows = []
    for p in v_parts:
        off = positions.get(f"off|{events_log}|{p}") if events_log else None
        end = (ev_ends or {}).get(p)
        vo = v_owners.get(p)
        applied = positions.get(f"pos|{p}", 0)
        projection_rows.append({
            "partition": p, "store_position": applied,
            "relayed_position": relayed.get(f"relay:events|{p}"),
            "offset": off, "end": end,
            "lag": None if end is None or off is None else max(0, end - off),
            "owner": vo[0] if vo else None, "epoch": vo[1] if vo else None,
            "last_commit_age_s": round(now - vo[2], 1) if vo else None,
        })
    return {
        "broker": bootstrap, "broker_unreachable": unreachable, "actions_log": log_id,
        "events_log": events_log,
        "store_position": engine.app.recorder.max_notification_id() or 0,
        "relay_position": engine.store.get_position("relay:events"),
        "held_actions": engine.store.held_count(),
        "engine": engine_rows, "projection": projection_rows,
    }


def format_status(s: dict[str, Any]) -> list[str]:
    def v(x: Any) -> str:
        return "-" if x is None else f"{x:,}" if isinstance(x, int) else str(x)

    broker = (f"{s['broker']}: {s['broker_unreachable']} Ends and lags are unknown."
              if s.get("broker_unreachable") else s["broker"]
              or "not reachable (embedded broker not running)")
    out = [f"broker {broker}",
           f"event store position {s['store_position']:,}; relayed up to "
           f"{s['relay_position']:,}; held actions {s['held_actions']:,}",
           "", "engine (motcua.actions)",
           f"  {'part':>4} {'position':>10} {'end':>10} {'lag':>8} {'commit age':>11}  owner"]
    for r in s["engine"]:
        out.append(f"  {r['partition']:>4} {v(r['position']):>10} {v(r['end']):>10} "
                   f"{v(r['lag']):>8} {v(r['last_commit_age_s']):>10}s  {v(r['owner'])}")
    out += ["", "projection (motcua.events)",
            f"  {'part':>4} {'applied':>10} {'relayed':>10} {'lag':>8} {'commit age':>11}  owner"]
    for r in s["projection"]:
        out.append(f"  {r['partition']:>4} {v(r['store_position']):>10} "
                   f"{v(r['relayed_position']):>10} {v(r['lag']):>8} "
                   f"{v(r['last_commit_age_s']):>10}s  {v(r['owner'])}")
    return out
