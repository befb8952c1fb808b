"""``motcua ingest``: submit an NDJSON file of actions to the durable intake and, with
``--wait``, report what became of it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.contract.actions import ACTION_MAX_BYTES
from kernel.errors import UserError
from kernel.settings import Settings
from motcua.cli.common import (
    Subparsers,
    add_command,
    load_settings,
    positive_number,
    print_json,
    print_lines,
    setup_logs,
    stderr_console,
)
from motcua.userfiles import open_user_file
from producers.errors import DeliveryError

if TYPE_CHECKING:
    from motcua.pipeline import Pipeline
    from producers.forwarder import Intake


def register(sub: Subparsers) -> None:
    """Add ``ingest``."""
    sp = add_command(sub, "ingest", "Publish an NDJSON file of actions to motcua.actions; with "
                     "--wait, see it recorded and scored and print what became of it. "
                     "\"published\" means the actions are stored durably (they survive a crash "
                     "of any motcua process and a restart of the bundled broker); with "
                     "MOTCUA_KAFKA_BOOTSTRAP, also acknowledged by Kafka (acks=all).",
                     cmd_ingest)
    sp.add_argument("file", help="NDJSON file, one action per line (- for standard input)")
    sp.add_argument("--wait", action="store_true", help="block until processed (starts the "
                    "embedded pipeline if none is running)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON (without "
                    "--wait: what was published)")
    sp.add_argument("--timeout", type=positive_number, default=600.0,
                    help="seconds to wait at most (default 600)")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Publish the file's actions; with ``--wait``, print the intake summary once processed."""
    from motcua import ingest as I

    settings = load_settings()
    setup_logs(settings, quiet=True)
    path = Path(args.file)
    # Opened first (a bad file is one sentence before anything starts), then read as its
    # lines are spooled: its size does not matter.
    with open_user_file(path, I.KIND) as f:
        done = _ingest(settings, args, I.iter_lines(f, path), path)
    if done is None:
        return 0
    summary, pub = done
    if pub.too_large:  # refused here, not sent: counted with the engine's refusals
        rejected = summary["rejected"]
        rejected["too_large"] = rejected.get("too_large", 0) + pub.too_large
        summary["rejected"] = dict(sorted(rejected.items()))
    if args.json:
        print_json(summary)
    else:
        print_lines(I.format_summary(summary))
    return 0


def _ingest(settings: Settings, args: argparse.Namespace, lines: Iterator[bytes],
            path: Path) -> tuple[dict[str, Any], Any] | None:
    """Spool the lines (and, with ``--wait``, wait until they are recorded and scored): the
    intake summary and what was submitted, or None once published without ``--wait``."""
    from motcua import ingest as I

    own: Pipeline | None = None
    intake: Intake | None = None
    try:
        bootstrap, own = _bootstrap(settings, args.wait)
        intake = _intake(settings, bootstrap, own)
        with _progress() as progress:
            total = 0 if progress.disable else _lines_in(path)
            t_pub = progress.add_task("publishing", total=total)
            count = [0]

            def advance(n: int) -> None:  # (from standard input the total grows as it comes)
                count[0] += n
                progress.update(t_pub, completed=count[0], total=max(total, count[0]))

            try:
                pub = I.submit(intake, lines, timeout=args.timeout, progress=advance)
            except DeliveryError as e:
                raise UserError(str(e)) from None
            progress.update(t_pub, total=count[0])  # (the total counted blank lines too)
            if not args.wait:
                progress.stop()
                if args.json:
                    print_json({"published": pub.count, "too_large": pub.too_large})
                else:
                    print(f"published {pub.count:,} action{'' if pub.count == 1 else 's'} to "
                          f"motcua.actions{_refused(pub)}", file=sys.stderr)
                return None
            if own is None and settings.kafka_bootstrap is not None:
                own = _start_engine_if_none(settings)
            return _wait_done(settings, own, pub.spooled, args.timeout, progress), pub
    finally:
        if intake is not None and (own is None or intake is not own.intake):
            intake.close()
        if own is not None:
            own.stop()


def _lines_in(path: Path) -> int:
    """The lines of a regular file, counted a block at a time (the progress bar's total);
    0 for standard input or a pipe, whose total grows as lines come."""
    if str(path) == "-" or not path.is_file():
        return 0
    n, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            n, last = n + block.count(b"\n"), block[-1:]
    return n + (last != b"\n")


def _intake(settings: Settings, bootstrap: str, own: Pipeline | None) -> Intake:
    """The pipeline's intake when this command runs one, else one of its own (its forwarder
    sends only if no other holds the spool's lease)."""
    from producers.forwarder import Intake

    if own is not None and own.intake is not None:
        return own.intake
    return Intake.open(settings, bootstrap, part="ingest-forwarder").start()


def _refused(pub: Any) -> str:
    if not pub.too_large:
        return ""
    return (f"; refused {pub.too_large:,} over the size limit of {ACTION_MAX_BYTES:,} bytes "
            "(too_large)")


def _bootstrap(settings: Settings, wait: bool) -> tuple[str, Pipeline | None]:
    """The broker to publish to, and the pipeline started for it here (or None)."""
    from kernel.kafka import wait_until_reachable
    from motcua.pipeline import Pipeline, running_embedded_broker

    if settings.kafka_bootstrap is not None:
        # The broker must take the actions before they count as published: say at once that
        # it is not there, rather than spool what it would not acknowledge.
        wait_until_reachable(settings.kafka_bootstrap, settings.kafka_security, timeout=10)
        return settings.kafka_bootstrap, None
    bootstrap = running_embedded_broker(settings)
    if bootstrap is not None:
        return bootstrap, None
    if not wait:
        raise UserError("No motcua pipeline is running here to take the actions; "
                        "use --wait to process them now, or start `motcua up`.")
    own = Pipeline(settings, roles=frozenset({"engine", "project"})).start()
    try:
        own.wait_ready()
    except BaseException:  # the caller stops only a pipeline it has been handed
        own.stop()
        raise
    return own.bootstrap, own


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description:<12}"), BarColumn(),
                    TextColumn("{task.completed:>9,.0f}/{task.total:,.0f}"),
                    TimeRemainingColumn(), transient=True, console=stderr_console(),
                    disable=not sys.stderr.isatty())


def _wait_done(settings: Settings, own: Pipeline | None, spooled: Any, timeout: float,
               progress: Any) -> Any:
    """Wait until the spooled actions are recorded and scored; their intake summary."""
    from motcua import ingest as I
    from motcua.pipeline import make_engine
    from projections.store import ViewStore, views_url

    engine = own.engine if own and own.engine else make_engine(settings)
    views = own.views if own and own.views else ViewStore(views_url(settings.database_url))
    t_eng = progress.add_task("recording", total=spooled.count)

    def report(done: int, stage: str) -> None:
        progress.update(t_eng, completed=done,
                        description="recording" if stage == "engine" else "scoring")

    return I.wait_spooled(engine, views, spooled, hold_seconds=settings.hold_seconds,
                          timeout=timeout, progress=report)


def _start_engine_if_none(settings: Settings) -> Pipeline | None:
    """A pipeline started here when no engine has beaten its heartbeat in the last 5 s."""
    from engine.app import HEARTBEAT
    from motcua.pipeline import Pipeline, make_engine

    probe = make_engine(settings)
    try:
        beat = probe.store.get_position(HEARTBEAT)
    finally:
        probe.close()
    if time.time() - beat < 5:
        return None
    p = Pipeline(settings, roles=frozenset({"engine", "project"})).start()
    p.wait_ready()
    return p
