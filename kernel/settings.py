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


# How many subjects (dossiers, procedures, units) an engine keeps in memory unless
# MOTCUA_ENGINE_CACHE says otherwise: ≈ 5.5 KiB each, about 1.1 GiB once full (README).
ENGINE_CACHE = 200_000
# How long (wall-clock seconds) and how many actions an engine holds for a subject that has not
# arrived, unless MOTCUA_HOLD_SECONDS / MOTCUA_HOLD_LIMIT say otherwise (docs/decisions.md).
HOLD_SECONDS = 10.0
HOLD_LIMIT = 100_000


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
    hold_seconds: float = HOLD_SECONDS
    hold_limit: int = HOLD_LIMIT
    # Subjects the engine keeps in memory, least recently used out.
    engine_cache: int = ENGINE_CACHE
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
    # Record a dossier received with a due_at at once, even when its procedure has not reached
    # the engine (no step budgets from the catalog), instead of waiting up to the hold for it.
    record_uncatalogued: bool = False
    # Where alert e-mails go: smtp://host:port or smtps://user:pass@host:port (None: no e-mail).
    smtp_url: str | None = field(default=None, repr=False)
    # `motcua up` / `motcua demo` run their engine role in a child process, so that the engine
    # and the projections use two cores (docs/decisions.md, "The engine in a child process").
    engine_process: bool = True

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
        """Read the ``MOTCUA_*`` variables; any malformed or out-of-range value is a
        ``ConfigurationError`` naming the variable (every one is checked here, at start)."""
        env = os.environ if env is None else env
        for name, value in env.items():
            if name.startswith("MOTCUA_") and not _is_text(value):
                raise ConfigurationError(f"{name} is not valid UTF-8 text.")
        home = Path(env.get("MOTCUA_HOME") or "./.motcua").expanduser()
        if home.exists() and not home.is_dir():
            raise ConfigurationError(f"MOTCUA_HOME {str(home)!r} is a file, not a directory.")
        return cls(
            home=home,
            database_url=_database_url(env, home),
            kafka_bootstrap=_bootstrap(env),
            ruleset=(env.get("MOTCUA_RULESET") or "").strip() or None,
            kafka_security=_security(env),
            partitions=_int(env, "MOTCUA_PARTITIONS", 3, 1, 1024),
            hold_seconds=_seconds(env, "MOTCUA_HOLD_SECONDS", HOLD_SECONDS),
            hold_limit=_int(env, "MOTCUA_HOLD_LIMIT", HOLD_LIMIT, 0, 100_000_000),
            engine_cache=_int(env, "MOTCUA_ENGINE_CACHE", ENGINE_CACHE, 1_000, 100_000_000),
            log_level=_choice(env, "MOTCUA_LOG_LEVEL", "info", LOG_LEVELS),
            log_format=_choice(env, "MOTCUA_LOG_FORMAT", "json", ("json", "console")),
            http_host=(env.get("MOTCUA_HTTP_HOST") or "").strip() or "127.0.0.1",
            http_port=_int(env, "MOTCUA_HTTP_PORT", 8766, 1, 65535),
            consumer_group=(env.get("MOTCUA_CONSUMER_GROUP") or "").strip() or "motcua",
            session_timeout_ms=_int(env, "MOTCUA_SESSION_TIMEOUT_MS", 3_000, 500, 3_600_000),
            ruleset_dir=_path(env, "MOTCUA_RULESET_DIR", directory=True),
            lifecycle_rules=_path(env, "MOTCUA_LIFECYCLE_RULES", directory=False),
            require_grants=_flag(env, "MOTCUA_REQUIRE_GRANTS"),
            record_uncatalogued=_flag(env, "MOTCUA_RECORD_UNCATALOGUED"),
            smtp_url=_smtp(env),
            engine_process=_flag(env, "MOTCUA_ENGINE_PROCESS", default=True),
        )


