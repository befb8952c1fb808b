"""Where the time of ``motcua up`` goes, from ``py-spy record --format raw --threads`` output.

With ``--subprocesses`` each stack starts with its process (``process PID:"command"``, the
child engine's nested in its parent's): those frames are dropped, and the buckets of the child
engine (``motcua engine --child``) are named ``engine process: …``.

Each collapsed stack is put in one bucket by its thread and its frames (first rule that
matches). Stacks whose innermost frame is a wait (epoll, a condition, kafka-python's wait for an
in-flight fetch, the producer's flush) are counted as "waiting": py-spy's own idle detection
misses waits that happen inside C calls, so without this the idle Kafka IO threads would look
busy. With ``py-spy record --gil`` only the thread holding the GIL is sampled and there are no
waits: the shares are then shares of the one core's worth of Python the process can use.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# Innermost frames that are a thread waiting, not working (function and file[:line]).
WAITS = (
    re.compile(r"^(EpollSelector|SelectSelector|PollSelector)\.select \("),
    re.compile(r"^(Condition|Event)\.wait \("),
    re.compile(r"^Thread\.join \("),
    re.compile(r"^_?[Ww]ait"),
    re.compile(r"^Fetcher\.fetch_records \(kafka/consumer/fetcher\.py:261\)"),
    re.compile(r"^KafkaProducer\.flush \("),
    re.compile(r"^run_until_signal \("),
)

# Buckets of the engine's batch (Engine.process): the first whose needle is in the stack.
PROCESS_BUCKETS = (
    ("projections/facts.py", "engine: facts derivation (projections.facts via the annotator)"),
    ("held_for", "engine: held-action lookup per created subject (SQL)"),
    ("kernel/contract/", "engine: parse + validate actions"),
    ("engine/domain/", "engine: domain (aggregates, lifecycle)"),
    ("eventsourcing/domain.py", "engine: domain (aggregates, lifecycle)"),
    ("engine/cache.py", "engine: subject cache + key lookups (reads)"),
    ("engine/intake.py", "engine: intake bookkeeping (batch, holds, ledger rows)"),
)


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def _is_wait(leaf: str) -> bool:
    return any(w.search(leaf) for w in WAITS)


def _relay(text: str) -> str:
    if "Publisher." in text or "KafkaProducer.send" in text:
        return "relay: publish (the producer's send and flush)"
    if "read_facts" in text or "engine/store.py" in text:
        return "relay: read the facts log + positions"
    return "relay: message building, partitioning"


def _engine(frames: list[str], text: str) -> str:
    if "Relay." in text:
        return _relay(text)
    if "EngineLoop._timers" in text:
        return "engine: timers (overdue watcher, holds)"
    if "KafkaConsumer.poll" in text:
        return "engine: Kafka poll (fetch parsing in the engine thread)"
    if "prepare_into" in text:  # engine.beside: while the batch's commit runs
        return "engine: parse + validate actions (the next turn's, beside the commit)"
    if "Engine.commit" in text or "lookup_keys" in text:
        return "engine: store insert + commit (events, intake, facts cache, tracking)"
    if "Engine.process" in text:
        for needle, name in PROCESS_BUCKETS:
            if needle in text:
                return name
        return "engine: batch loop (Engine.process itself)"
    if "LogIdentity" in text or "_heartbeat" in text:
        return "engine: identity checks, heartbeat"
    return "engine: loop other (message objects, on_batch)"


def _projection(frames: list[str], text: str) -> str:
    if "KafkaConsumer.poll" in text:
        return "projection: Kafka poll (fetch parsing)"
    if "projections/fold.py" in text:
        return "projection: fold"
    if "projections/store.py" in text:
        return "projection: flush (view store writes + commit)"
    if frames and "ProjectionLoop.apply" in frames[-1]:
        return "projection: decode (orjson.loads) + loop"
    return "projection: other (identity checks, lag)"


def bucket(stack: str) -> str:
    """The bucket of one collapsed stack (``[process …;]thread (tid): name;frame;frame``)."""
    frames = _frames(stack)
    child = False
    while frames and frames[0].startswith("process "):
        child = child or "engine --child" in frames[0]
        frames = frames[1:]
    name = _bucket(frames)
    return f"engine process: {name}" if child else name


def _bucket(frames: list[str]) -> str:
    head = frames[0] if frames else ""
    thread = head.split(": ", 1)[1] if ": " in head else head
    frames = frames[1:]
    if frames and _is_wait(frames[-1]):
        return f"waiting ({_thread_group(thread)})"
    text = ";".join(frames)
    if "_beside.<locals>.run" in text:  # py-spy may name it after an earlier thread's id
        return "engine: the commit on its helper thread (SQLite's fsync, the GIL released)"
    if thread == "engine":
        return _engine(frames, text)
    if thread == "projection":
        return _projection(frames, text)
    if thread == "relay":
        return _relay(text)
    if thread == "alerts":
        if "KafkaConsumer.poll" in text:
            return "alerting: Kafka poll (fetch parsing)"
        return "alerting: follow + decide (alert store)"
    return _thread_group(thread)


def _thread_group(thread: str) -> str:
    if thread in ("engine", "projection"):
        return thread
    if thread == "http":
        return "HTTP server (uvicorn)"
    if thread.startswith("kafka"):
        return "Kafka client threads (consumer IO, producer sender)"
    if thread == "MainThread":
        return "main thread (start-up imports)"
    return f"other thread {thread}"


def count(paths: list[Path]) -> Counter[str]:
    out: Counter[str] = Counter()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                out[bucket(stack)] += int(n)
    return out


def summarize(paths: list[Path]) -> str:
    """A table of buckets: samples and share of the busy (non-waiting) samples."""
    c = count(paths)
    busy = {k: v for k, v in c.items() if not k.startswith("waiting")}
    total_busy = sum(busy.values()) or 1
    lines = [f"{sum(c.values()):,} samples, {total_busy:,} busy "
             f"({total_busy / (sum(c.values()) or 1):.0%})", "",
             "| where | samples | share of busy |", "|---|---:|---:|"]
    groups: Counter[str] = Counter()
    for k, v in busy.items():
        part = k.removeprefix("engine process: ")
        part = part.split(":", 1)[0] if ":" in part else part
        groups[("engine process: " if k.startswith("engine process: ") else "") + part] += v
    for k, v in sorted(busy.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:,} | {v / total_busy:.1%} |")
    lines += ["", "| part | share of busy |", "|---|---:|"]
    for k, v in groups.most_common():
        lines.append(f"| {k} | {v / total_busy:.1%} |")
    waits = {k: v for k, v in c.items() if k.startswith("waiting")}
    if waits:
        lines += ["", "waiting (not in the shares): " + ", ".join(
            f"{k[9:-1]} {v:,}" for k, v in sorted(waits.items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines)
