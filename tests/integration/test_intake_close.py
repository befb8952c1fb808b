"""Closing the durable intake stops its forwarder at once (``producers.forwarder.Intake.close``):
the forwarder's idle wait between looks at the spool is cut short, so ``motcua up`` and its
engine process do not wait out a look (up to five idle periods for a forwarder without the
lease) before they exit."""

from __future__ import annotations

from pathlib import Path

from faults import wait_for

from kernel.broker import BundledBroker
from kernel.spool import Spool
from producers.forwarder import Forwarder, Intake


def test_closing_the_intake_ends_its_forwarder_waiting_between_looks(
        tmp_path: Path, broker: BundledBroker) -> None:
    """A forwarder that looks at its spool once a minute, idle (nothing spooled): after
    ``close`` its thread has ended (close waits for it at most 10 s; a forwarder left in its
    wait would still be there)."""
    spool = Spool(f"sqlite:///{tmp_path / 'motcua.db'}")
    forwarder = Forwarder(spool, broker.bootstrap, None, idle=60.0)
    intake = Intake(spool, forwarder, broker_ack=False).start()
    thread = intake._thread
    assert thread is not None
    wait_for(lambda: forwarder._holding, "the forwarder to take the lease and go idle")
    intake.close()
    assert not thread.is_alive()
    assert not forwarder._holding  # and it gave its lease back on the way out
