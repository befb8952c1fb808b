"""Exactly once after a new broker log, and nothing committed to Kafka.

The engine names the log it reads by cluster id, topic id and an epoch of its own (README, "How
it works"; docs/decisions.md, "A new broker log"). A restart of the bundled broker changes the
cluster id and the topic id at once (``test_exactly_once.py``); here each other way a log can be
new is checked on its own, with the engine role running in this process on a broker of the
test's own:

- the same cluster, the actions topic deleted and created again (a new topic id);
- the same cluster and topic ids, but a stored position past the partition's end (a log that lost
  its tail: what an unclean leader election does on Kafka), and its opposite, an engine started
  again at its log's end, which is no new log although tansu lists the end short of it;

and, with both roles in consumer groups as ``motcua engine`` / ``motcua project`` run them, that
the broker holds no committed offset of either group afterwards.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import make_settings
from faults import (
    EngineThread,
    Probe,
    Recorded,
    lines_of,
    publish_lines,
    recorded,
    recorded_by,
    reference_engine,
    simulate,
    wait_for,
)

from engine.app import Message
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.kafka import ensure_all_topics
from kernel.settings import ACTIONS_TOPIC
from motcua.pipeline import Pipeline, engine_at


def reference(tmp_path: Path, lines: list[bytes]) -> Recorded:
    engine = reference_engine(tmp_path / "reference.db", lines)
    try:
        return recorded_by(engine)
    finally:
        engine.close()


def assert_recorded_once(url: str, ref: Recorded) -> None:
    """One event per (action, subject), and the reference's events and final facts."""
    got = recorded(url)
    assert not [k for k, n in got.causes.items() if n != 1], "an action was recorded twice"
    assert got.actions() == ref.actions()
    assert got.shape() == ref.shape()


def settled(probe: Probe, log: str, n: int) -> bool:
    return probe.intake(log) == n and ("held", None) not in probe.outcomes()


def province(tmp_path: Path, share: int,
             ) -> tuple[list[bytes], list[bytes], list[bytes], str, Probe]:
    """A simulated province's lines, split after their first ``1/share``, and a store for
    them: (lines, head, tail, the store's URL, a probe on it)."""
    lines = lines_of(simulate(2, 150))
    k = len(lines) // share
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    return lines, lines[:k], lines[k:], url, Probe(url)


def record_head(broker: BundledBroker, tmp_path: Path,
                ) -> tuple[list[bytes], list[bytes], str, Probe, str]:
    """A province's first half recorded by an engine that then stopped: the province's lines,
    the half not sent yet, the store's URL, a probe on it and the log's name."""
    lines, head, tail, url, probe = province(tmp_path, 2)
    with EngineThread(url, broker.bootstrap, record_uncatalogued=False) as e:
        publish_lines(broker.bootstrap, head)
        wait_for(lambda: settled(probe, e.loop.log_id, len(head)), "the engine to record the head")
        log = e.loop.log_id
    return lines, tail, url, probe, log


def test_a_recreated_actions_topic_is_a_new_log_read_from_its_beginning(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """The actions topic is deleted and created again on the same cluster, and new actions are
    sent to it: the engine sees a new topic id, reads the new log from offset 0 and records
    every action once (resuming at the old log's positions would skip the new ones).

    The new actions are sent at once, while the engine may still take the topic for the old
    log: it asks for the log's identity after every poll that returned records, so none is
    recorded under the old log's name (docs/decisions.md, "A new broker log"; with the check
    every 2 s only, some were)."""
    lines, old, new, url, probe = province(tmp_path, 3)
    with EngineThread(url, fresh_broker.bootstrap, record_uncatalogued=False) as e:
        publish_lines(fresh_broker.bootstrap, old)
        wait_for(lambda: probe.intake() == len(old), "the engine to record the first log")
        [first] = probe.logs()
        assert e.loop.log_id == first
        old_ends = K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC)
        with K.admin_client(fresh_broker.bootstrap) as admin:
            admin.delete_topics([ACTIONS_TOPIC])
        ensure_all_topics(fresh_broker.bootstrap, None, 3)
        publish_lines(fresh_broker.bootstrap, new)
        new_ends = K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC)
        assert all(new_ends[p] >= end for p, end in old_ends.items()), (old_ends, new_ends)
        wait_for(lambda: len(probe.logs()) == 2 and settled(probe, probe.logs()[1], len(new)),
                 "the engine to record every offset of the new log")
    second = probe.logs()[1]
    cluster, _, topic = first.partition("#")[0].partition("/")
    assert second.startswith(f"{cluster}/") and topic not in second, (first, second)
    assert probe.outcomes(second) == Counter({("accepted", None): len(new)})
    assert probe.outcomes() == Counter({("accepted", None): len(lines)})
    assert probe.repeated_offsets() == 0
    assert_recorded_once(url, reference(tmp_path, lines))


