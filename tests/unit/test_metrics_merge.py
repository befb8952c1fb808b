"""A child process's Prometheus metrics merged into its parent's ``/metrics``
(kernel.metrics.merge, used by ``motcua up``'s child engine)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kernel import metrics
from kernel.errors import ConfigurationError
from kernel.settings import Settings

PARENT = """# HELP motcua_actions_total Consumed actions by outcome
# TYPE motcua_actions_total counter
motcua_actions_total{outcome="accepted"} 3.0
# HELP motcua_events_folded_total Events folded into the views
# TYPE motcua_events_folded_total counter
motcua_events_folded_total 40.0
# HELP motcua_spool_backlog Spooled actions the engine has not recorded yet
# TYPE motcua_spool_backlog gauge
motcua_spool_backlog 2.0
"""
CHILD = """# HELP motcua_actions_total Consumed actions by outcome
# TYPE motcua_actions_total counter
motcua_actions_total{outcome="accepted"} 37.0
motcua_actions_total{outcome="duplicate"} 1.0
# HELP motcua_engine_position Last recorded offset of motcua.actions
# TYPE motcua_engine_position gauge
motcua_engine_position{partition="0"} 12.0
# HELP motcua_spool_backlog Spooled actions the engine has not recorded yet
# TYPE motcua_spool_backlog gauge
motcua_spool_backlog 5.0
# HELP motcua_engine_batch_seconds Time to record one engine batch
# TYPE motcua_engine_batch_seconds histogram
motcua_engine_batch_seconds_bucket{le="0.5"} 4.0
motcua_engine_batch_seconds_bucket{le="+Inf"} 4.0
motcua_engine_batch_seconds_count 4.0
motcua_engine_batch_seconds_sum 0.75
"""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_counters_are_summed_gauges_take_the_largest_and_the_rest_is_kept() -> None:
    """3 + 37 accepted actions; the child's own samples (duplicates, its position, its
    histogram) as they are; the spool backlog both report is the larger reading."""
    got = _samples(metrics.merge([PARENT, CHILD]))
    assert got[("motcua_actions_total", (("outcome", "accepted"),))] == 40.0
    assert got[("motcua_actions_total", (("outcome", "duplicate"),))] == 1.0
    assert got[("motcua_events_folded_total", ())] == 40.0
    assert got[("motcua_engine_position", (("partition", "0"),))] == 12.0
    assert got[("motcua_spool_backlog", ())] == 5.0
    assert got[("motcua_engine_batch_seconds_count", ())] == 4.0
    assert got[("motcua_engine_batch_seconds_sum", ())] == 0.75
    assert got[("motcua_engine_batch_seconds_bucket", (("le", "0.5"),))] == 4.0


def test_render_merges_the_files_of_children_and_skips_a_missing_one(tmp_path: Path) -> None:
    """``render`` adds what a child wrote (``write_metrics``) to this process's own metrics; a
    file not written yet is no error."""
    child = tmp_path / "child.prom"
    # A partition no other test of this process sets: the registry is the process's own.
    child.write_text(CHILD.replace('partition="0"', 'partition="977"'))
    before = _samples(metrics.render().decode())
    metrics.FOREIGN[:] = [child, tmp_path / "not-yet.prom"]
    try:
        got = _samples(metrics.render().decode())
    finally:
        metrics.FOREIGN.clear()
    key = ("motcua_engine_position", (("partition", "977"),))
    assert key not in before and got[key] == 12.0
    accepted = ("motcua_actions_total", (("outcome", "accepted"),))
    assert got[accepted] == before.get(accepted, 0.0) + 37.0


def test_write_metrics_writes_what_render_reads(tmp_path: Path) -> None:
    """A child's file holds this process's registry in the text format, and its own process
    figures under the child engine's name (``motcua_engine_process_*``), where ``render``
    names them ``motcua_process_*``: merged, the two stay apart."""
    path = tmp_path / "m.prom"
    metrics.write_metrics(path)
    written, rendered = _samples(path.read_text()), _samples(metrics.render().decode())

    def registry(samples: dict[Any, float]) -> dict[Any, float]:
        return {k: v for k, v in samples.items() if "process_" not in k[0]}

    assert registry(written) == registry(rendered)
    fds = len(os.listdir("/proc/self/fd"))
    assert abs(written[("motcua_engine_process_open_fds", ())] - fds) <= 3
    assert abs(rendered[("motcua_process_open_fds", ())] - fds) <= 3
    assert not any(k[0].startswith("motcua_process_") for k in written)
    metrics.FOREIGN[:] = [path]
    try:
        both = _samples(metrics.render().decode())
    finally:
        metrics.FOREIGN.clear()
    assert ("motcua_engine_process_resident_memory_bytes", ()) in both
    assert ("motcua_process_resident_memory_bytes", ()) in both


def test_engine_process_setting_defaults_to_on_and_refuses_a_non_flag() -> None:
    """``MOTCUA_ENGINE_PROCESS``: unset is on, 0 is off, anything else is named in the error."""
    assert Settings.from_env({}).engine_process is True
    assert Settings.from_env({"MOTCUA_ENGINE_PROCESS": "0"}).engine_process is False
    try:
        Settings.from_env({"MOTCUA_ENGINE_PROCESS": "two"})
    except ConfigurationError as e:
        assert "MOTCUA_ENGINE_PROCESS" in str(e)
    else:
        raise AssertionError("a bad MOTCUA_ENGINE_PROCESS was accepted")


def test_a_childs_unreachable_dependencies_are_in_the_parents_health(tmp_path: Path) -> None:
    """What a child cannot reach (written by its ``Health.write``) makes the parent's report
    degraded, naming the child's part; a file not written yet is no error."""
    from kernel.health import Health

    child, parent = Health(), Health()
    child.down("engine", "database", OSError("no such table"))
    path = tmp_path / "child.health.json"
    child.write(path)
    parent.foreign[:] = [path, tmp_path / "not-yet.health.json"]
    report = parent.report()
    assert report["status"] == "degraded"
    assert [(d["part"], d["dependency"]) for d in report["degraded"]] == [("engine", "database")]
    child.up("engine")
    child.write(path)
    assert parent.report() == {"status": "ok", "degraded": []}
