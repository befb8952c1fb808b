"""Replay: rebuild the views from the event store's facts cache (not from Kafka).

- ``rebuild()`` folds the log into a shadow table set, page by page, resumable (the shadow keeps
  its own position), while the live projection keeps running;
- ``swap()`` makes the shadow the live views in one transaction and bumps the views'
  generation, which fences a running projection: it reloads instead of flushing stale counters;
- ``verify()`` rebuilds exactly what the live views have applied (per events partition, by store
  position) and compares counter by counter;
- ``as_recorded()`` folds only the facts recorded by an instant, for an audit of a figure
  published then.
"""

from __future__ import annotations

import gc
import queue
import resource
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from engine.facts_cache import FOLD_COLUMNS
from engine.relay import Relay, partition_for
from projections.fold import Counters
from projections.segments import Segments
from projections.store import BASE, GENERATION, ViewStore

REPLAY_POS = "replay|pos"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Progress = Callable[[int, int], None]


@dataclass
class Page:
    """One page of the facts cache: (pos, kind, sid, prev, facts, recorded_us)."""

    rows: list[tuple[int, str, str, Any, Any, int]]


def read_log(store: Any, start: int, page: int, stop: int | None = None,
             recorded_by: int | None = None) -> Iterator[Page]:
    """The facts cache from ``start`` (inclusive) in pages, decoded for folding."""
    pos = start
    loads = orjson.loads
    while True:
        raw = store.read_facts(pos, page, stop, recorded_by)
        if not raw:
            return
        yield Page([(r[0], r[1], r[3], None if r[6] is None else loads(r[6]),
                     None if r[7] is None else loads(r[7]), r[5]) for r in raw])
        pos = raw[-1][0] + 1
        if len(raw) < page:
            return


def fold_row(c: Counters, kind: str, sid: str, prev: Any, facts: Any) -> None:
    c.fold_row(kind, sid, prev, facts)


# The page cache of a rebuild's table sets (the live views keep ``VIEWS_CACHE_KIB``): a
# rebuild writes each dossier's row once a window and reads it back only to merge, so a larger
# cache held more of the table for no speed (province-year: 64 → 16 MiB took 48 MiB off the
# peak, the time the same within the machine's noise; 4 MiB saved 14 MiB more, times mixed).
REBUILD_CACHE_KIB = 16_384