def _smtp(env: Mapping[str, str]) -> str | None:
    """MOTCUA_SMTP_URL: ``smtp://host:port`` or ``smtps://user:pass@host:port``, or unset."""
    url = (env.get("MOTCUA_SMTP_URL") or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port in (-1, 0):
        raise ConfigurationError(f"MOTCUA_SMTP_URL {redact_url(url)!r} is not smtp://host:port "
                                 "or smtps://user:pass@host:port.")
    return url


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")


def _is_text(value: str) -> bool:
    """Storable text: no NUL, and no lone surrogate (what Python makes of bytes that are not
    UTF-8 in the environment or on the command line)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _database_url(env: Mapping[str, str], home: Path) -> str:
    url = env.get("MOTCUA_DATABASE_URL") or f"sqlite:///{home / 'motcua.db'}"
    shown = redact_url(url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path.endswith("/") or Path(path).is_dir():
            raise ConfigurationError(
                f"MOTCUA_DATABASE_URL {shown!r} names a directory, not a database file.")
        return url
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(f"MOTCUA_DATABASE_URL {shown!r} is neither sqlite:///PATH nor "
                                 "postgresql://USER@HOST/DB.")
    try:
        port = urlsplit(url).port
    except ValueError:
        raise ConfigurationError(f"MOTCUA_DATABASE_URL {shown!r} has a port that is not a "
                                 "number from 1 to 65535.") from None
    if port == 0:
        raise ConfigurationError(f"MOTCUA_DATABASE_URL {shown!r} has port 0; a port is 1 to "
                                 "65535.")
    return url


def _bootstrap(env: Mapping[str, str]) -> str | None:
    bootstrap = (env.get("MOTCUA_KAFKA_BOOTSTRAP") or "").strip() or None
    if bootstrap is not None:
        for hp in bootstrap.split(","):
            host, _, port = hp.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ConfigurationError(f"MOTCUA_KAFKA_BOOTSTRAP {bootstrap!r} is not "
                                         "host:port[,host:port] with ports from 1 to 65535.")
    return bootstrap


def _security(env: Mapping[str, str]) -> KafkaSecurity:
    files = {name: _path(env, f"MOTCUA_KAFKA_SSL_{name.upper()}", directory=False)
             for name in ("cafile", "certfile", "keyfile")}
    security = KafkaSecurity(
        security_protocol=_choice(env, "MOTCUA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
                                  SECURITY_PROTOCOLS, upper=True),
        ssl_cafile=files["cafile"], ssl_certfile=files["certfile"], ssl_keyfile=files["keyfile"],
        sasl_mechanism=_choice(env, "MOTCUA_KAFKA_SASL_MECHANISM", "", SASL_MECHANISMS,
                               upper=True) or None,
        sasl_plain_username=env.get("MOTCUA_KAFKA_SASL_USERNAME") or None,
        sasl_plain_password=env.get("MOTCUA_KAFKA_SASL_PASSWORD") or None,
    )
    if security.security_protocol.startswith("SASL_") and security.sasl_mechanism is None:
        raise ConfigurationError(f"MOTCUA_KAFKA_SECURITY_PROTOCOL {security.security_protocol} "
                                 "needs MOTCUA_KAFKA_SASL_MECHANISM (e.g. PLAIN).")
    return security


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = (env.get(name) or "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ConfigurationError(f"{name} {raw!r} is not a whole number from {lo:,} to {hi:,}.")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400 * 30:  # also refuses nan and inf
        raise ConfigurationError(f"{name} {raw!r} is not a number of seconds from 0 to "
                                 "2,592,000 (30 days).")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...],
            upper: bool = False) -> str:
    raw = (env.get(name) or "").strip()
    if raw == "":
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigurationError(f"{name} {raw!r} is not one of {', '.join(choices)}.")
    return value


def _path(env: Mapping[str, str], name: str, *, directory: bool) -> str | None:
    raw = env.get(name) or None
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if directory and not path.is_dir():
        raise ConfigurationError(f"{name} {raw!r} is not an existing directory.")
    if not directory and not path.is_file():
        raise ConfigurationError(f"{name} {raw!r} is not an existing file.")
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
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
