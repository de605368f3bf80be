"""The one settings object, read from the environment once (CONTRACT §1)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(ValueError):
    """A bad configuration value; the message names the environment variable."""


def _port(raw: str, var: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{var}={raw!r} is outside 1..65535")
    return port


def _int_at_least(raw: str, var: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{var}={raw!r} must be at least {minimum}")
    return value


def _positive_int(raw: str, var: str) -> int:
    return _int_at_least(raw, var, 1)


def _cache_entries(raw: str, var: str) -> int:
    return _int_at_least(raw, var, 1_000)


def _non_negative_int(raw: str, var: str) -> int:
    return _int_at_least(raw, var, 0)


def _positive_float(raw: str, var: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{var}={raw!r} must be positive")
    return value


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(raw: str, var: str) -> str:
        """The option as declared, whatever the case it was given in."""
        by_lower = {o.lower(): o for o in options}
        value = by_lower.get(raw.strip().lower())
        if value is None:
            raise ConfigError(f"{var}={raw!r} must be one of {', '.join(options)}")
        return value

    return parse


def _timezone(raw: str, var: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{var}={raw!r} is not a known IANA time zone") from None
    return raw


def _servers(raw: str, var: str) -> str:
    servers = [s.strip() for s in raw.split(",") if s.strip()]
    if not servers:
        raise ConfigError(f"{var} is empty")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"{var}: {server!r} is not host:port")
        _port(port, var)
    return ",".join(servers)


def _url(*schemes: str) -> Callable[[str, str], str]:
    def parse(raw: str, var: str) -> str:
        if not any(raw.startswith(f"{s}://") for s in schemes):
            raise ConfigError(f"{var}={raw!r} must start with {' or '.join(s + '://' for s in schemes)}")
        return raw

    return parse


def _text(raw: str, var: str) -> str:
    return raw


def _flag(raw: str, var: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r}: must be 1 or 0")


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _prefix(raw: str, var: str) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not set(raw) <= allowed:
        raise ConfigError(f"{var}={raw!r} may hold only letters, digits, '.', '_' and '-'")
    return raw


@dataclass(frozen=True)
class Settings:
    """Warden's configuration. Each field names its environment variable and default."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port list of the Kafka brokers."""
    redis_url: str = dataclass_field(default="redis://127.0.0.1:6379/0", repr=False)
    """REDIS_URL: the Redis holding the views: `redis://`, or `rediss://` for TLS (a CA with
    `?ssl_ca_certs=/path`); a password in it (`rediss://:password@host`) is never logged."""
    schema_registry_url: str | None = None
    """SCHEMA_REGISTRY_URL: when set, output uses Confluent framing and input may use it."""
    web_port: int = 6066
    """WARDEN_WEB_PORT: the worker's HTTP port (/healthz, /metrics, /api)."""
    policy_path: str = "rules/policy.yaml"
    """WARDEN_POLICY: the enforcement policy file."""
    clock: str = "wall"
    """WARDEN_CLOCK: `wall` (live) or `event` (stream time per partition, for replays)."""
    timezone: str = "UTC"
    """WARDEN_TIMEZONE: the zone of business days and calendar months."""
    topic_prefix: str = ""
    """WARDEN_TOPIC_PREFIX: put before every topic name (and the consumer group)."""
    partitions: int = 4
    """WARDEN_PARTITIONS: partitions of the topics Warden creates (inputs must match)."""
    app_id: str = "warden"
    """WARDEN_APP_ID: the Faust app id (consumer group and changelog names)."""
    data_dir: str = ".warden/data"
    """WARDEN_DATA_DIR: where the worker keeps local state (rocksdb tables)."""
    store: str = "memory"
    """WARDEN_STORE: `memory` or `rocksdb` (keeps its changelog offset across restarts)."""
    max_future_skew_s: float = 86_400.0
    """WARDEN_MAX_FUTURE_SKEW: seconds an event time may lie ahead of the wall clock."""
    table_cache_entries: int = 100_000
    """WARDEN_TABLE_CACHE_ENTRIES: how many values of each table a worker with the rocksdb
    store holds decoded in memory (the ones used last); the rest stay on disk and are read
    when needed. Memory stays flat as the state grows. The orders' deadline heaps hold
    about half this many entries per partition (the later ones are found again in the
    tables when the first are due)."""
    tick_interval_s: float = 1.0
    """WARDEN_TICK_INTERVAL: seconds between deadline sweeps under the wall clock."""
    log_level: str = "warning"
    """WARDEN_LOG_LEVEL: the worker's log level."""
    trace_decisions: bool = False
    """WARDEN_TRACE_DECISIONS: `1` logs a line per enforcement decision (at info) saying
    from what it was made: the partition, the record that caused it, the stream time, how
    far each input topic was handled, the log ends and the restored checkpoints."""
    recovery_check: str = "on"
    """WARDEN_RECOVERY_CHECK: `on` stops recovery when a table's stored offset is past its
    changelog's end (a wiped changelog). `off` on Tansu, whose ListOffsets can answer less
    than the log's end, so the check misfires after a rebalance."""
    fetch_max_wait_ms: int = 20
    """WARDEN_FETCH_MAX_WAIT_MS: the longest a fetch waits at the end of a log for new
    records. Faust fixes it at 1500; a broker that answers only when it expires (Tansu)
    then adds up to 1.5 s to every decision."""
    max_task_idle_s: float = 30.0
    """WARDEN_MAX_TASK_IDLE: seconds a partition's merge waits for an input topic that has
    unread records before it goes on without it (Kafka Streams' max.task.idle.ms)."""
    arrival_grace_ms: int = 0
    """WARDEN_ARRIVAL_GRACE_MS: how long a record waits for records of its partition's other
    input topics that the broker has not appended yet, though sent before it (a producer
    batches each partition on its own, so one sent earlier can reach the log a few ms
    later). 0: none, as Kafka Streams' max.task.idle.ms; the merge then waits only for
    what the broker holds. The wait is paid only where a topic of the partition has
    nothing buffered."""
    commit_interval_s: float = 5.0
    """WARDEN_COMMIT_INTERVAL: seconds between offset commits. Each commit first writes
    every changed table key's newest value to its changelog, once: the longer the
    interval, the more writes of a hot key collapse into one (Kafka Streams commits every
    30 s), and the more input a crashed worker's replacement handles again."""
    failpoint: str | None = None
    """WARDEN_FAILPOINT: for fault-injection tests only. `checkpoint-partial`: at its second
    checkpoint the worker writes only the orders table's changes, then dies as a kill -9
    would (the broker then holds part of a checkpoint, as after a kill in the middle)."""
    auth_secret: str | None = dataclass_field(default=None, repr=False)
    """WARDEN_AUTH_SECRET: the key that signs and checks sign-in tokens (HS256, CONTRACT §9).
    Required: a worker refuses to start without it (`warden up` makes one and keeps it
    under `.warden/`). Never logged."""
    ui_port: int = 8080
    """WARDEN_UI_PORT: the web service's port (`warden web`: the seller dashboard, CONTRACT §9)."""
    ui_host: str = "127.0.0.1"
    """WARDEN_UI_HOST: the address the web service listens on (0.0.0.0 in a container)."""
    ui_secure_cookie: bool = False
    """WARDEN_UI_SECURE_COOKIE: `1` marks the session cookie Secure (set it when the web
    service is served over HTTPS, as in production)."""
    kafka_security_protocol: str = "PLAINTEXT"
    """KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, for every Kafka client."""
    kafka_sasl_mechanism: str | None = None
    """KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)."""
    kafka_sasl_username: str | None = None
    """KAFKA_SASL_USERNAME: the SASL user."""
    kafka_sasl_password: str | None = dataclass_field(default=None, repr=False)
    """KAFKA_SASL_PASSWORD: the SASL password. Never logged."""
    kafka_ssl_ca_location: str | None = None
    """KAFKA_SSL_CA_LOCATION: the CA bundle (PEM) that signed the brokers' certificates."""
    kafka_ssl_certificate_location: str | None = None
    """KAFKA_SSL_CERTIFICATE_LOCATION: this client's certificate (PEM), for mutual TLS."""
    kafka_ssl_key_location: str | None = None
    """KAFKA_SSL_KEY_LOCATION: this client's private key (PEM), for mutual TLS."""
    instance_id: str | None = None
    """WARDEN_INSTANCE_ID: a stable name per worker (static group membership): a worker
    restarted under the same name takes its partitions back without waiting for the
    broker to expire its old session."""

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def redis_location(self) -> str:
        """REDIS_URL without its password, for logs and messages."""
        return without_password(self.redis_url)

    def kafka_client_config(self) -> dict[str, str]:
        """The security settings for a librdkafka (confluent-kafka) client: empty for PLAINTEXT."""
        config = {"security.protocol": self.kafka_security_protocol} if self.kafka_security_protocol != "PLAINTEXT" \
            else {}
        for key, value in (("sasl.mechanism", self.kafka_sasl_mechanism), ("sasl.username", self.kafka_sasl_username),
                           ("sasl.password", self.kafka_sasl_password), ("ssl.ca.location", self.kafka_ssl_ca_location),
                           ("ssl.certificate.location", self.kafka_ssl_certificate_location),
                           ("ssl.key.location", self.kafka_ssl_key_location)):
            if value:
                config[key] = value
        return config

    @property
    def consumer_group(self) -> str:
        """The workers' Faust app id, which is their consumer group's id."""
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def ui_url(self) -> str:
        host = "127.0.0.1" if self.ui_host in ("0.0.0.0", "::") else self.ui_host
        return f"http://{host}:{self.ui_port}"

    @property
    def app_data_dir(self) -> str:
        """This app's own directory under WARDEN_DATA_DIR (one per app id, prefix included):
        the tables of another app, or of the same app on other topics, are never read."""
        return str(Path(self.data_dir) / f"{self.topic_prefix}{self.app_id}")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


