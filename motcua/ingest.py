"""``motcua ingest FILE``: submit an NDJSON file of actions and, with ``--wait``, see it through.

The file's lines are committed to the durable intake (``producers.forwarder.Intake``) before
"published" is printed: they survive a SIGKILL of any motcua process and the loss of the bundled
broker's memory, and with an external Kafka the broker has acknowledged them too (``acks=all``).

The wait is exact: the spool says which line the engine recorded from which copy, and the
engine's intake ledger what became of it (accepted, duplicate, held, rejected by reason); the
relay's per-partition positions and the projection's applied positions say when the scores
include it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from engine.app import Engine
from engine.relay import Relay
from engine.runner import actions_log
from engine.store import ACCEPTED, DUPLICATE, HELD, REJECTED
from kernel import kafka as K
from kernel.contract.actions import ACTION_MAX_BYTES
from kernel.contract.upcasting import subject_of
from kernel.errors import UserError
from kernel.kafka import LogIdentity, ensure_all_topics
from kernel.settings import ACTIONS_TOPIC, KafkaSecurity
from kernel.spool import Spooled
from motcua.userfiles import MIB, open_user_file, read_block
from producers.forwarder import Intake
from projections.store import ViewStore

# Lines committed to the spool per transaction (a SQLite writer holds the file's lock meanwhile).
CHUNK = 5000


KIND = "an NDJSON file of actions"
# What ``iter_lines`` reads at a time, and keeps of a line too long to be an action (enough to
# be refused as too_large: the rest of it is never held).
BLOCK = MIB
_CAP = ACTION_MAX_BYTES + 1
_BOM = b"\xef\xbb\xbf"  # a byte-order mark some editors write before the first line


def iter_lines(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """The non-empty lines of an open actions file, in order, read a block at a time: memory
    holds one block and one line, whatever the file's size. A line longer than an action may
    be comes cut to ``ACTION_MAX_BYTES + 1`` bytes."""
    pending = b""
    for block in _blocks(f, path):
        lines = block.split(b"\n")
        lines[0] = pending + lines[0]
        pending = lines.pop()[:_CAP]
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")[:_CAP]
    if pending.strip():
        yield pending.rstrip(b"\r")


def _blocks(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """The file's bytes a block at a time, a byte-order mark at its start left out."""
    head = b""
    while len(head) < len(_BOM) and (block := read_block(f, path, BLOCK)):
        head += block
    if head:
        yield head.removeprefix(_BOM)
    while block := read_block(f, path, BLOCK):
        yield block


def read_lines(path: Path) -> list[bytes]:
    """The non-empty lines of the file (``iter_lines``), all at once."""
    with open_user_file(path, KIND) as f:
        return list(iter_lines(f, path))


def subject_key(line: bytes) -> bytes | None:
    """The Kafka key of an action (v1 or v2): its subject id, so one subject's actions stay in
    order on one partition."""
    try:
        value = subject_of(orjson.loads(line))
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
    return value.encode() if isinstance(value, str) else None


@dataclass
class Submitted:
    """What ``submit`` did with a file: the spool ids its lines got, and how many lines it
    refused as ``too_large`` (over the contract's ACTION_MAX_BYTES: the engine would refuse
    them, and one big line must stop nothing after it)."""

    spooled: Spooled
    too_large: int = 0

    @property
    def count(self) -> int:
        return self.spooled.count


def submit(intake: Intake, lines: Iterable[bytes], *, timeout: float,
           progress: Callable[[int], None] = lambda n: None) -> Submitted:
    """Commit every line to the intake in file order, ``CHUNK`` lines a transaction (a line
    iterator is read as it goes); return once they are acknowledged (with an external Kafka:
    once the broker took every one)."""
    out = Submitted(Spooled((), 0))
    it = iter(lines)
    while chunk := list(islice(it, CHUNK)):
        kept = [line for line in chunk if len(line) <= ACTION_MAX_BYTES]
        out.too_large += len(chunk) - len(kept)
        out.spooled += intake.spool_lines([(subject_key(line), line) for line in kept])
        progress(len(chunk))
    if intake.broker_ack:
        intake.wait_sent(out.spooled, timeout)
    return out


@dataclass
class Published:
    count: int = 0
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Lines not sent: over the contract's size limit (ACTION_MAX_BYTES), refused here as the
    # engine would refuse them (too_large), so one big line stops nothing after it.
    too_large: int = 0


