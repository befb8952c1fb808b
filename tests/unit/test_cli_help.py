"""Every ``motcua`` command has ``--help`` (README, "What a user can do"; contract/interface.md).

The commands are found by walking the real parser, so a command added later is checked too.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from motcua.cli import build_parser, main

README_COMMANDS = {"demo", "up", "engine", "project", "serve", "ingest", "scores", "ranking",
                   "overdue", "history", "explain", "replay", "status", "tokens", "score",
                   "simulate"}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[str, ...]]:
    """Every command path of the parser (``("tokens", "add")``, …)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from commands(sub, (*path, name))


ALL = sorted(commands(build_parser()))


def test_the_readme_s_commands_are_all_there() -> None:
    """The commands the README's table lists are commands of the parser."""
    assert {c[0] for c in ALL} >= README_COMMANDS


@pytest.mark.parametrize("path", ALL, ids=[" ".join(c) for c in ALL])
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """``motcua … --help`` prints the command's usage and a description, and exits 0."""
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: motcua {' '.join(path)}"), out[:200]
    assert len(out.splitlines()) > 3
