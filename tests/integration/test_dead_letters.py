"""Nothing lost: every refused action lands on ``motcua.rejected`` with its original bytes, its
source offset and a machine-readable reason (README, "How it works"; docs/reasons.md,
docs/lifecycle.md), through the real broker and the engine's relay."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from faults import EngineThread, Probe, Wall, consume, publish_each, wait_for

from kernel.broker import BundledBroker
from kernel.metrics import render
from kernel.settings import ACTIONS_TOPIC, REJECTED_TOPIC

AT = "2026-10-05T08:00:00+07:00"
RECEIVED = {"schema": "motcua.action/1", "action_id": "r1", "source": "igate", "type": "received",
            "occurred_at": AT, "dossier_id": "D1",
            "data": {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online",
                     "due_at": "2026-10-12T17:00:00+07:00"}}


def line(**over: object) -> bytes:
    return orjson.dumps({**RECEIVED, **over})


def test_every_refused_action_reaches_motcua_rejected_with_its_bytes_offset_and_reason(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """Schema failures of each kind, a conflicting repeat, a lifecycle break and a hold that
    expires: each is one record on ``motcua.rejected`` whose value is the bytes sent, whose
    headers name the source topic, partition and offset, the reason, the field and a sentence;
    the accepted action and the exact repeat are not there."""
    cases: list[tuple[bytes, str | None, str]] = [
        (b"this is not json", "malformed_json", ""),
        (b"[1, 2, 3]", "not_an_object", ""),
        (line(action_id="s1", schema="motcua.action/0"), "unsupported_schema", "schema"),
        (line(action_id="s2", type="stamped"), "unknown_type", "type"),
        (line(action_id="s3", occurred_at=None), "invalid_field", "occurred_at"),
        (line(action_id="s4", occurred_at="2026-10-05 08:00"), "invalid_time", "occurred_at"),
        # A key given twice (the decoder keeps the last value: this would be a second
        # `received`, refused as already_received, if it were not refused first).
        (line(action_id="s5").replace(b'"type":"received"', b'"type":"synced","type":"received"'),
         "malformed_json", ""),
        (orjson.dumps({k: v for k, v in RECEIVED.items() if k != "source"}), "missing_field",
         "source"),
        (line(), None, ""),  # accepted
        (line(), None, ""),  # an exact repeat: a duplicate, not a dead letter
        (line(occurred_at="2026-10-05T09:00:00+07:00"), "conflicting_duplicate", "action_id"),
        (line(action_id="r2"), "already_received", ""),
        (line(action_id="o1", type="synced", dossier_id="NEVER", data={}), "unknown_dossier", ""),
    ]
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    probe = Probe(url)
    wall = Wall()
    with EngineThread(url, fresh_broker.bootstrap, hold_seconds=600, wall=wall):
        where = publish_each(fresh_broker.bootstrap, [raw for raw, _, _ in cases])
        wait_for(lambda: probe.intake() == len(cases), "the engine to take every message")
        assert probe.outcomes()[("held", None)] == 1
        wall.ahead = 601  # the orphan's hold is over
        refused = [c for c in cases if c[1] is not None]
        dead = consume(fresh_broker.bootstrap, REJECTED_TOPIC, len(refused))
    assert Counter(r for _, r, _ in refused) == Counter(
        dict(r.headers)["reason"].decode() for r in dead)
    want = {pos: (raw, reason, field) for pos, (raw, reason, field) in zip(where, cases,
                                                                           strict=True)
            if reason is not None}
    for r in dead:
        h = {k: v.decode() for k, v in r.headers}
        assert h["source_topic"] == ACTIONS_TOPIC
        raw, reason, field = want.pop((int(h["source_partition"]), int(h["source_offset"])))
        assert (r.value, h["reason"], h["field"]) == (raw, reason, field)
        assert h["message"].endswith("."), h["message"]
    assert not want, f"refused actions missing from {REJECTED_TOPIC}: {want}"
    assert probe.outcomes() == Counter({("accepted", None): 1, ("duplicate", None): 1,
                                        **Counter(("rejected", r) for _, r, _ in refused)})
    # What an operator watches (docs/scaling.md): the engine's Prometheus metrics moved.
    metrics = render().decode()
    for name in ('motcua_actions_total{outcome="accepted"}', "motcua_engine_batch_seconds_count",
                 'motcua_rejected_actions_total{reason="malformed_json"}',
                 'motcua_rejected_actions_total{reason="unknown_dossier"}',
                 "motcua_engine_position{partition="):
        assert name in metrics, name
