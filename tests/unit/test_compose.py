"""docker-compose.yml is checked against the real CLI and settings (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from kernel.settings import Settings
from motcua.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _expand(value: str) -> str:
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_brings_kafka_postgres_and_the_three_roles() -> None:
    """The production shape has a KRaft Kafka, PostgreSQL, and engine, projection and API."""
    services = _compose()["services"]
    assert {"kafka", "postgres", "engine", "projection", "api"} <= set(services)
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]


@pytest.mark.parametrize("service,command", [("engine", "engine"), ("projection", "project"),
                                             ("api", "serve")])
def test_each_role_command_parses_with_the_real_cli(service: str, command: str) -> None:
    """Every motcua service runs a command the real argument parser accepts, for its role."""
    cmd = _compose()["services"][service]["command"]
    assert cmd[0] == "motcua"
    args = build_parser().parse_args(cmd[1:])
    assert args.command == command
    assert callable(args.fn)


@pytest.mark.parametrize("service", ["engine", "projection", "api"])
def test_each_role_environment_is_valid_settings(service: str) -> None:
    """Each role's environment reads into valid settings: PostgreSQL and an external Kafka."""
    env = {k: _expand(str(v)) for k, v in _compose()["services"][service]["environment"].items()}
    s = Settings.from_env(env)
    assert s.is_postgres
    assert s.kafka_bootstrap == "kafka:9092"
    database = s.public_view()["database"]
    assert isinstance(database, str)
    assert "***" in database


def test_engine_and_projection_are_replicated_over_six_partitions() -> None:
    """Several engine and projection processes share the topics' partitions (consumer groups)."""
    services = _compose()["services"]
    for role in ("engine", "projection"):
        assert services[role]["deploy"]["replicas"] >= 2
        assert int(services[role]["environment"]["MOTCUA_PARTITIONS"]) >= 6
