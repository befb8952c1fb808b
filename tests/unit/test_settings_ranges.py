"""Every MOTCUA_* setting is checked at start (issue 10 item 6): out-of-range numbers, unknown
choices and missing files are a ConfigurationError naming the variable; good values pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import ConfigurationError
from kernel.settings import Settings


@pytest.mark.parametrize(("name", "value"), [
    ("MOTCUA_PARTITIONS", "0"), ("MOTCUA_PARTITIONS", "1025"), ("MOTCUA_PARTITIONS", "-3"),
    ("MOTCUA_HOLD_SECONDS", "-1"), ("MOTCUA_HOLD_SECONDS", "nan"), ("MOTCUA_HOLD_SECONDS", "inf"),
    ("MOTCUA_HOLD_LIMIT", "-1"), ("MOTCUA_LOG_LEVEL", "bogus"), ("MOTCUA_LOG_FORMAT", "xml"),
    ("MOTCUA_ENGINE_CACHE", "999"), ("MOTCUA_ENGINE_CACHE", "lots"),
    ("MOTCUA_HTTP_PORT", "0"), ("MOTCUA_HTTP_PORT", "99999"),
    ("MOTCUA_SESSION_TIMEOUT_MS", "10"),
    ("MOTCUA_DATABASE_URL", "postgresql://u:pw@db:99999/motcua"),
    ("MOTCUA_DATABASE_URL", "postgresql://u:pw@db:0/motcua"),
    ("MOTCUA_DATABASE_URL", "sqlite:///"),
    ("MOTCUA_KAFKA_BOOTSTRAP", "kafka:0"), ("MOTCUA_KAFKA_BOOTSTRAP", "kafka:70000"),
    ("MOTCUA_KAFKA_SASL_MECHANISM", "MD5"),
    ("MOTCUA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
    ("MOTCUA_KAFKA_SSL_CAFILE", "/no/such/ca.pem"),
    ("MOTCUA_RULESET_DIR", "/no/such/dir"), ("MOTCUA_LIFECYCLE_RULES", "/no/such/rules.json"),
    ("MOTCUA_RULESET", "\x00"),
])
def test_a_bad_value_names_its_variable_and_hides_passwords(name: str, value: str,
                                                           tmp_path: Path) -> None:
    """Each bad value is refused with one sentence naming the variable, never a password."""
    with pytest.raises(ConfigurationError) as e:
        Settings.from_env({"MOTCUA_HOME": str(tmp_path), name: value})
    message = str(e.value)
    assert name in message and "\n" not in message and "pw@" not in message


def test_values_at_the_edges_of_their_ranges_pass(tmp_path: Path) -> None:
    """The limits themselves are accepted, and hold seconds may have decimals."""
    s = Settings.from_env({"MOTCUA_HOME": str(tmp_path), "MOTCUA_PARTITIONS": "1024",
                           "MOTCUA_HOLD_SECONDS": "0.5", "MOTCUA_HTTP_PORT": "65535",
                           "MOTCUA_LOG_LEVEL": "WARNING", "MOTCUA_SESSION_TIMEOUT_MS": "500",
                           "MOTCUA_KAFKA_BOOTSTRAP": "k1:1,k2:65535",
                           "MOTCUA_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                           "MOTCUA_KAFKA_SASL_MECHANISM": "scram-sha-512",
                           "MOTCUA_RULESET_DIR": str(tmp_path), "MOTCUA_ENGINE_CACHE": "1000"})
    assert (s.partitions, s.hold_seconds, s.http_port, s.log_level) == (1024, 0.5, 65535,
                                                                        "warning")
    assert s.engine_cache == 1000
    assert s.kafka_security.sasl_mechanism == "SCRAM-SHA-512"


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """MOTCUA_HOME must be a directory (or not exist yet)."""
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ConfigurationError, match="MOTCUA_HOME"):
        Settings.from_env({"MOTCUA_HOME": str(f)})


def test_the_engine_keeps_as_many_subjects_as_its_setting_says(tmp_path: Path) -> None:
    """``MOTCUA_ENGINE_CACHE`` is the bound of the engine's cache of subjects."""
    from motcua.pipeline import make_engine

    s = Settings.from_env({"MOTCUA_HOME": str(tmp_path), "MOTCUA_ENGINE_CACHE": "5000"})
    engine = make_engine(s)
    try:
        assert engine.cache.size == 5000
    finally:
        engine.close()
