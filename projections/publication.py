"""Publications (spec/publication.md §1): a period's official figures, frozen as recorded at T.

A publication's content is built from the views *as recorded at T* through the ordinary view
functions: ``Replayer.as_recorded`` (the code path of ``scores --as-recorded``) folds the facts
recorded by T into counters and writes every dossier's latest facts into a scratch table set,
and each section below runs the same query the CLI and the API run on the live views, with
now = T. The content is a list of sections, so adding one (the delays list) is one line.

Canonical JSON (what the SHA-256 is taken of): the content serialized by orjson with keys sorted
at every level, no whitespace, UTF-8 (non-ASCII characters written as themselves, not escaped),
integers as integers and floats in their shortest round-trip form, exactly as the scorecard JSON
writes them (``17.72``, ``20``, ``20.0`` for a float that happens to be whole).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from kernel.calendar import VN_TZ
from kernel.errors import UserError
from projections.delays import delays
from projections.fold import Counters
from projections.periods import Period
from projections.replay import Progress, Replayer
from projections.ruleset import Ruleset
from projections.store import ViewStore
from projections.views import Tree, overdue_list, ranking, scorecard

FORMAT = "motcua.publication/1"


class PublicationError(UserError):
    """A publication that cannot be made or found (a bad period, a time in the future)."""


@dataclass(frozen=True)
class Frozen:
    """The views as recorded at T: what every section reads."""

    counters: Counters
    store: ViewStore  # a table set holding every dossier's facts as recorded at T
    ruleset: Ruleset
    period: Period
    at: datetime  # T, also the views' now
    tree: Tree

    @property
    def roots(self) -> list[str]:
        """The publishing authorities: agencies with no parent (a province, a ministry)."""
        return sorted(a for a, p in self.tree.parent.items() if p is None)


Section = tuple[str, Callable[[Frozen], Any]]


def _scorecards(f: Frozen) -> list[dict[str, Any]]:
    return [scorecard(f.counters, f.ruleset, a, f.period, f.at, f.tree)
            for a in sorted(f.tree.parent)]


def _ranking(f: Frozen) -> dict[str, Any]:
    return ranking(f.counters, f.ruleset, f.period, f.at)


def _late_dossiers(f: Frozen) -> list[dict[str, Any]]:
    """Each publishing authority's late list (its rows name their own agency, so a unit's
    list is the rows of its subtree)."""
    out = []
    for root in f.roots:
        rows = f.store.late_rows(sorted(f.tree.subtree(root)), f.period.months)
        doc = overdue_list(rows, f.counters, f.ruleset, root, f.period, f.at)
        for d in doc["dossiers"]:
            d["procedure_name"] = f.counters.procedures.get(d["procedure_id"], {}).get("name")
        out.append(doc)
    return out


def per_root(fn: Callable[[Frozen, str], list[dict[str, Any]]]) -> Callable[[Frozen], Any]:
    """A section made of ``fn(frozen, root)`` for each publishing authority, concatenated
    (e.g. the delays list by unit and by official of each root)."""
    return lambda f: [doc for root in f.roots for doc in fn(f, root)]


def _delays(f: Frozen, root: str) -> list[dict[str, Any]]:
    """Who made the root's late dossiers late, by unit and by official (accountability §4):
    a published monthly report is where official rows are made public."""
    return [delays(f.counters, f.store.unfinished_late_rows, f.ruleset, root, f.period, f.at,
                   by) for by in ("unit", "official")]


# The content, in order; each delays item is exactly the JSON of `motcua delays --json`.
SECTIONS: tuple[Section, ...] = (
    ("scorecards", _scorecards),
    ("ranking", _ranking),
    ("late_dossiers", _late_dossiers),
    ("delays", per_root(_delays)),
)


def iso(t: datetime) -> str:
    """An instant as the publication writes it: Vietnam time, to the microsecond if any."""
    return t.astimezone(VN_TZ).isoformat()


def build_content(f: Frozen, sections: Sequence[Section] = SECTIONS) -> dict[str, Any]:
    """The publication's content: what it is of, then every section."""
    content: dict[str, Any] = {
        "format": FORMAT, "period": f.period.label, "recorded_at": iso(f.at),
        "view_end": f.period.view_end(f.at).astimezone(VN_TZ).isoformat(timespec="seconds"),
        "ruleset": f.ruleset.name,
    }
    for key, fn in sections:
        content[key] = fn(f)
    return content


