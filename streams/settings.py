"""The worker's settings from the environment (docs/operations.md, settings); each field names its variable."""

from __future__ import annotations

import logging
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import SecretStr

from counters import DEVELOPMENT_SECRET
from schemas.events import SOURCE_TOPICS
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = ["SOURCE_TOPICS", "KafkaConnection", "WorkerSettings", "kafka_client_options", "kafka_connection"]

log = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _duration(name: str, default: str) -> int:
    """A duration variable (``30s``, ``15m``, ``24h``, ``2d``) in microseconds; a bad one stops the start."""
    try:
        return parse_duration(_env(name, default))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _secret(name: str) -> SecretStr | None:
    """A secret from the environment, wrapped so that no repr, log line or error shows it."""
    value = os.environ.get(name, "")
    return SecretStr(value) if value else None


class MissingSecret(RuntimeError):
    """A worker outside development needs ENDUSERS_SECRET: a silent built-in key would make every
    digest guessable by anyone who has read this source."""


@dataclass(frozen=True)
class WorkerSettings:
    kafka: str = field(default_factory=lambda: _env("ENDUSERS_KAFKA", "kafka://127.0.0.1:9092"))
    redis: str = field(default_factory=lambda: _env("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0"), repr=False)
    """May hold a password (``rediss://user:password@host``), so it stays out of the repr."""
    topic_prefix: str = field(default_factory=lambda: _env("ENDUSERS_TOPIC_PREFIX", "enduser"))
    topic_layout: str = field(default_factory=lambda: _env("ENDUSERS_TOPIC_LAYOUT", "shared"))
    """``shared``: ``<prefix>.logins``; ``per-subscription``: ``<prefix>.logins.<subscription>``, so that
    Kafka's ACLs can let each producer write only its own licensee's topics."""
    web_port: int = field(default_factory=lambda: int(_env("ENDUSERS_WEB_PORT", "6066")))
    web_host: str = field(default_factory=lambda: _env("ENDUSERS_WEB_HOST", "127.0.0.1"))
    partitions: int = field(default_factory=lambda: int(_env("ENDUSERS_PARTITIONS", "4")))
    """Partitions of each topic the service creates: the most workers that can share the work."""
    replication_factor: int = field(default_factory=lambda: int(_env("ENDUSERS_REPLICATION_FACTOR", "1")))
    """Replicas of each topic the service creates (3 on a production cluster)."""
    data_dir: str = field(default_factory=lambda: _env(
        "ENDUSERS_DATA_DIR", os.path.join(os.path.expanduser("~"), ".local", "share", "endusers", "worker")))
    """Faust's own data folder (no tables are kept there; the state lives in Redis)."""
    app_id: str = field(default_factory=lambda: _env("ENDUSERS_APP_ID", "endusers"))
    instance_id: str = field(default_factory=lambda: _env("ENDUSERS_INSTANCE_ID", ""))
    """Kafka static membership (``group.instance.id``), e.g. the pod name: a worker restarting under
    the same id within the session timeout keeps its partitions, so nothing is rebalanced or reloaded."""
    secret: SecretStr | None = field(default_factory=lambda: _secret("ENDUSERS_SECRET"))
    digest_scope: str = field(default_factory=lambda: _env("ENDUSERS_DIGEST_SCOPE", "subscription"))
    """``subscription``: a digest key per subscription; ``shared``: one key (state built before 0.2)."""
    environment: str = field(default_factory=lambda: _env("ENDUSERS_ENV", "production"))
    """``development`` lets a worker start without ENDUSERS_SECRET (the demo and the tests)."""
    raw_dead_letters: bool = field(default_factory=lambda: _env("ENDUSERS_DEADLETTER_RAW", "0") == "1")
    """Keep rejected values unredacted in dead letters (debugging only: they hold personal data)."""
    batch_size: int = field(default_factory=lambda: int(_env("ENDUSERS_BATCH_SIZE", "5000")))
    session_timeout: float = field(default_factory=lambda: float(_env("ENDUSERS_SESSION_TIMEOUT", "10")))
    """Seconds before a silent worker's partitions move to the others (heartbeats every third of it).
    Shorter means a dead worker's subscriptions wait less; too short and a long GC pause or a
    congested network makes a live worker lose its partitions (a rebalance, then a reload)."""
    stall_seconds: float = field(default_factory=lambda: float(_env("ENDUSERS_STALL_SECONDS", "30")))
    """Changes waiting with no batch processed for this long: /readyz says ``stalled``."""
    web_redis_connections: int = field(default_factory=lambda: int(_env("ENDUSERS_WEB_REDIS_CONNECTIONS", "20")))
    """Redis connections of the HTTP side (its own pool: HTTP load cannot starve the count stage)."""
    web_max_streams: int = field(default_factory=lambda: int(_env("ENDUSERS_WEB_MAX_STREAMS", "100")))
    """Concurrent dashboard streams (SSE); beyond it 503 with Retry-After."""
    batch_within: float = field(default_factory=lambda: float(_env("ENDUSERS_BATCH_WITHIN", "0.05")))
    max_future: int = field(default_factory=lambda: _duration("ENDUSERS_MAX_FUTURE", DEFAULT_MAX_FUTURE))
    """Microseconds an event's ``time`` may be ahead of the processing clock; later ones are rejected."""
    metrics_max_labels: int = field(default_factory=lambda: int(_env("ENDUSERS_METRICS_MAX_LABELS", "50")))
    """Runtimes (and providers) exported as their own label per subscription; the rest are ``other``."""
    # Kafka security, passed to the clients as they support it
    kafka_security_protocol: str = field(default_factory=lambda: _env("ENDUSERS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"))
    kafka_sasl_mechanism: str = field(default_factory=lambda: _env("ENDUSERS_KAFKA_SASL_MECHANISM", ""))
    kafka_username: str = field(default_factory=lambda: _env("ENDUSERS_KAFKA_USERNAME", ""))
    kafka_password: SecretStr | None = field(default_factory=lambda: _secret("ENDUSERS_KAFKA_PASSWORD"))
    kafka_cafile: str = field(default_factory=lambda: _env("ENDUSERS_KAFKA_CAFILE", ""))
    # Alertmanager push (streams/worker/alerts.py); off while no URL is set
    alertmanager_url: str = field(default_factory=lambda: _env("ENDUSERS_ALERTMANAGER_URL", ""))
    """Alertmanager base URLs, comma-separated (every member of an HA cluster gets every alert)."""
    alert_severities: str = field(default_factory=lambda: _env("ENDUSERS_ALERT_SEVERITIES", "1:warning,100:critical"))
    """``level:severity`` pairs: each severity applies from its level upward."""
    alert_interval: float = field(default_factory=lambda: float(_env("ENDUSERS_ALERT_INTERVAL", "60")))
    """Seconds between re-sends of the firing alerts (Alertmanager resolves alerts nobody re-sends)."""
    dashboard_url: str = field(default_factory=lambda: _env("ENDUSERS_DASHBOARD_URL", ""))
    """The dashboard's address as people reach it, for alert links; the worker's own address if unset."""

    @property
    def heartbeat_interval(self) -> float:
        return self.session_timeout / 3

    def topic(self, name: str) -> str:
        """``logins`` -> ``enduser.logins`` (prefix from ENDUSERS_TOPIC_PREFIX)."""
        return f"{self.topic_prefix}.{name}"

    @property
    def per_subscription_topics(self) -> bool:
        return self.topic_layout == "per-subscription"

    def source_topic(self, name: str, subscription: object) -> str | None:
        """The source topic of an event of ``subscription`` (``name`` is ``logins``...), or None when
        the per-subscription layout cannot name one (no subscription, or not a topic-name string)."""
        if not self.per_subscription_topics:
            return self.topic(name)
        if not isinstance(subscription, str) or not _TOPIC_SAFE.fullmatch(subscription):
            return None
        return f"{self.topic(name)}.{subscription}"

    def source_pattern(self) -> str:
        """The regular expression of every per-subscription source topic."""
        names = "|".join(re.escape(n) for n in SOURCE_TOPICS.values())
        return rf"^{re.escape(self.topic_prefix)}\.({names})\.[A-Za-z0-9._-]+$"

    def topic_subscription(self, topic: str) -> str | None:
        """The subscription a per-subscription source topic belongs to (None for any other topic)."""
        if not self.per_subscription_topics or not re.fullmatch(self.source_pattern(), topic):
            return None
        return topic[len(self.topic_prefix) + 1 :].split(".", 1)[1]

    @property
    def bootstrap_servers(self) -> str:
        """``kafka://a:9092;b:9092`` in the aiokafka form ``a:9092,b:9092``."""
        servers = self.kafka.split("://", 1)[-1]
        return ",".join(s.strip() for s in servers.replace(";", ",").split(",") if s.strip())

    def digest_secret(self) -> bytes:
        """The key of identifier digests: ENDUSERS_SECRET, or the built-in development secret when
        ENDUSERS_ENV=development (said loudly); otherwise :class:`MissingSecret`."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        if self.environment == "development":
            return DEVELOPMENT_SECRET
        raise MissingSecret(
            "ENDUSERS_SECRET is not set. Set it to a long random value (for example the output of "
            "'python -c \"import secrets; print(secrets.token_hex(32))\"') and keep it, or set "
            "ENDUSERS_ENV=development to use the built-in development secret on a test machine.")

    def warn_if_development_secret(self) -> None:
        if self.secret is None:
            log.warning(
                "ENDUSERS_SECRET is not set: identifiers are digested with the built-in DEVELOPMENT "
                "secret (ENDUSERS_ENV=development). Set ENDUSERS_SECRET to a long random value in "
                "production (and keep it: changing it later splits every person in two)."
            )


_TOPIC_SAFE = re.compile(r"[A-Za-z0-9._-]{1,200}")
"""A subscription that can end a Kafka topic name (legal characters, room left for the prefix)."""


@dataclass(frozen=True)
class KafkaConnection:
    """How every Kafka client of the service connects, mapped once from :class:`WorkerSettings`: the
    aiokafka clients (publish, ingest, topics, probes) read :meth:`client_options`, the Faust worker
    :meth:`faust_credentials`, so TLS and SASL cannot differ between the two. The password stays a
    :class:`SecretStr` until a client takes it: no repr, log line or error shows it."""

    bootstrap_servers: str
    security_protocol: str
    ssl_context: ssl.SSLContext | None = field(repr=False)
    """TLS (``SSL``, ``SASL_SSL``) with the system's trust store, or ENDUSERS_KAFKA_CAFILE's."""
    username: str
    password: SecretStr | None
    sasl_mechanism: str

    def client_options(self) -> dict[str, object]:
        """Keyword arguments of aiokafka's clients."""
        options: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers,
                                      "security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.username:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self._password()
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """Faust's ``broker_credentials``: SASL (over TLS when configured), TLS alone, or none."""
        import faust  # only the worker needs Faust: the command line starts without it

        if self.username:
            return faust.SASLCredentials(username=self.username, password=self._password(),
                                         mechanism=self.sasl_mechanism, ssl_context=self.ssl_context)
        if self.security_protocol == "PLAINTEXT":
            return None
        return faust.SSLCredentials(self.ssl_context)

    def _password(self) -> str:
        return "" if self.password is None else self.password.get_secret_value()


def kafka_connection(settings: WorkerSettings) -> KafkaConnection:
    """The one mapping of the Kafka settings (ENDUSERS_KAFKA*) to a connection."""
    secure = settings.kafka_security_protocol in ("SSL", "SASL_SSL")
    return KafkaConnection(
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        ssl_context=ssl.create_default_context(cafile=settings.kafka_cafile or None) if secure else None,
        username=settings.kafka_username,
        password=settings.kafka_password,
        sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
    )


def kafka_client_options(settings: WorkerSettings) -> dict[str, object]:
    """Connection options for aiokafka clients (publish, ingest, topics), including TLS and SASL."""
    return kafka_connection(settings).client_options()
