"""The view store: counters, catalog, subject facts and positions, written in ONE transaction.

On SQLite the views live in their own file beside the event store (``…-views.db``) so that the
engine and the projection never wait on each other's write lock; on PostgreSQL they are tables
of the same database. ``prefix`` names a table set, so a replay can build a shadow set and swap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from kernel.db import Database
from kernel.errors import ConfigurationError
from projections.facts import END_DAY, OPEN_ROW, RISK_COLUMNS, risk_columns
from projections.fold import Counters, merged
from projections.layout import DEFAULT_LAYOUT, Layout
from projections.view_schema import ensure_columns, ensure_indexes, subject_table_sql

GENERATION = "generation"
LAYOUT = "layout"  # fingerprint of the counter layout the table set was written with
BASE = -1  # the table set a replay writes; live partitions add to it
# The views' SQLite page cache: SQLite's default (2 MiB) holds less than the open dossiers'
# rows of one province (the at-risk list reads them all: 20,000 of them took about half again
# as long when their pages came from the OS on every call); memory is taken only as used.
VIEWS_CACHE_KIB = 65_536


class ViewsFencedError(RuntimeError):
    """A projection that lost a partition tried to write for it (a zombie)."""


class StaleViewsError(RuntimeError):
    """The tables were swapped by a replay under a running projection."""


class LayoutChangedError(ConfigurationError):
    """The views were written with another counter layout (another criteria registry)."""


def views_url(database_url: str) -> str:
    """Where the views of a store live."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '-views' + (path.suffix or '.db'))}"
    return database_url