# environment variable -> (field, parser)
ENVIRONMENT: Mapping[str, tuple[str, Callable[[str, str], object]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap_servers", _servers),
    "REDIS_URL": ("redis_url", _url("redis", "rediss", "unix")),
    "SCHEMA_REGISTRY_URL": ("schema_registry_url", _url("http", "https")),
    "WARDEN_WEB_PORT": ("web_port", _port),
    "WARDEN_POLICY": ("policy_path", _text),
    "WARDEN_CLOCK": ("clock", _choice("wall", "event")),
    "WARDEN_TIMEZONE": ("timezone", _timezone),
    "WARDEN_TOPIC_PREFIX": ("topic_prefix", _prefix),
    "WARDEN_PARTITIONS": ("partitions", _positive_int),
    "WARDEN_APP_ID": ("app_id", _prefix),
    "WARDEN_DATA_DIR": ("data_dir", _text),
    "WARDEN_STORE": ("store", _choice("memory", "rocksdb")),
    "WARDEN_MAX_FUTURE_SKEW": ("max_future_skew_s", _positive_float),
    "WARDEN_TICK_INTERVAL": ("tick_interval_s", _positive_float),
    "WARDEN_TABLE_CACHE_ENTRIES": ("table_cache_entries", _cache_entries),
    "WARDEN_LOG_LEVEL": ("log_level", _choice("debug", "info", "warning", "error", "critical")),
    "WARDEN_FETCH_MAX_WAIT_MS": ("fetch_max_wait_ms", _positive_int),
    "WARDEN_RECOVERY_CHECK": ("recovery_check", _choice("on", "off")),
    "WARDEN_TRACE_DECISIONS": ("trace_decisions", _flag),
    "WARDEN_MAX_TASK_IDLE": ("max_task_idle_s", _positive_float),
    "WARDEN_COMMIT_INTERVAL": ("commit_interval_s", _positive_float),
    "WARDEN_ARRIVAL_GRACE_MS": ("arrival_grace_ms", _non_negative_int),
    "WARDEN_INSTANCE_ID": ("instance_id", _prefix),
    "WARDEN_FAILPOINT": ("failpoint", _choice("checkpoint-partial")),
    "WARDEN_AUTH_SECRET": ("auth_secret", _text),
    "WARDEN_UI_PORT": ("ui_port", _port),
    "KAFKA_SECURITY_PROTOCOL": ("kafka_security_protocol", _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    "KAFKA_SASL_MECHANISM": ("kafka_sasl_mechanism", _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
    "KAFKA_SASL_USERNAME": ("kafka_sasl_username", _text),
    "KAFKA_SASL_PASSWORD": ("kafka_sasl_password", _text),
    "KAFKA_SSL_CA_LOCATION": ("kafka_ssl_ca_location", _text),
    "KAFKA_SSL_CERTIFICATE_LOCATION": ("kafka_ssl_certificate_location", _text),
    "KAFKA_SSL_KEY_LOCATION": ("kafka_ssl_key_location", _text),
    "WARDEN_UI_HOST": ("ui_host", _text),
    "WARDEN_UI_SECURE_COOKIE": ("ui_secure_cookie", _flag),
}
assert {f for f, _ in ENVIRONMENT.values()} == {f.name for f in fields(Settings)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (default: the process environment); raise ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for var, (field, parse) in ENVIRONMENT.items():
        raw = env.get(var)
        if raw is None or (raw == "" and field != "topic_prefix"):
            continue
        values[field] = parse(raw, var)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.store == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise ConfigError("WARDEN_STORE=rocksdb needs the rocksdict package") from None
    Path(settings.data_dir)  # a path is always valid here; created by the worker
    sasl = settings.kafka_security_protocol.startswith("SASL_")
    if sasl and not (settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs KAFKA_SASL_MECHANISM, "
                          "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    if settings.kafka_sasl_mechanism and not sasl:
        raise ConfigError("KAFKA_SASL_MECHANISM is set, but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT or SASL_SSL")
    return settings
