"""Rules of the test suite itself, checked on its source: no fixed sleep orders anything.

A test waits on a condition with a deadline (``faults.wait_for``, a cluster's ``until``, a
browser's ``wait_for_*``); a sleep is allowed only as the pause of such a polling loop. A
clock a test needs to move is injected (the engine's ``wall``, the bridge limiter's ``clock``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def sleeps_outside_loops(source: str) -> list[int]:
    """Lines of ``time.sleep(...)`` / ``sleep(...)`` calls not inside a ``while`` or ``for``
    loop of their own function."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _is_sleep(node.func)):
            continue
        up = parents.get(node)
        while up is not None and not isinstance(
                up, ast.While | ast.For | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            up = parents.get(up)
        if not isinstance(up, ast.While | ast.For):
            bad.append(node.lineno)
    return bad


def _is_sleep(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "sleep" and isinstance(func.value, ast.Name) and (
            func.value.id in ("time", "asyncio"))
    return isinstance(func, ast.Name) and func.id == "sleep"


def test_no_test_sleeps_for_ordering() -> None:
    """Every sleep in tests/ is the pause of a polling loop, never a wait for time to pass."""
    found = {str(p.relative_to(TESTS)): lines for p in sorted(TESTS.rglob("*.py"))
             if (lines := sleeps_outside_loops(p.read_text("utf-8")))}
    assert found == {}, f"fixed sleeps (wait on a condition instead): {found}"


def test_the_rule_finds_a_fixed_sleep() -> None:
    """The check itself: a bare sleep is found, a polling loop's pause is not."""
    fixed = "import time\ndef t():\n    go()\n    time.sleep(2.5)\n    check()\n"
    polled = "import time\ndef t():\n    while not done():\n        time.sleep(0.05)\n"
    assert sleeps_outside_loops(fixed) == [4]
    assert sleeps_outside_loops(polled) == []


def claimed_tests(text: str) -> list[tuple[str, str | None]]:
    """The ``file::test`` references of docs/claims.md, in order; ``::test`` alone refers to
    the last file named, and ``…`` to any test of it."""
    out: list[tuple[str, str | None]] = []
    last = ""
    for path, name in re.findall(r"`((?:unit|integration|e2e)/test_\w+\.py)?(?:::(\w+|…))?",
                                 text):
        if path:
            last = path
        if not (path or name):
            continue
        out.append((last, None if name in ("", "…") else name))
    return out


def test_the_claims_table_names_tests_that_exist() -> None:
    """Every test docs/claims.md names as a proof exists (a rename must update the table)."""
    text = (ROOT / "docs" / "claims.md").read_text("utf-8")
    refs = claimed_tests(text)
    assert len(refs) > 100
    missing = []
    for path, name in refs:
        source = TESTS / path
        if not source.exists():
            missing.append(path)
        elif name is not None and not re.search(rf"^def {name}\(", source.read_text("utf-8"),
                                                re.MULTILINE):
            missing.append(f"{path}::{name}")
    for bench in re.findall(r"`(benchmarks/\w+\.py)`", text):
        if not (ROOT / bench).exists():
            missing.append(bench)
    assert missing == []
