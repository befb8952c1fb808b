"""``motcua status`` with a broker that does not answer: said once, not asked again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel import kafka as K
from motcua import status as S
from motcua.pipeline import engine_at
from projections.store import ViewStore, views_url


def test_a_broker_that_does_not_answer_is_said_once_and_not_asked_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The positions the stores know are shown; the broker's address and why it is not
    reached come first; no end or log id is asked of it afterwards (each question would
    wait its own timeout)."""
    url = f"sqlite:///{tmp_path}/motcua.db"
    engine = engine_at(url)
    views = ViewStore(views_url(url))
    asked: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        asked.append("asked")
        raise AssertionError("the broker was asked again")

    monkeypatch.setattr(S, "REACH_S", 0.3)
    monkeypatch.setattr(K, "end_offsets", refuse)
    monkeypatch.setattr(K.LogIdentity, "of", refuse)
    try:
        s = S.status(engine, views, "127.0.0.1:1", None)
    finally:
        views.close()
        engine.close()
    assert asked == []
    assert s["broker"] == "127.0.0.1:1" and "127.0.0.1:1" in s["broker_unreachable"]
    assert all(r["end"] is None and r["lag"] is None for r in s["engine"] + s["projection"])
    first = S.format_status(s)[0]
    assert first.startswith("broker 127.0.0.1:1: ") and "Ends and lags are unknown." in first
