"""Publishing a period and verifying a publication: the steps, in order.

``publish``: freeze the views as recorded at T and build the content (``publication``), take its
canonical JSON and SHA-256, make the files from that content (``exports``, ``exports_pdf``),
then store the row and its files in one transaction (``publication_store``). Everything that can
fail on the user's input fails before anything is written.

``verify``: the stored content must still hash to its SHA-256 and each stored file to its own;
then the content is recomputed from the event store as recorded at the same T, under the same
ruleset, and compared value by value.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from projections.exports import to_csv, to_xlsx
from projections.exports_pdf import to_pdf
from projections.periods import Period, parse_instant, parse_period
from projections.publication import SECTIONS, Section, canonical, compute, differences
from projections.publication_store import Publication, PublicationStore
from projections.replay import Progress, Replayer
from projections.ruleset import Ruleset

log = structlog.get_logger("motcua.publishing")


def render_files(content: dict[str, Any], sha256: str) -> dict[str, bytes]:
    """The CSV, XLSX and PDF of a content."""
    return {"csv": to_csv(content), "xlsx": to_xlsx(content, sha256),
            "pdf": to_pdf(content, sha256)}


def publish(replayer: Replayer, store: PublicationStore, period: Period, at: datetime,
            ruleset: Ruleset, *, progress: Progress | None = None,
            sections: Sequence[Section] = SECTIONS) -> Publication:
    """Freeze ``period`` as recorded at ``at`` and store it as the period's next version."""
    t0 = time.perf_counter()
    content = compute(replayer, period, at, ruleset, progress=progress, sections=sections)
    data = canonical(content)
    sha = hashlib.sha256(data).hexdigest()
    files = render_files(content, sha)
    pub = store.add(period=period.label, recorded_at=content["recorded_at"],
                    ruleset=ruleset.name, content=data, sha256=sha, files=files)
    log.info("publication_stored", period=pub.period, version=pub.version,
             recorded_at=pub.recorded_at, sha256=sha, ruleset=ruleset.name,
             bytes={f.kind: f.size for f in pub.files},
             seconds=round(time.perf_counter() - t0, 3))
    return pub


@dataclass(frozen=True)
class Verdict:
    publication: Publication
    differences: tuple[str, ...]

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {**self.publication.summary(), "identical": self.identical,
                "differences": list(self.differences)}


def verify(replayer: Replayer, store: PublicationStore, pub: Publication,
           rulesets: Callable[[str], Ruleset], *, progress: Progress | None = None,
           sections: Sequence[Section] = SECTIONS) -> Verdict:
    """Check a stored publication against its hashes and against a recomputation."""
    problems = stored_problems(store, pub)
    try:
        published = orjson.loads(pub.content)
    except orjson.JSONDecodeError as e:
        return Verdict(pub, (*problems, f"The stored content is not JSON: {e}."))
    at = parse_instant(pub.recorded_at, "recorded_at")
    recomputed = compute(replayer, parse_period(pub.period), at, rulesets(pub.ruleset),
                         progress=progress, sections=sections)
    return Verdict(pub, (*problems, *differences(published, recomputed)))


def stored_problems(store: PublicationStore, pub: Publication) -> list[str]:
    """Where the stored row no longer matches its own hashes (an edit in the database)."""
    out = []
    try:
        content_sha = hashlib.sha256(canonical(orjson.loads(pub.content))).hexdigest()
    except orjson.JSONDecodeError:
        content_sha = hashlib.sha256(pub.content).hexdigest()
    if content_sha != pub.sha256:
        out.append(f"The stored content's SHA-256 is {content_sha}, not the published "
                   f"{pub.sha256}: the content was changed after publication.")
    bodies = store.file_bodies(pub.period, pub.version)
    for f in pub.files:
        actual = hashlib.sha256(bodies.get(f.kind, b"")).hexdigest()
        if actual != f.sha256:
            out.append(f"The stored file {f.name} has SHA-256 {actual}, not the published "
                       f"{f.sha256}: the file was changed after publication.")
    return out