class ViewStore:
    """Persistence of the projection's state; both dialects behind one small API."""

    def __init__(self, url: str, prefix: str = "proj", layout: Layout = DEFAULT_LAYOUT,
                 *, indexes: bool = True, cache_kib: int = VIEWS_CACHE_KIB) -> None:
        self.url = url
        self.prefix = prefix
        self.layout = layout
        # False: the table set is made without its secondary indexes (a replay's shadow, which
        # makes them once after the fold: ``ensure_indexes``); those it already has stay.
        self.indexes = indexes
        # ``cache_kib``: the SQLite page cache of this store's connection.
        self.db = Database(url, cache_kib=cache_kib)
        self.is_pg = self.db.is_pg
        self.ph = self.db.ph
        self.create_tables()

    def close(self) -> None:
        self.db.close()

    def _t(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def _q(self, sql: str) -> str:
        return self.db.q(sql)

    def tx(self, write: bool = True) -> AbstractContextManager[Any]:
        """One transaction on this store's connection. Threads take turns (the projection
        thread and readers share the connection); a nested call joins the open transaction.
        A lost PostgreSQL connection is opened again by the next call (kernel.db). ``write``
        False: on SQLite, no write lock (a reader does not wait for another process's flush)."""
        return self.db.tx(write)

    def create_tables(self, prefix: str | None = None) -> None:
        p = prefix or self.prefix
        blob = "BYTEA" if self.is_pg else "BLOB"
        with self.tx() as c:
            if self.is_pg:
                # Several processes: CREATE … IF NOT EXISTS fails when another process creates
                # the same table at once, so take turns; and it takes table locks even when the
                # tables exist (CREATE INDEX: SHARE) that can deadlock with a running
                # projection's flush, so create nothing when every table is there.
                tables = [f"{p}_{t}" for t in ("cells", "catalog", "dossiers", "feedback",
                                                "positions")] + ["view_owners"]
                c.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s) AND "
                          "relkind = 'r' AND relnamespace = current_schema()::regnamespace",
                          (tables,))
                if int(c.fetchone()[0]) == len(tables):
                    ensure_columns(c, p, True, self._q)
                    if self.indexes:
                        ensure_indexes(c, p, True)
                    return
                c.execute("SELECT pg_advisory_xact_lock(7660002)")
            # ``part``: the events partition whose owner writes the row, or BASE (a replay's
            # rebuild, written once). Queries sum over parts, so no two processes ever write
            # the same row.
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_cells (part INTEGER NOT NULL, agency "
                      f"TEXT NOT NULL, month TEXT NOT NULL, kind TEXT NOT NULL, body {blob} "
                      "NOT NULL, PRIMARY KEY (part, agency, month, kind))")
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_catalog (part INTEGER NOT NULL, kind TEXT "
                      f"NOT NULL, id TEXT NOT NULL, body {blob} NOT NULL, "
                      "PRIMARY KEY (part, kind, id))")
            c.execute("CREATE TABLE IF NOT EXISTS view_owners (part INTEGER PRIMARY KEY, "
                      "owner TEXT NOT NULL, epoch BIGINT NOT NULL, beat DOUBLE PRECISION "
                      "NOT NULL)")
            for kind in ("dossiers", "feedback"):
                c.execute(subject_table_sql(p, kind, blob))
            ensure_columns(c, p, self.is_pg, self._q)
            if self.indexes:
                ensure_indexes(c, p, self.is_pg)
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_positions (name TEXT PRIMARY KEY, "
                      "value BIGINT NOT NULL)")

    def ensure_indexes(self) -> None:
        """Every index of ``view_schema.INDEXES`` on this store's table set (after a replay's
        fold, which writes its shadow without them, and after its swap)."""
        with self.tx() as c:
            ensure_indexes(c, self.prefix, self.is_pg)

    # ----- write ---------------------------------------------------------------------------

    def flush(self, counters: Counters, positions: dict[str, int],
              generation: int | None = None, *, part: int = BASE) -> None:
        """Write what changed of one table set and the new positions together."""
        self.flush_parts({part: counters}, positions, generation)

    def flush_parts(self, parts: dict[int, Counters], positions: dict[str, int],
                    generation: int | None = None, epochs: dict[int, int] | None = None,
                    ) -> None:
        """Write what changed of each partition's counters and the positions, in ONE
        transaction; then forget what changed.

        With ``generation``, refuse (``StaleViewsError``) if a replay swapped the tables since
        the caller loaded them; with ``epochs``, refuse (``ViewsFencedError``) unless this
        process still owns each partition at that epoch (a zombie writes nothing).
        """
        with self.tx() as c:
            if generation is not None:
                current = self._generation(c)
                if current != generation:
                    raise StaleViewsError(
                        f"The views were replaced (generation {current}, not {generation}).")
            for p, epoch in (epochs or {}).items():
                c.execute(self._q("UPDATE view_owners SET beat=? WHERE part=? AND epoch=? "
                                  "RETURNING epoch"), (time.time(), p, epoch))
                if c.fetchone() is None:
                    raise ViewsFencedError(f"This process no longer owns events partition {p}.")
            for p, counters in parts.items():
                self._write(c, counters, {}, p)
            self._write_positions(c, {**positions, LAYOUT: self.layout.fingerprint})
        for counters in parts.values():
            counters.clear_dirty()

    def claim(self, part: int, owner: str) -> int:
        """Take an events partition: bump its epoch (fencing the previous owner)."""
        with self.tx() as c:
            c.execute(self._q(
                "INSERT INTO view_owners (part, owner, epoch, beat) VALUES (?,?,1,?) "
                "ON CONFLICT (part) DO UPDATE SET owner=excluded.owner, "
                "epoch=view_owners.epoch+1, beat=excluded.beat RETURNING epoch"),
                (part, owner, time.time()))
            return int(c.fetchone()[0])

    def owners(self) -> list[tuple[int, str, int, float]]:
        with self.tx() as c:
            c.execute("SELECT part, owner, epoch, beat FROM view_owners ORDER BY part")
            return [(int(r[0]), r[1], int(r[2]), float(r[3])) for r in c.fetchall()]

    def _generation(self, c: Any) -> int:
        c.execute(self._q(f"SELECT value FROM {self._t('positions')} WHERE name=?"),
                  (GENERATION,))
        row = c.fetchone()
        return int(row[0]) if row else 0

    def generation(self) -> int:
        with self.tx() as c:
            return self._generation(c)

    def _write(self, c: Any, counters: Counters, positions: dict[str, int],
               part: int = -1) -> None:
        up_cell = self._q(f"INSERT INTO {self._t('cells')} (part, agency, month, kind, body) "
                          "VALUES (?,?,?,?,?) ON CONFLICT (part, agency, month, kind) DO UPDATE "
                          "SET body=excluded.body")
        # A fold that moved no counter marks its cell dirty without creating it; in a table set
        # that holds only deltas (a partition's, after a replay's swap put the history in the
        # base set) that cell may not exist here: nothing of it changed, so nothing is written.
        rows = [(part, a, m, "d", orjson.dumps({"c": counters.cells[(a, m)],
                                            "open": _hist(counters.open_due[(a, m)]),
                                            "procs": counters.procs[(a, m)],
                                            "delays": _delays(counters.delays.get((a, m)))}))
                for a, m in counters.dirty_cells if (a, m) in counters.cells]
        rows += [(part, a, m, "f", orjson.dumps({"c": counters.fb_cells[(a, m)],
                                             "open": _hist(counters.fb_open_due[(a, m)])}))
                 for a, m in counters.dirty_fb if (a, m) in counters.fb_cells]
        if rows:
            c.executemany(up_cell, rows)
        cat = []
        for kind, key in counters.dirty_catalog:
            src = counters.procedures if kind == "procedure" else counters.agencies
            cat.append((part, kind, key, orjson.dumps(src[key])))
        if cat:
            c.executemany(self._q(f"INSERT INTO {self._t('catalog')} (part, kind, id, body) "
                                  "VALUES (?,?,?,?) ON CONFLICT (part, kind, id) DO UPDATE SET "
                                  "body=excluded.body"), cat)
        for kind, facts in (("dossiers", counters.dossiers), ("feedback", counters.feedback)):
            if facts:
                cols = SUBJECT_COLUMNS[kind]
                c.executemany(self._q(
                    f"INSERT INTO {self._t(kind)} ({', '.join(cols)}) VALUES "
                    f"({','.join('?' * len(cols))}) ON CONFLICT (id) DO UPDATE SET "
                    + ", ".join(f"{n}=excluded.{n}" for n in cols[1:])),
                    # In key order: the primary key's B-tree is written page by page rather
                    # than all over (a third less CPU for a replay's flushes of 60,000 rows).
                    # Made one by one as the statement takes them, not all held at once.
                    (_subject_row(kind, sid, f) for sid, f in sorted(facts.items())))
        if positions:
            self._write_positions(c, positions)

    def adopt_subjects(self, source: str) -> None:
        """Copy the dossier and feedback rows of table set ``source`` into this one, replacing
        rows of the same subject (a replay's later half of the log: its facts are the newer)."""
        with self.tx() as c:
            for kind, cols in SUBJECT_COLUMNS.items():
                names = ", ".join(cols)
                # (WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT)
                c.execute(f"INSERT INTO {self._t(kind)} ({names}) SELECT {names} FROM "
                          f"{source}_{kind} WHERE true ON CONFLICT (id) DO UPDATE SET "
                          + ", ".join(f"{n}=excluded.{n}" for n in cols[1:]))

    def _write_positions(self, c: Any, positions: dict[str, int]) -> None:
        c.executemany(self._q(f"INSERT INTO {self._t('positions')} (name, value) VALUES "
                              "(?,?) ON CONFLICT (name) DO UPDATE SET value=excluded.value"),
                      list(positions.items()))

    # ----- read ----------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        with self.tx() as c:
            return self._positions(c)

    def _positions(self, c: Any) -> dict[str, int]:
        c.execute(f"SELECT name, value FROM {self._t('positions')}")
        return {r[0]: int(r[1]) for r in c.fetchall()}

    def snapshot(self) -> tuple[Counters, dict[str, int]]:
        """The counters and the positions they stand at, read in one transaction."""
        with self.tx() as c:
            return self._load(c), self._positions(c)

    def load(self, part: int | None = None) -> Counters:
        """The projection state (agencies × months; small by design): summed over every
        table set, or one partition's own (``part``)."""
        with self.tx() as c:
            return self._load(c, part)

    def _load(self, c: Any, part: int | None = None) -> Counters:
        stored = self._positions(c).get(LAYOUT)
        if stored is not None and stored != self.layout.fingerprint:
            raise LayoutChangedError(
                f"The views in table set {self.prefix!r} were built for other criteria; run "
                "`motcua replay --restart` to rebuild them from the event store.")
        if part is None:
            c.execute(f"SELECT DISTINCT part FROM {self._t('cells')} UNION SELECT DISTINCT "
                      f"part FROM {self._t('catalog')}")
            parts = sorted(int(r[0]) for r in c.fetchall())
            if len(parts) > 1:
                return merged([self._load(c, p) for p in parts])
            part = parts[0] if parts else BASE
        k = Counters(self.layout)
        c.execute(self._q(f"SELECT agency, month, kind, body FROM {self._t('cells')} "
                          "WHERE part=?"), (part,))
        for agency, month, kind, body in c.fetchall():
            doc = orjson.loads(bytes(body))
            key = (agency, month)
            hist = {int(day): v for day, v in doc["open"].items()}
            if kind == "d":
                k.cells[key] = doc["c"]
                k.open_due[key] = hist
                k.procs[key] = doc["procs"]
                if doc.get("delays"):
                    k.delays[key] = {(r[0], r[1], r[2]): r[3:] for r in doc["delays"]}
            else:
                k.fb_cells[key] = doc["c"]
                k.fb_open_due[key] = hist
        c.execute(self._q(f"SELECT kind, id, body FROM {self._t('catalog')} WHERE part=?"),
                  (part,))
        for kind, key, body in c.fetchall():
            (k.procedures if kind == "procedure" else k.agencies)[key] = orjson.loads(
                bytes(body))
        return k

    def late_rows(self, agencies: Iterable[str], months: Sequence[str],
                  before_day: int | None = None) -> list[tuple[str, list[Any]]]:
        """Dossiers of these agencies and reception months that are late, or open (and due
        before ``before_day``, the ordinal of the view end's date, when given)."""
        where = "judged = 0 OR (judged = -1" + (" AND due_day < ?)" if before_day else ")")
        extra = [before_day] if before_day else []
        return self.subject_rows("dossiers", agencies, months, f"({where})", extra)

    def unfinished_late_rows(self, agencies: Iterable[str], months: Sequence[str],
                             before_day: int) -> list[tuple[str, list[Any]]]:
        """Dossiers not finished that are late at a view whose end falls before
        ``before_day``: waiting on the applicant and late for good, or open and past due.

        Two lookups, each all equalities and one range on ``view_schema.LATE_INDEX``'s
        columns, so that SQLite and PostgreSQL read from the table only the rows returned (an
        OR of the two read every unfinished dossier of the agencies: 8,748 rows for 388 in a
        province-year);
        one statement (UNION ALL), so that both see the same snapshot and a dossier judged late
        for good between them is neither counted twice nor missed.
        """
        if not months:
            return []
        in_months = ",".join("?" * len(months))

        def sql(marks: str) -> str:
            base = (f"SELECT id, facts FROM {self._t('dossiers')} WHERE agency IN ({marks}) "
                    f"AND month IN ({in_months}) AND end_day = -1 AND judged = ")
            return f"{base}-1 AND due_day < ? UNION ALL {base}0"

        return self._by_agencies(agencies, sql, lambda chunk: [*chunk, *months, before_day,
                                                               *chunk, *months])

    def open_rows(self, agencies: Iterable[str], due_by_day: int) -> list[tuple[Any, ...]]:
        """The unfinished dossiers of these agencies (any reception month) whose due date's
        ordinal is at most ``due_by_day``, as ``facts.OPEN_ROW`` tuples read from their columns
        (no facts decoded, no write lock): the candidates of the at-risk list."""
        return self._rows_by_agencies(
            agencies, lambda marks: f"SELECT {', '.join(OPEN_ROW)} FROM {self._t('dossiers')} "
                                    f"WHERE agency IN ({marks}) AND end_day = -1 AND "
                                    "due_day <= ?",
            lambda chunk: [*chunk, due_by_day], write=False)

    def subject_rows(self, kind: str, agencies: Iterable[str], months: Sequence[str],
                     where: str = "1=1", params: Sequence[Any] = ()) -> list[tuple[str, list[Any]]]:
        """(id, facts) of the dossiers or feedback of these agencies and reception months."""
        if not months:
            return []
        in_months = ",".join("?" * len(months))
        return self._by_agencies(
            agencies, lambda marks: f"SELECT id, facts FROM {self._t(kind)} WHERE agency IN "
                                    f"({marks}) AND month IN ({in_months}) AND {where}",
            lambda chunk: [*chunk, *months, *params])

    def unfinished_rows(self, agencies: Iterable[str], before_month: str,
                        day: int) -> list[tuple[str, list[Any]]]:
        """(id, facts) of the dossiers of these agencies received before ``before_month``
        (``YYYY-MM``) and not finished before ``day`` (an ordinal): open, or finished on or
        after it."""
        t = self._t("dossiers")
        return self._by_agencies(
            agencies, lambda marks: f"SELECT id, facts FROM {t} WHERE agency IN ({marks}) AND "
                                    f"end_day = -1 AND month < ? UNION ALL SELECT id, facts FROM "
                                    f"{t} WHERE agency IN ({marks}) AND end_day >= ? AND month < ?",
            lambda chunk: [*chunk, before_month, *chunk, day, before_month])

    def _rows_by_agencies(self, agencies: Iterable[str], sql: Callable[[str], str],
                          params: Callable[[list[str]], list[Any]],
                          write: bool = True) -> list[Any]:
        """The rows of a query by agencies, in chunks of 400 agencies (bound parameters are
        limited): ``sql`` gets the chunk's placeholders, ``params`` the chunk."""
        agencies = list(agencies)
        out: list[Any] = []
        with self.tx(write) as c:
            for i in range(0, len(agencies), 400):
                chunk = agencies[i:i + 400]
                c.execute(self._q(sql(",".join("?" * len(chunk)))), params(chunk))
                out.extend(c.fetchall())
        return out

    def _by_agencies(self, agencies: Iterable[str], sql: Callable[[str], str],
                     params: Callable[[list[str]], list[Any]]) -> list[tuple[str, list[Any]]]:
        """(id, decoded facts) of a query by agencies (``_rows_by_agencies``)."""
        return [(r[0], orjson.loads(bytes(r[1])))
                for r in self._rows_by_agencies(agencies, sql, params)]

    def subject_facts(self, kind: str, subject_id: str) -> list[Any] | None:
        with self.tx() as c:
            c.execute(self._q(f"SELECT facts FROM {self._t(kind)} WHERE id=?"), (subject_id,))
            row = c.fetchone()
        return orjson.loads(bytes(row[0])) if row else None

    def drop(self, prefix: str) -> None:
        with self.tx() as c:
            for t in ("cells", "catalog", "dossiers", "feedback", "positions"):
                c.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


# The columns of the subject tables' rows, as ``_subject_row`` gives them.
SUBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "dossiers": ("id", "agency", "month", "judged", "due_day", "end_day", *RISK_COLUMNS, "facts"),
    "feedback": ("id", "agency", "month", "judged", "due_day", "end_day", "facts"),
}


def _subject_row(kind: str, sid: str, f: list[Any]) -> tuple[Any, ...]:
    # Written and freed one by one (``_write``): orjson's bytes need no copy to their size.
    if kind == "dossiers":
        return (sid, f[0], f[1], f[4], f[5], f[END_DAY], *risk_columns(f), orjson.dumps(f))
    return (sid, f[0], f[1], f[4], f[5], -1, orjson.dumps(f))


def _delays(rows: dict[Any, list[int]] | None) -> list[list[Any]]:
    return [[*k, *v] for k, v in (rows or {}).items()]


def _hist(h: dict[int, list[int]]) -> dict[str, list[int]]:
    return {str(day): v for day, v in h.items()}
