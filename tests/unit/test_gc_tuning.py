"""The ``motcua`` command tunes the garbage collector for its process (``tune_gc``), and only
when it is the process's own command: a caller of ``main(argv)`` keeps its collector as it is."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from motcua.cli import main


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_command_s_own_process_gets_rare_collections(
    collector: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Run as the console script runs it (no argv): young collections every 500,000
    allocations, older generations 20 and 100 (Python's defaults: 700, 10, 10), and what
    start-up made frozen out of collections."""
    gc.set_threshold(700, 10, 10)
    monkeypatch.setattr(sys, "argv", ["motcua"])
    assert main() == 2  # no command: the help, and a user's mistake
    assert gc.get_threshold() == (500_000, 20, 100)
    assert gc.get_freeze_count() > 0
    assert "usage: motcua" in capsys.readouterr().out


def test_a_caller_of_main_keeps_its_collector(collector: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``main([...])`` from a test or a tool changes nothing of the caller's collector."""
    gc.set_threshold(700, 10, 10)
    assert main([]) == 2
    assert gc.get_threshold() == (700, 10, 10)
    capsys.readouterr()