def canonical(content: Any) -> bytes:
    """The canonical JSON of a content (see the module's docstring)."""
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_period(period: Period, at: datetime) -> None:
    """Refuse what cannot be published: a period not begun by T (a T in the future is refused
    where it is read, ``projections.periods.parse_recorded_by``)."""
    if period.start > at.astimezone(VN_TZ).date():
        raise PublicationError(
            f"Period {period.label} begins on {period.start.isoformat()}, after the recording "
            f"instant {iso(at)}: there is nothing of it to publish yet.")


# ----- the views as recorded at T ------------------------------------------------------------


@contextmanager
def scratch_store(views: ViewStore) -> Iterator[ViewStore]:
    """An empty table set of its own for one freeze, removed afterwards: a file beside the
    views on SQLite (no wait on the live projection's write lock), uniquely named tables on
    PostgreSQL."""
    tag = secrets.token_hex(6)
    if views.is_pg:
        store = ViewStore(views.url, prefix=f"pub_{tag}", layout=views.layout)
        try:
            yield store
        finally:
            store.drop(store.prefix)
            store.close()
        return
    path = Path(views.url.removeprefix("sqlite:///"))
    scratch = path.with_name(f"{path.stem}-publish-{tag}.db")
    store = ViewStore(f"sqlite:///{scratch}", layout=views.layout)
    try:
        yield store
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{scratch}{suffix}").unlink(missing_ok=True)


def compute(replayer: Replayer, period: Period, at: datetime, ruleset: Ruleset | Callable[
        [Period, datetime], Ruleset], *, progress: Progress | None = None,
        sections: Sequence[Section] = SECTIONS) -> dict[str, Any]:
    """The content of a publication of ``period`` as recorded at ``at``, under ``ruleset`` (or
    the one a function picks for the view)."""
    with scratch_store(replayer.views) as scratch:
        counters = replayer.as_recorded(at, progress=progress, into=scratch,
                                        subjects_of=period.months)
        rules = ruleset if isinstance(ruleset, Ruleset) else ruleset(period, at)
        frozen = Frozen(counters, scratch, rules, period, at, Tree.build(counters))
        return build_content(frozen, sections)


# ----- comparing a publication with its recomputation ----------------------------------------

_ID_FIELDS = ("agency_id", "by", "key", "code", "dossier_id", "unit", "official")


def differences(published: Any, recomputed: Any, path: str = "content") -> list[str]:
    """Every place two contents differ, named by a path of keys and item ids."""
    if isinstance(published, dict) and isinstance(recomputed, dict):
        out: list[str] = []
        for k in sorted(set(published) | set(recomputed)):
            where = f"{path}.{k}"
            if k not in recomputed:
                out.append(f"{where}: published {_show(published[k])}, not in the recomputation")
            elif k not in published:
                out.append(f"{where}: not published, recomputed {_show(recomputed[k])}")
            else:
                out += differences(published[k], recomputed[k], where)
        return out
    if isinstance(published, list) and isinstance(recomputed, list):
        return _list_differences(published, recomputed, path)
    if published != recomputed or type(published) is not type(recomputed):
        return [f"{path}: published {_show(published)}, recomputed {_show(recomputed)}"]
    return []


def _item_id(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    parts = [str(item[f]) for f in _ID_FIELDS if f in item]
    return "/".join(parts) if parts else None


def _list_differences(a: list[Any], b: list[Any], path: str) -> list[str]:
    ids_a, ids_b = [_item_id(x) for x in a], [_item_id(x) for x in b]
    keyed = (None not in ids_a and None not in ids_b and len(set(ids_a)) == len(ids_a)
             and len(set(ids_b)) == len(ids_b))
    if not keyed:
        out = [f"{path}: published {len(a)} items, recomputed {len(b)}"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    by_b = dict(zip(ids_b, b, strict=True))
    out = []
    for ident, x in zip(ids_a, a, strict=True):
        if ident not in by_b:
            out.append(f"{path}[{ident}]: published, not in the recomputation")
        else:
            out += differences(x, by_b[ident], f"{path}[{ident}]")
    seen = set(ids_a)
    out += [f"{path}[{ident}]: not published, in the recomputation"
            for ident in ids_b if ident not in seen]
    if not out and ids_a != ids_b:
        out.append(f"{path}: the same items in another order")
    return out


def _show(v: Any) -> str:
    text = orjson.dumps(v).decode()
    return text if len(text) <= 80 else text[:77] + "…"