def publish(lines: list[bytes], bootstrap: str, security: KafkaSecurity | None,
            partitions: int, progress: Callable[[int], None] = lambda n: None) -> Published:
    """Send every line to ``motcua.actions``; returns the offsets the broker gave them."""
    ensure_all_topics(bootstrap, security, partitions)
    producer = K.producer(bootstrap, security)
    out = Published()
    try:
        futures = []
        for i, line in enumerate(lines, 1):
            if len(line) > ACTION_MAX_BYTES:
                out.too_large += 1
                continue
            futures.append(producer.send(ACTIONS_TOPIC, key=subject_key(line), value=line))
            if i % 2000 == 0:
                progress(2000)
        producer.flush()
        progress(len(lines) % 2000)
        for f in futures:
            md = f.get(timeout=60)
            lo, hi = out.ranges.get(md.partition, (md.offset, md.offset))
            out.ranges[md.partition] = (min(lo, md.offset), max(hi, md.offset))
            out.count += 1
    finally:
        producer.close()
    return out


def actions_log_id(engine: Engine, bootstrap: str, security: KafkaSecurity | None) -> str:
    ident = LogIdentity(bootstrap, security)
    try:
        return actions_log(engine, ident.of(ACTIONS_TOPIC))
    finally:
        ident.close()


def summarize(rows: list[tuple[str, str | None, int]]) -> dict[str, Any]:
    accepted = sum(n for o, _, n in rows if o == ACCEPTED)
    duplicates = sum(n for o, _, n in rows if o == DUPLICATE)
    held = sum(n for o, _, n in rows if o == HELD)
    rejected: dict[str, int] = {}
    for o, reason, n in rows:
        if o == REJECTED:
            rejected[reason or "unknown"] = rejected.get(reason or "unknown", 0) + n
    out: dict[str, Any] = {"accepted": accepted, "duplicates": duplicates,
                           "rejected": dict(sorted(rejected.items()))}
    if held:
        out["held"] = held
    return out


def wait_done(
    engine: Engine, views: ViewStore, log_id: str, pub: Published, *,
    hold_seconds: float, timeout: float, progress: Callable[[int, str], None],
) -> dict[str, Any]:
    """Block until the engine recorded every published offset and the views include it."""
    return wait_recorded(engine, views, lambda: engine.store.intake_summary(
        log_id, ACTIONS_TOPIC, pub.ranges), pub.count, hold_seconds=hold_seconds,
        timeout=timeout, progress=progress)


def wait_spooled(
    engine: Engine, views: ViewStore, spooled: Spooled, *,
    hold_seconds: float, timeout: float, progress: Callable[[int, str], None],
) -> dict[str, Any]:
    """Block until the engine recorded every spooled line and the views include it."""
    return wait_recorded(engine, views, lambda: engine.store.spool_summary(spooled),
                         spooled.count, hold_seconds=hold_seconds, timeout=timeout,
                         progress=progress)


def wait_recorded(
    engine: Engine, views: ViewStore, outcomes: Callable[[], list[tuple[str, str | None, int]]],
    count: int, *, hold_seconds: float, timeout: float, progress: Callable[[int, str], None],
) -> dict[str, Any]:
    """Block until ``outcomes`` (outcome, reason, n) covers ``count`` actions, held ones are
    settled (or their hold time is up), and the views include every event recorded so far."""
    deadline = time.monotonic() + timeout
    store = engine.store
    # 1. The engine: every action has an outcome; held ones settle within the hold time.
    held_deadline: float | None = None
    while True:
        rows = outcomes()
        done = sum(n for _, _, n in rows)
        held = sum(n for o, _, n in rows if o == HELD)
        progress(done, "engine")
        if done >= count:
            if held == 0:
                break
            held_deadline = held_deadline or time.monotonic() + hold_seconds + 5
            if time.monotonic() > held_deadline:
                break
        if time.monotonic() > deadline:
            raise UserError(f"Timed out after {timeout:g} s waiting for the engine: "
                            f"{done} of {count} actions recorded.")
        time.sleep(0.1)
    # 2. The relay and the projection: every event recorded so far is folded.
    target = engine.app.recorder.max_notification_id() or 0
    while True:
        relayed = store.get_position(Relay.EVENTS)
        if relayed >= target:
            parts = {int(k.rsplit("|", 1)[1]): v
                     for k, v in store.positions_like(f"{Relay.EVENTS}|").items()}
            applied = views.positions()
            if all(applied.get(f"pos|{p}", 0) >= pos for p, pos in parts.items()):
                break
        progress(count, "projection")
        if time.monotonic() > deadline:
            raise UserError(f"Timed out after {timeout:g} s waiting for the projection.")
        time.sleep(0.1)
    return summarize(outcomes())


def format_summary(summary: dict[str, Any]) -> Iterator[str]:
    yield f"accepted    {summary['accepted']:>10,}"
    yield f"duplicates  {summary['duplicates']:>10,}"
    rejected = summary["rejected"]
    yield f"rejected    {sum(rejected.values()):>10,}"
    for reason, n in rejected.items():
        yield f"  {reason:<26}{n:>8,}"
    if summary.get("held"):
        yield f"still held  {summary['held']:>10,}  (waiting for their dossier)"
