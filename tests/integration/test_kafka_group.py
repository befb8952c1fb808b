"""What a consumer-group member knows of its group between polls, against the bundled broker.

``kernel.kafka.rejoin_asked`` reads kafka-python's coordinator (no public word for it): a
member whose group started to rebalance hears it from its heartbeat thread, without polling,
and must poll to rejoin; the engine loop stops its turns then (``EngineLoop._record``), since no
partition moves before every member has rejoined. If an upgrade of kafka-python changes that
attribute or when it is set, these fail.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from faults import wait_for
from kafka import KafkaConsumer

from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.settings import ACTIONS_TOPIC

SESSION_MS = 3000


@pytest.fixture
def group() -> str:
    return f"rejoin-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def members(broker: BundledBroker, group: str) -> Iterator[list[KafkaConsumer]]:
    K.ensure_all_topics(broker.bootstrap, None, 3)
    made: list[KafkaConsumer] = []

    def member() -> KafkaConsumer:
        c = K.consumer(broker.bootstrap, None, group_id=group, session_timeout_ms=SESSION_MS,
                       heartbeat_interval_ms=SESSION_MS // 5)
        c.subscribe([ACTIONS_TOPIC])
        made.append(c)
        return c

    made_first = member()
    wait_for(lambda: made_first.poll(timeout_ms=200) is not None and made_first.assignment(),
             "the first member to be given the partitions", timeout=30)
    yield made
    for c in made:
        c.close()


def test_a_member_hears_of_a_rebalance_without_polling_and_rejoins_at_its_next_poll(
    broker: BundledBroker, group: str, members: list[KafkaConsumer],
) -> None:
    """A settled member has no rejoin asked; a second member joining starts a rebalance,
    which the first hears of from its heartbeats while it does not poll; its next polls
    rejoin, and then each owns some of the three partitions and none is asked to rejoin."""
    first = members[0]
    assert K.rejoin_asked(first) is False
    assert len(first.assignment()) == 3

    second = K.consumer(broker.bootstrap, None, group_id=group, session_timeout_ms=SESSION_MS,
                        heartbeat_interval_ms=SESSION_MS // 5)
    members.append(second)
    second.subscribe([ACTIONS_TOPIC])
    stop = threading.Event()

    def join() -> None:  # the newcomer's JoinGroup waits for the first member to rejoin
        while not stop.is_set():
            second.poll(timeout_ms=200)

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    try:
        wait_for(lambda: K.rejoin_asked(first), "the first member to hear of the rebalance "
                 "(it does not poll meanwhile)", timeout=30)

        def settled() -> bool:
            first.poll(timeout_ms=200)
            return (not K.rejoin_asked(first) and bool(first.assignment())
                    and bool(second.assignment())
                    and len(first.assignment() | second.assignment()) == 3)

        wait_for(settled, "both members to own partitions after the first polled again",
                 timeout=30)
    finally:
        stop.set()
        joiner.join(timeout=10)
    assert K.rejoin_asked(first) is False


def test_a_consumer_outside_any_group_is_never_asked_to_rejoin(broker: BundledBroker) -> None:
    """Assigned partitions (``motcua up``'s engine): nothing to rejoin, ever."""
    c = K.consumer(broker.bootstrap, None)
    try:
        assert K.rejoin_asked(c) is False
    finally:
        c.close()
