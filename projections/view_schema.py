"""The view store's subject tables as they grew: the columns and secondary indexes that views
written before them get when a ``ViewStore`` opens them (``ensure``), and after a replay's swap.

Every function takes an open cursor ``c`` of the store's transaction and the table set ``p``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from projections.facts import END_DAY, RISK_COLUMNS, risk_columns

# The delays query reads the unfinished (end_day -1) dossiers late at a view's end: judged late
# for good (0), or open (-1) and due before the view's end day, of some agencies and months.
LATE_INDEX = ("agency", "end_day", "judged", "due_day", "month")
# Every secondary index of the subject tables: (table, name suffix, columns). Ensured by their
# columns (``ensure_indexes``): a replay's swap renames tables, and index names (per schema)
# travel with them, so a name may be taken by another table set's index.
INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("dossiers", "am", ("agency", "month")),
    ("feedback", "am", ("agency", "month")),
    # The dossiers carried over into a period.
    ("dossiers", "end", ("agency", "end_day")),
    # The at-risk list: unfinished dossiers by due day.
    ("dossiers", "due", ("end_day", "due_day")),
    # The delays query: only the unfinished late dossiers, not every unfinished one.
    ("dossiers", "late", LATE_INDEX),
)
# The columns added after the first views were written, per subject table, with their SQL
# (types valid on both dialects). end_day: a dossier's END_DAY fact (-1 while unfinished;
# always -1 for feedback). RISK_COLUMNS: what the at-risk list reads of a dossier besides the
# indexed columns (its holder, due instant, flags, procedure), so that it decodes no facts.
ADDED: dict[str, dict[str, str]] = {
    "dossiers": {"end_day": "INTEGER NOT NULL DEFAULT -1",
                 "procedure": "TEXT NOT NULL DEFAULT ''", "flags": "BIGINT NOT NULL DEFAULT 0",
                 "due_s": "BIGINT NOT NULL DEFAULT -1", "holder_unit": "TEXT",
                 "holder_official": "TEXT", "holder_step": "TEXT"},
    "feedback": {"end_day": "INTEGER NOT NULL DEFAULT -1"},
}
assert tuple(ADDED["dossiers"])[1:] == RISK_COLUMNS


def subject_table_sql(p: str, kind: str, blob: str) -> str:
    """The CREATE TABLE of a subject table (``dossiers`` or ``feedback``) with every column."""
    added = "".join(f", {name} {sql}" for name, sql in ADDED[kind].items())
    return (f"CREATE TABLE IF NOT EXISTS {p}_{kind} (id TEXT PRIMARY KEY, agency TEXT NOT NULL, "
            "month TEXT NOT NULL, judged INTEGER NOT NULL, due_day INTEGER NOT NULL, "
            f"facts {blob} NOT NULL{added})")


def ensure_columns(c: Any, p: str, is_pg: bool, q: Callable[[str], str]) -> None:
    """Views written before a column of ``ADDED`` existed get it; the dossiers' new columns
    are filled from each dossier's facts (``q``: the store's placeholder translation)."""
    if not _missing(c, p, is_pg):
        return
    if is_pg:  # another process may be adding them: take turns, then look again
        c.execute("SELECT pg_advisory_xact_lock(7660002)")
    missing = _missing(c, p, is_pg)
    for kind, names in missing.items():
        for name in names:
            c.execute(f"ALTER TABLE {p}_{kind} ADD COLUMN {name} {ADDED[kind][name]}")
    if missing.get("dossiers"):
        c.execute(f"SELECT id, facts FROM {p}_dossiers")
        rows = []
        for sid, body in c.fetchall():
            f = orjson.loads(bytes(body))
            rows.append((f[END_DAY], *risk_columns(f), sid))
        sets = ", ".join(f"{n}=?" for n in ("end_day", *RISK_COLUMNS))
        c.executemany(q(f"UPDATE {p}_dossiers SET {sets} WHERE id=?"), rows)


def _missing(c: Any, p: str, is_pg: bool) -> dict[str, list[str]]:
    """The columns of ``ADDED`` each subject table lacks (only tables that lack some)."""
    out = {}
    for kind, added in ADDED.items():
        if is_pg:
            c.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                      "current_schema() AND table_name = %s", (f"{p}_{kind}",))
            have = {r[0] for r in c.fetchall()}
        else:
            c.execute(f"PRAGMA table_info({p}_{kind})")
            have = {r[1] for r in c.fetchall()}
        lacking = [n for n in added if n not in have]
        if lacking:
            out[kind] = lacking
    return out


def ensure_indexes(c: Any, p: str, is_pg: bool) -> None:
    """Every index of ``INDEXES`` on the table set ``p``, on views written before one of
    them existed too. Found by its columns, not its name: a name may be taken by the index
    of another table set (a swapped one), and then another free name is used."""
    missing = [(t, n, cols) for t, n, cols in INDEXES
               if index_names(c, is_pg, f"{p}_{t}", cols) is None]
    if not missing:
        return
    if is_pg:  # another process may be adding them: take turns, then look again
        c.execute("SELECT pg_advisory_xact_lock(7660002)")
    for table, suffix, cols in missing:
        if index_names(c, is_pg, f"{p}_{table}", cols) is not None:
            continue
        taken = index_names(c, is_pg, f"{p}_{table}", None) or set()
        name = next(n for n in (f"{p}_{table}_{suffix}{i or ''}"
                                for i in range(len(taken) + 1)) if n not in taken)
        c.execute(f"CREATE INDEX {name} ON {p}_{table} ({', '.join(cols)})")


def index_names(c: Any, is_pg: bool, table: str,
                columns: tuple[str, ...] | None) -> set[str] | None:
    """With ``columns``: the names of the indexes of ``table`` on exactly these columns, or
    None if there is none. Without: every index name of the schema."""
    if is_pg:
        if columns is None:
            c.execute("SELECT relname FROM pg_class WHERE relkind = 'i' AND "
                      "relnamespace = current_schema()::regnamespace")
            return {r[0] for r in c.fetchall()}
        c.execute("SELECT ix.indexrelid::regclass::text, array(SELECT a.attname FROM "
                  "unnest(ix.indkey) WITH ORDINALITY k(num, ord) JOIN pg_attribute a ON "
                  "a.attrelid = ix.indrelid AND a.attnum = k.num ORDER BY k.ord) FROM "
                  "pg_index ix WHERE ix.indrelid = to_regclass(%s)", (table,))
        found = {r[0] for r in c.fetchall() if tuple(r[1]) == columns}
    else:
        if columns is None:
            c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            return {r[0] for r in c.fetchall()}
        c.execute(f"PRAGMA index_list({table})")
        found = set()
        for name in [r[1] for r in c.fetchall()]:
            c.execute(f"PRAGMA index_info({name})")
            if tuple(r[2] for r in sorted(c.fetchall())) == columns:
                found.add(name)
    return found or None
