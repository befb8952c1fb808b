"""The view store: counters, catalog, subject facts and positions, written in ONE transaction.

On SQLite the views live in their own file beside the event store (``…-views.db``) so that the
engine and the projection never wait on each other's write lock; on PostgreSQL they are tables
of the same database. ``prefix`` names a table set, so a replay can build a shadow set and swap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from projections.fold import Counters


GENERATION = "generation"


class StaleViewsError(RuntimeError):
    """The tables were swapped by a replay under a running projection."""


def views_url(database_url: str) -> str:
    """Where the views of a store live."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '-views' + (path.suffix or '.db'))}"
    return database_url


class ViewStore:
    """Persistence of the projection's state; both dialects behind one small API."""

    def __init__(self, url: str, prefix: str = "proj") -> None:
        self.url = url
        self.prefix = prefix
        self.is_pg = not url.startswith("sqlite:///")
        if self.is_pg:
            import psycopg

            self._conn: Any = psycopg.connect(url, autocommit=False)
            self.ph = "%s"
        else:
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self.ph = "?"
        self.create_tables()

    def close(self) -> None:
        self._conn.close()

    def _t(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def _q(self, sql: str) -> str:
        return sql if self.ph == "?" else sql.replace("?", "%s")

    @contextmanager
    def tx(self) -> Iterator[Any]:
        if self.is_pg:
            with self._conn.transaction():
                with self._conn.cursor() as cur:
                    yield cur
        else:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def create_tables(self, prefix: str | None = None) -> None:
        p = prefix or self.prefix
        blob = "BYTEA" if self.is_pg else "BLOB"
        with self.tx() as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_cells (agency TEXT NOT NULL, month TEXT "
                      f"NOT NULL, kind TEXT NOT NULL, body {blob} NOT NULL, "
                      "PRIMARY KEY (agency, month, kind))")
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_catalog (kind TEXT NOT NULL, id TEXT NOT "
                      f"NULL, body {blob} NOT NULL, PRIMARY KEY (kind, id))")
            for kind in ("dossiers", "feedback"):
                c.execute(f"CREATE TABLE IF NOT EXISTS {p}_{kind} (id TEXT PRIMARY KEY, "
                          "agency TEXT NOT NULL, month TEXT NOT NULL, judged INTEGER NOT NULL, "
                          f"due_day INTEGER NOT NULL, facts {blob} NOT NULL)")
                c.execute(f"CREATE INDEX IF NOT EXISTS {p}_{kind}_am ON {p}_{kind} "
                          "(agency, month)")
            c.execute(f"CREATE TABLE IF NOT EXISTS {p}_positions (name TEXT PRIMARY KEY, "
                      "value BIGINT NOT NULL)")

    # ----- write ---------------------------------------------------------------------------

    def flush(self, counters: Counters, positions: dict[str, int],
              generation: int | None = None) -> None:
        """Write what changed and the new positions together, then forget what changed.

        With ``generation``, refuse (``StaleViewsError``) if a replay swapped the tables since
        the caller loaded them: its counters no longer describe these tables.
        """
        with self.tx() as c:
            if generation is not None:
                current = self._generation(c)
                if current != generation:
                    raise StaleViewsError(
                        f"The views were replaced (generation {current}, not {generation}).")
            self._write(c, counters, positions)
        counters.clear_dirty()

    def _generation(self, c: Any) -> int:
        c.execute(self._q(f"SELECT value FROM {self._t('positions')} WHERE name=?"),
                  (GENERATION,))
        row = c.fetchone()
        return int(row[0]) if row else 0

    def generation(self) -> int:
        with self.tx() as c:
            return self._generation(c)

    def _write(self, c: Any, counters: Counters, positions: dict[str, int]) -> None:
        up_cell = self._q(f"INSERT INTO {self._t('cells')} (agency, month, kind, body) VALUES "
                          "(?,?,?,?) ON CONFLICT (agency, month, kind) DO UPDATE SET "
                          "body=excluded.body")
        rows = [(a, m, "d", orjson.dumps({"c": counters.cells[(a, m)],
                                            "open": _hist(counters.open_due[(a, m)]),
                                            "procs": counters.procs[(a, m)]}))
                for a, m in counters.dirty_cells]
        rows += [(a, m, "f", orjson.dumps({"c": counters.fb_cells[(a, m)],
                                             "open": _hist(counters.fb_open_due[(a, m)])}))
                 for a, m in counters.dirty_fb]
        if rows:
            c.executemany(up_cell, rows)
        cat = []
        for kind, key in counters.dirty_catalog:
            src = counters.procedures if kind == "procedure" else counters.agencies
            cat.append((kind, key, orjson.dumps(src[key])))
        if cat:
            c.executemany(self._q(f"INSERT INTO {self._t('catalog')} (kind, id, body) VALUES "
                                  "(?,?,?) ON CONFLICT (kind, id) DO UPDATE SET "
                                  "body=excluded.body"), cat)
        for kind, facts in (("dossiers", counters.dossiers), ("feedback", counters.feedback)):
            if facts:
                c.executemany(self._q(
                    f"INSERT INTO {self._t(kind)} (id, agency, month, judged, due_day, facts) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET agency=excluded.agency, "
                    "month=excluded.month, judged=excluded.judged, due_day=excluded.due_day, "
                    "facts=excluded.facts"),
                    [(sid, f[0], f[1], f[4], f[5], orjson.dumps(f)) for sid, f in facts.items()])
        if positions:
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

    def load(self) -> Counters:
        """The whole projection state (agencies × months; small by design)."""
        with self.tx() as c:
            return self._load(c)

    def _load(self, c: Any) -> Counters:
        k = Counters()
        c.execute(f"SELECT agency, month, kind, body FROM {self._t('cells')}")
        for agency, month, kind, body in c.fetchall():
            doc = orjson.loads(bytes(body))
            key = (agency, month)
            hist = {int(day): v for day, v in doc["open"].items()}
            if kind == "d":
                k.cells[key] = doc["c"]
                k.open_due[key] = hist
                k.procs[key] = doc["procs"]
            else:
                k.fb_cells[key] = doc["c"]
                k.fb_open_due[key] = hist
        c.execute(f"SELECT kind, id, body FROM {self._t('catalog')}")
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

    def subject_rows(self, kind: str, agencies: Iterable[str], months: Sequence[str],
                     where: str = "1=1", params: Sequence[Any] = ()) -> list[tuple[str, list[Any]]]:
        """(id, facts) of the dossiers or feedback of these agencies and reception months."""
        agencies = list(agencies)
        out: list[tuple[str, list[Any]]] = []
        if not agencies or not months:
            return out
        with self.tx() as c:
            for i in range(0, len(agencies), 400):
                chunk = agencies[i:i + 400]
                c.execute(self._q(
                    f"SELECT id, facts FROM {self._t(kind)} WHERE agency IN "
                    f"({','.join('?' * len(chunk))}) AND month IN ({','.join('?' * len(months))})"
                    f" AND {where}"), [*chunk, *months, *params])
                out.extend((r[0], orjson.loads(bytes(r[1]))) for r in c.fetchall())
        return out

    def subject_facts(self, kind: str, subject_id: str) -> list[Any] | None:
        with self.tx() as c:
            c.execute(self._q(f"SELECT facts FROM {self._t(kind)} WHERE id=?"), (subject_id,))
            row = c.fetchone()
        return orjson.loads(bytes(row[0])) if row else None

    def drop(self, prefix: str) -> None:
        with self.tx() as c:
            for t in ("cells", "catalog", "dossiers", "feedback", "positions"):
                c.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


def _hist(h: dict[int, list[int]]) -> dict[str, list[int]]:
    return {str(day): v for day, v in h.items()}