@dataclass
class Replayer:
    """Rebuilds views from an engine's event store into a view store's table sets."""

    engine_store: Any  # the engine's IntakeMixin (facts cache, relay positions)
    views: ViewStore
    page: int = 20_000
    flush_every: int = 15  # pages between writes of the shadow (and of its resume position)
    stats: dict[str, float] = field(default_factory=dict)
    # The event store's URL: with it, a rebuild of at least ``min_split`` events folds in
    # ``workers`` processes (two: the machine's cores); without it, in this one.
    source_url: str | None = None
    workers: int = 2
    min_split: int = 400_000

    def last_position(self) -> int:
        return int(self.engine_store.last_fact())

    def partitions(self) -> int:
        return max(1, int(self.engine_store.get_position(Relay.PARTITIONS)))

    # ----- rebuild and swap ----------------------------------------------------------------

    def rebuild(self, prefix: str = "shadow", *, progress: Progress | None = None,
                resume: bool = True, until: int | None = None,
                start: int | None = None, indexes: bool = True,
                ) -> tuple[ViewStore, Counters, int]:
        """Fold the log into table set ``prefix``; returns (store, counters, last position).

        ``start``: fold from this position (a range of the log, with ``until``) instead of
        the first. A long log is folded in two processes when ``source_url`` is set
        (``_rebuild_split``). The table set's secondary indexes are made after the fold
        (``indexes``; False: not at all), not kept up to date row by row during it: the
        dossier rows' upserts wrote five B-trees each (a third of a flush's CPU)."""
        shadow = ViewStore(self.views.url, prefix=prefix, layout=self.views.layout,
                           indexes=False, cache_kib=REBUILD_CACHE_KIB)
        if not resume:
            shadow.drop(prefix)
            shadow.create_tables()
        counters = shadow.load()
        done = shadow.positions().get(REPLAY_POS, 0 if start is None else start - 1)
        target = until if until is not None else self.last_position()
        t0 = time.perf_counter()
        self.stats = {}
        if (self.source_url is not None and self.workers > 1
                and target - done >= self.min_split):
            n, done = self._rebuild_split(shadow, counters, done, target, progress)
        else:
            n, done = self._fold_into(shadow, counters, done, target, progress)
        if indexes:
            t_index = time.perf_counter()
            shadow.ensure_indexes()
            self.stats["index_seconds"] = time.perf_counter() - t_index
        self.stats.update(events=n, seconds=time.perf_counter() - t0)
        return shadow, counters, done

    def _fold_into(self, shadow: ViewStore, counters: Counters, done: int, stop: int,
                   progress: Progress | None) -> tuple[int, int]:
        """Fold the log after ``done`` up to ``stop`` into ``counters``, flushing into
        ``shadow`` as it goes (resumable); returns (events folded, last position). A flush
        leaves out the rows of the dossiers the next page (already read) folds again: a later
        flush writes them, and a stopped rebuild resumes from the flush's position."""
        n = 0
        pages = 0
        window = Segments(counters)
        with bulk_fold(), closing(prefetched(self.engine_store, done + 1, self.page,
                                              stop)) as it:
            raw = next(it, None)
            while raw is not None:
                window.add(raw)
                done = raw[-1][0]
                n += len(raw)
                pages += 1
                nxt = next(it, None)
                if pages % self.flush_every == 0 or nxt is None:
                    window.settle()
                    if nxt is not None:
                        _leave_to_next(counters, nxt)
                    shadow.flush(counters, {REPLAY_POS: done})  # resumable from here
                if progress is not None:
                    progress(done, stop)
                raw = nxt
        return n, done

    def _rebuild_split(self, shadow: ViewStore, counters: Counters, done: int, target: int,
                       progress: Progress | None) -> tuple[int, int]:
        """Fold the log's first half here and its second half in a worker process, at once.

        Every facts row carries its subject's facts before and after, so a row's contribution
        does not depend on the rows before it: the fold is additive over any partition of the
        log. The worker rebuilds the second half into a table set of its own (counters, and
        the latest facts of the subjects it saw); then, in one transaction, its counters are
        added to these (``Counters.merge_from``; its catalog entries are the later ones), its
        subject rows replace this half's, and the resume position jumps to the end. Until
        then the shadow's resume position covers only this half: an interrupted rebuild
        resumes from there (and the worker's table set is started again)."""
        import concurrent.futures as cf
        import multiprocessing

        assert self.source_url is not None  # (rebuild() splits only then)
        mid = (done + target) // 2
        side_prefix = f"{shadow.prefix}_tail"
        ctx = multiprocessing.get_context("spawn")  # no inherited threads or connections
        at = ctx.Value("q", mid, lock=False)  # the worker's position, for the progress bar
        first = done

        def both(pos: int, _stop: int) -> None:
            if progress is not None:
                progress(min(target, pos + max(0, at.value - mid)), target)

        t_start, cpu_start = time.perf_counter(), time.process_time()
        with cf.ProcessPoolExecutor(1, mp_context=ctx, initializer=_share_position,
                                    initargs=(at,)) as pool:
            tail = pool.submit(_fold_tail, self.source_url, self.views.url, self.views.layout,
                               side_prefix, mid + 1, target, self.page, self.flush_every)
            n, done = self._fold_into(shadow, counters, first, mid, both)
            self.stats["first_half_seconds"] = time.perf_counter() - t_start
            self.stats["first_half_cpu_seconds"] = time.process_time() - cpu_start
            n_tail, done_tail, self.stats["worker_peak_kib"], self.stats[
                "worker_cpu_seconds"] = tail.result()
        t_merge = time.perf_counter()
        side = ViewStore(self.views.url, prefix=side_prefix, layout=self.views.layout,
                         indexes=False, cache_kib=REBUILD_CACHE_KIB)
        try:
            counters.merge_from(side.load())
            if n_tail:
                done = done_tail
            with shadow.tx():
                shadow.adopt_subjects(side_prefix)
                shadow.flush(counters.mark_all_dirty(), {REPLAY_POS: done})
            # On the shadow's connection: a drop reads every page of the tables, and the
            # side's own connection would fill a page cache of its own with them.
            shadow.drop(side_prefix)
        finally:
            side.close()
        self.stats["merge_seconds"] = time.perf_counter() - t_merge
        if progress is not None:
            progress(done, target)
        return n + n_tail, done

    def swap(self, shadow: ViewStore, counters: Counters, done: int) -> int:
        """Make the shadow the live views, atomically; returns the new generation.

        The live projection may be ahead in some events partitions: the tail it has applied
        is folded in first, and each partition's position becomes the larger of the two, so
        that no event is applied twice or lost when the projection goes on from its offsets.
        """
        for attempt in range(5):
            try:
                return self._swap(shadow, counters, done)
            except Exception as e:  # PostgreSQL may pick the swap as a deadlock's victim
                if not _is_lock_conflict(e) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
                counters = shadow.load(BASE)  # the attempt's tail folds were rolled back
        raise AssertionError("unreachable")  # pragma: no cover

    def _swap(self, shadow: ViewStore, counters: Counters, done: int) -> int:
        live = self.views
        n_parts = self.partitions()
        with live.tx() as c:  # on SQLite this holds the write lock: the projection waits
            c.execute(f"SELECT name, value FROM {live._t('positions')}")
            live_pos = {r[0]: int(r[1]) for r in c.fetchall()}
            tail_pos = max((v for k, v in live_pos.items() if k.startswith("pos|")), default=0)
            if tail_pos > done:
                for page in read_log(self.engine_store, done + 1, self.page, stop=tail_pos):
                    for pos, kind, sid, prev, facts, _ in page.rows:
                        p = partition_for(sid.encode(), n_parts)
                        if pos <= live_pos.get(f"pos|{p}", 0):
                            fold_row(counters, kind, sid, prev, facts)
            # Every event up to ``done`` is in the shadow, and so is every event the live views
            # applied: a partition goes on after the larger of the two.
            positions = {k: v for k, v in live_pos.items() if k.startswith("off|")}
            for p in range(n_parts):
                positions[f"pos|{p}"] = max(live_pos.get(f"pos|{p}", 0), done)
            generation = live_pos.get(GENERATION, 0) + 1
            positions[GENERATION] = generation
            shadow._write(c, counters, positions)
            counters.clear_dirty()
            for t in ("cells", "catalog", "dossiers", "feedback", "positions"):
                c.execute(f"DROP TABLE IF EXISTS {live.prefix}_{t}")
                c.execute(f"ALTER TABLE {shadow.prefix}_{t} RENAME TO {live.prefix}_{t}")
            c.execute(f"DELETE FROM {live.prefix}_positions WHERE name = '{REPLAY_POS}'")
        # Index names travel with their tables, so the shadow's may have been taken (by the
        # live set's, from an earlier swap) and some of its indexes never made: every one is
        # made sure of by its columns.
        live.ensure_indexes()
        return generation

    # ----- verify --------------------------------------------------------------------------

    def verify(self, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Rebuild what the live views applied and list every counter that differs (the
        subjects' latest facts are not compared, and not kept past each window)."""
        n_parts = self.partitions()
        mine = Counters(self.views.layout)
        window = Segments(mine)
        live_pos = self.views.positions()
        floor = min((live_pos.get(f"pos|{p}", 0) for p in range(n_parts)), default=0)
        last = self.last_position()
        # Phase 1: the common prefix every partition has applied.
        done = pages = 0
        with bulk_fold():
            for raw in prefetched(self.engine_store, 1, self.page, floor):
                window.add(raw)
                done = raw[-1][0]
                pages += 1
                if pages % self.flush_every == 0:
                    window.settle()
                    mine.dossiers.clear()
                    mine.feedback.clear()
                if progress:
                    progress(done, last)
        # Phase 2: a consistent snapshot of the live views, then the events it covers (a row
        # left out breaks its dossier's move there: Segments folds exactly the rows given).
        live, live_pos = self.views.snapshot()
        top = max((v for k, v in live_pos.items() if k.startswith("pos|")), default=0)
        with bulk_fold():
            for raw in prefetched(self.engine_store, done + 1, self.page, top):
                window.add([row for row in raw if row[0] <= live_pos.get(
                    f"pos|{partition_for(row[2].encode(), n_parts)}", 0)])
        window.settle()
        return compare(live, mine)

    # ----- as recorded ---------------------------------------------------------------------

    def as_recorded(self, instant: datetime, progress: Progress | None = None,
                    into: ViewStore | None = None,
                    subjects_of: Collection[str] | None = None) -> Counters:
        """The counters from only the facts recorded by ``instant``; with ``into``, also
        written to that (empty) table set with the subjects' latest facts (only those received
        in the months ``subjects_of``, when given), flushed as it goes so that memory holds
        counters, never all the subjects."""
        c = Counters(self.views.layout)
        last = self.last_position()
        by = (instant - _EPOCH) // timedelta(microseconds=1)
        pages = 0
        window = Segments(c)
        with bulk_fold():
            for raw in prefetched(self.engine_store, 1, self.page, None, by):
                window.add(raw)
                pages += 1
                if pages % self.flush_every == 0:
                    window.settle()
                    if into is not None:
                        into.flush(_only(c, subjects_of), {})
                if progress:
                    progress(raw[-1][0], last)
        window.settle()
        if into is not None:
            into.flush(_only(c, subjects_of), {"asof": int(instant.timestamp())})
        c.clear_dirty()
        return c


_tail_at: Any = None  # in a worker process: where its fold has got to (shared with the parent)


def _share_position(at: Any) -> None:
    global _tail_at
    _tail_at = at


def _fold_tail(source_url: str, views_url: str, layout: Any, prefix: str, start: int,
               stop: int, page: int, flush_every: int) -> tuple[int, int, int, float]:
    """In a worker process: rebuild the log's positions ``start``..``stop`` into table set
    ``prefix`` (started anew); returns (events folded, last position, peak RSS in KiB, CPU
    seconds of the worker)."""
    from engine.app import Engine

    engine = Engine(source_url)  # reads the facts cache only: no annotator needed
    views = ViewStore(views_url, prefix=prefix, layout=layout, indexes=False,
                      cache_kib=REBUILD_CACHE_KIB)
    try:
        def report(pos: int, _stop: int) -> None:
            if _tail_at is not None:
                _tail_at.value = pos

        r = Replayer(engine.store, views, page=page, flush_every=flush_every)
        shadow, _, done = r.rebuild(prefix, resume=False, until=stop, start=start,
                                    progress=report, indexes=False)
        shadow.close()
        use = resource.getrusage(resource.RUSAGE_SELF)
        return int(r.stats["events"]), done, use.ru_maxrss, use.ru_utime + use.ru_stime
    finally:
        views.close()
        engine.close()


@contextmanager
def bulk_fold() -> Iterator[None]:
    """Pause the cyclic garbage collector while folding a log. A replay allocates millions of
    containers (decoded facts) that are acyclic, so reference counting frees them; meanwhile
    the cycle collector would traverse the whole growing heap again and again (28 % of a
    replay of 180,000 events in a profile). Restored after, whatever happens."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def prefetched(store: Any, start: int, page: int, stop: int | None = None,
               recorded_by: int | None = None) -> Generator[list[tuple[Any, ...]], None, None]:
    """The facts cache's raw pages from ``start``, each next page read by a helper thread
    while this one is folded (the database steps without the GIL: the read overlaps the
    fold on a second core). The last page is the first shorter than ``page``."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=1)
    stopped = threading.Event()

    def read() -> None:
        pos = start
        try:
            while not stopped.is_set():
                raw = store.read_facts(pos, page, stop, recorded_by, FOLD_COLUMNS, scan=True)
                if raw:
                    _put(pages, stopped, raw)
                if len(raw) < page:
                    break
                pos = raw[-1][0] + 1
        except BaseException as e:  # handed to the folding thread, raised there
            _put(pages, stopped, e)
        _put(pages, stopped, None)

    reader = threading.Thread(target=read, name="replay-reader", daemon=True)
    reader.start()
    try:
        while (item := pages.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        reader.join()


def _put(pages: queue.Queue[Any], stopped: threading.Event, item: Any) -> None:
    while not stopped.is_set():
        try:
            pages.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _leave_to_next(c: Counters, page: list[tuple[Any, ...]]) -> None:
    """Forget the facts of the dossiers that ``page`` (the next) folds again (its window keeps
    them again when it settles)."""
    latest = c.dossiers
    for row in page:
        if row[1] == "dossier" and row[4] is not None:
            latest.pop(row[2], None)


def _only(c: Counters, months: Collection[str] | None) -> Counters:
    """Keep, of the subjects folded since the last flush, those received in ``months``."""
    if months is not None:
        c.dossiers = {k: f for k, f in c.dossiers.items() if f[1] in months}
        c.feedback = {k: f for k, f in c.feedback.items() if f[1] in months}
    return c


def compare(live: Counters, rebuilt: Counters) -> list[dict[str, Any]]:
    """Every difference between two sets of counters, named by agency, month and counter."""
    out: list[dict[str, Any]] = []
    for what, a, b, names in (("dossier", live.cells, rebuilt.cells, live.dl.slot_names()),
                              ("feedback", live.fb_cells, rebuilt.fb_cells,
                               live.fl.slot_names())):
        for key in sorted(set(a) | set(b)):
            va = a.get(key, [0] * len(names))
            vb = b.get(key, [0] * len(names))
            for i, (x, y) in enumerate(zip(va, vb, strict=True)):
                if x != y:
                    out.append({"agency_id": key[0], "month": key[1], "kind": what,
                                "counter": names[i], "live": x, "replayed": y})
    for what, a2, b2 in (("open_due", live.open_due, rebuilt.open_due),
                         ("feedback_open_due", live.fb_open_due, rebuilt.fb_open_due)):
        for key in sorted(set(a2) | set(b2)):
            ha = {k: v for k, v in a2.get(key, {}).items() if any(v)}
            hb = {k: v for k, v in b2.get(key, {}).items() if any(v)}
            if ha != hb:
                out.append({"agency_id": key[0], "month": key[1], "kind": what,
                            "counter": "due_day_histogram", "live": ha, "replayed": hb})
    for key in sorted(set(live.procs) | set(rebuilt.procs)):
        pa = {k: v for k, v in live.procs.get(key, {}).items() if any(v)}
        pb = {k: v for k, v in rebuilt.procs.get(key, {}).items() if any(v)}
        for pid in sorted(set(pa) | set(pb)):
            if pa.get(pid) != pb.get(pid):
                out.append({"agency_id": key[0], "month": key[1], "kind": "procedure",
                            "counter": pid, "live": pa.get(pid), "replayed": pb.get(pid)})
    for key in sorted(set(live.delays) | set(rebuilt.delays)):
        da, db = live.delays.get(key, {}), rebuilt.delays.get(key, {})
        for row in sorted(set(da) | set(db), key=lambda r: (r[0], r[1], r[2] or "")):
            if da.get(row) != db.get(row):
                out.append({"agency_id": key[0], "month": key[1], "kind": "delays",
                            "counter": "/".join(x or "" for x in row), "live": da.get(row),
                            "replayed": db.get(row)})
    for what, ca, cb in (("procedure_catalog", live.procedures, rebuilt.procedures),
                         ("agency_catalog", live.agencies, rebuilt.agencies)):
        for k in sorted(set(ca) | set(cb)):
            if ca.get(k) != cb.get(k):
                out.append({"agency_id": None, "month": None, "kind": what, "counter": k,
                            "live": ca.get(k), "replayed": cb.get(k)})
    return out


def _is_lock_conflict(e: Exception) -> bool:
    name = type(e).__name__
    return name in {"DeadlockDetected", "LockNotAvailable", "SerializationFailure"} or (
        "deadlock" in str(e).lower())