def test_an_engine_started_again_at_its_log_s_end_keeps_the_log_and_its_epoch(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """An engine that recorded a whole log and starts again resumes at the log's end, under
    the same name and epoch: nothing is read twice. tansu lists a partition's end short of
    the true end (the last batch's base offset + 1), so a start past the listed end must be
    checked against the exact end before it is taken for a log that lost its tail
    (``EngineLoop._past_end``); this log's listed ends are short, so that check is what
    keeps the epoch here."""
    lines, tail, url, probe, log = record_head(fresh_broker, tmp_path)
    listed = K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC, exact=False)
    ends = K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC)
    assert any(listed[p] < end for p, end in ends.items()), (listed, ends)
    with EngineThread(url, fresh_broker.bootstrap, record_uncatalogued=False) as e:
        # Resumed (positions taken) before the tail moves the listed ends on.
        wait_for(e.loop.ready.is_set, "the engine to resume")
        publish_lines(fresh_broker.bootstrap, tail)
        wait_for(lambda: settled(probe, log, len(lines)), "the engine to record the tail")
        assert e.loop.log_id == log
    assert log.endswith("#0")
    assert probe.positions("epoch:") in ({}, {f"epoch:{ACTIONS_TOPIC}": 0})
    assert probe.outcomes() == Counter({("accepted", None): len(lines)})
    assert probe.repeated_offsets() == 0
    assert_recorded_once(url, reference(tmp_path, lines))


def test_a_stored_position_past_the_end_starts_a_new_epoch_read_from_its_beginning(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """The store recorded offsets the broker no longer has (same cluster and topic ids, a log
    shorter than the stored position): the engine bumps the log's epoch, reads every partition
    from offset 0, and the (source, action_id) keys absorb every repeat."""
    lines, tail, url, probe, log = record_head(fresh_broker, tmp_path)
    assert log.endswith("#0")
    # The tail was on partition 0 and recorded, then the broker lost it.
    end = K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC)[0]
    lost = engine_at(url, hold_seconds=600)
    try:
        counts = lost.process(log, [Message(ACTIONS_TOPIC, 0, end + i, line)
                                    for i, line in enumerate(tail)])
        assert counts.get("accepted") == len(tail)
    finally:
        lost.close()
    # The source sends the tail again; partition 0 now ends before the stored position.
    publish_lines(fresh_broker.bootstrap, tail)
    assert K.end_offsets(fresh_broker.bootstrap, ACTIONS_TOPIC)[0] < end + len(tail)
    with EngineThread(url, fresh_broker.bootstrap, record_uncatalogued=False) as e:
        renewed = log.removesuffix("#0") + "#1"
        wait_for(lambda: settled(probe, renewed, len(lines)),
                 "the engine to read the whole log again under a new epoch")
        assert e.loop.log_id == renewed
    assert probe.positions("epoch:") == {f"epoch:{ACTIONS_TOPIC}": 1}
    assert probe.outcomes(renewed) == Counter({("duplicate", None): len(lines)})
    assert probe.outcomes() == Counter({("accepted", None): len(lines),
                                        ("duplicate", None): len(lines)})
    assert_recorded_once(url, reference(tmp_path, lines))


def test_nothing_is_committed_to_kafka(fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """Engine and projection in consumer groups (as ``motcua engine`` / ``motcua project``)
    record and fold a stream and stop: the broker holds no committed offset for either group;
    positions live only in the stores."""
    lines = lines_of(simulate(2, 100))
    settings = make_settings(tmp_path / "home", f"sqlite:///{tmp_path / 'motcua.db'}",
                             fresh_broker.bootstrap, MOTCUA_CONSUMER_GROUP="nocommit",
                             MOTCUA_SESSION_TIMEOUT_MS="3000", MOTCUA_HOLD_SECONDS="600")
    probe = Probe(settings.database_url)
    publish_lines(fresh_broker.bootstrap, lines)
    with Pipeline(settings, group=True):
        wait_for(lambda: probe.intake() == len(lines) and probe.projection_caught_up(),
                 "both roles to record and fold the stream")
    with K.admin_client(fresh_broker.bootstrap) as admin:
        for group in ("nocommit-engine", "nocommit-projection"):
            assert admin.list_group_offsets(group) == {group: {}}, group
