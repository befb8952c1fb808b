"""Settings, read once from the environment at the edge (contract/interface.md).

Nothing else reads ``os.environ``. Secrets (database password, SASL password) never appear in
``repr`` or in ``public_view()``, which is what gets logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kernel.errors import ConfigurationError

ACTIONS_TOPIC = "motcua.actions"
EVENTS_TOPIC = "motcua.events"
REJECTED_TOPIC = "motcua.rejected"


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS / SASL settings for a production Kafka cluster (kafka-python names)."""

    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for kafka-python clients; only the ones that are set."""
        out: dict[str, object] = {"security_protocol": self.security_protocol}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "security_protocol" and value is not None:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class Settings:
    """Everything motcua reads from its environment, once."""

    home: Path
    database_url: str = field(repr=False)
    kafka_bootstrap: str | None
    # None: score each view under the ruleset in force at its end; a name pins one.
    ruleset: str | None
    kafka_security: KafkaSecurity
    partitions: int = 3
    hold_seconds: float = 10.0
    hold_limit: int = 100_000
    log_level: str = "info"
    log_format: str = "json"
    http_host: str = "127.0.0.1"
    http_port: int = 8766
    consumer_group: str = "motcua"
    session_timeout_ms: int = 3_000
    # Extra directory of ruleset JSON files (drafts for what-if, or a province's own).
    ruleset_dir: str | None = None
    # Another lifecycle rules file than the shipped kernel/rules/lifecycle.json.
    lifecycle_rules: str | None = None
    # Refuse actions of sources without a grant (kernel.grants) as source_not_registered.
    require_grants: bool = False

    @property
    def embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    def public_view(self) -> dict[str, object]:
        """The settings as they may be logged: no password, no secret."""
        return {
            "home": str(self.home),
            "database": redact_url(self.database_url),
            "kafka_bootstrap": self.kafka_bootstrap or "embedded",
            "kafka_security_protocol": self.kafka_security.security_protocol,
            "ruleset": self.ruleset or "in force by date",
            "partitions": self.partitions,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the ``MOTCUA_*`` variables; a malformed value is a ``ConfigurationError``."""
        env = os.environ if env is None else env
        home = Path(env.get("MOTCUA_HOME") or "./.motcua").expanduser()
        database_url = env.get("MOTCUA_DATABASE_URL") or f"sqlite:///{home / 'motcua.db'}"
        if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigurationError(
                f"MOTCUA_DATABASE_URL {redact_url(database_url)!r} is neither "
                "sqlite:///PATH nor postgresql://USER@HOST/DB."
            )
        bootstrap = (env.get("MOTCUA_KAFKA_BOOTSTRAP") or "").strip() or None
        if bootstrap is not None:
            for hp in bootstrap.split(","):
                host, _, port = hp.strip().rpartition(":")
                if not host or not port.isdigit():
                    raise ConfigurationError(
                        f"MOTCUA_KAFKA_BOOTSTRAP {bootstrap!r} is not host:port[,host:port]."
                    )
        security = KafkaSecurity(
            security_protocol=env.get("MOTCUA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            ssl_cafile=env.get("MOTCUA_KAFKA_SSL_CAFILE") or None,
            ssl_certfile=env.get("MOTCUA_KAFKA_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("MOTCUA_KAFKA_SSL_KEYFILE") or None,
            sasl_mechanism=env.get("MOTCUA_KAFKA_SASL_MECHANISM") or None,
            sasl_plain_username=env.get("MOTCUA_KAFKA_SASL_USERNAME") or None,
            sasl_plain_password=env.get("MOTCUA_KAFKA_SASL_PASSWORD") or None,
        )
        if security.security_protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise ConfigurationError(
                f"MOTCUA_KAFKA_SECURITY_PROTOCOL {security.security_protocol!r} is not one of "
                "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL."
            )
        return cls(
            home=home,
            database_url=database_url,
            kafka_bootstrap=bootstrap,
            ruleset=(env.get("MOTCUA_RULESET") or "").strip() or None,
            kafka_security=security,
            partitions=_int(env, "MOTCUA_PARTITIONS", 3),
            hold_seconds=float(_int(env, "MOTCUA_HOLD_SECONDS", 10)),
            hold_limit=_int(env, "MOTCUA_HOLD_LIMIT", 100_000),
            log_level=(env.get("MOTCUA_LOG_LEVEL") or "info").lower(),
            log_format=(env.get("MOTCUA_LOG_FORMAT") or "json").lower(),
            http_host=env.get("MOTCUA_HTTP_HOST") or "127.0.0.1",
            http_port=_int(env, "MOTCUA_HTTP_PORT", 8766),
            consumer_group=env.get("MOTCUA_CONSUMER_GROUP") or "motcua",
            session_timeout_ms=_int(env, "MOTCUA_SESSION_TIMEOUT_MS", 3_000),
            ruleset_dir=env.get("MOTCUA_RULESET_DIR") or None,
            lifecycle_rules=env.get("MOTCUA_LIFECYCLE_RULES") or None,
            require_grants=_flag(env, "MOTCUA_REQUIRE_GRANTS"),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} {raw!r} is not a whole number.") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name} {env.get(name)!r} is not one of 1, 0, true, false.")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
