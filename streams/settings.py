"""The service's settings: every ``ENDUSERS_*`` variable is read here, once, when the settings are
built, and validated (docs/operations.md, settings); nothing else in the packages reads the environment.

A wrong value stops the process at start with one message naming the variable (:class:`SettingsError`),
before anything connects: a misspelt ``ENDUSERS_TOPIC_LAYOUT`` must not quietly become another layout.
Each field names its variable (``validation_alias``); ``endusers settings`` prints them (:func:`describe`).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, PrivateAttr, SecretStr,
                      ValidationError, ValidationInfo, field_validator, model_validator)

from counters import DEVELOPMENT_SECRET
from schemas.events import SOURCE_TOPICS
from schemas.limits import DEFAULT_MAX_FUTURE, format_duration, parse_duration

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = ["SOURCE_TOPICS", "DigestScope", "Environment", "KafkaConnection", "OpenApi", "SaslMechanism",
           "SecurityProtocol", "SettingsError", "Severities", "SubscriptionsMode", "TopicLayout", "WebAuth",
           "WorkerSettings", "describe",
           "kafka_client_options", "kafka_connection"]

log = logging.getLogger(__name__)


class TopicLayout(StrEnum):
    """``ENDUSERS_TOPIC_LAYOUT``."""
    SHARED = "shared"
    PER_SUBSCRIPTION = "per-subscription"


class SubscriptionsMode(StrEnum):
    """``ENDUSERS_SUBSCRIPTIONS``: which subscriptions are counted."""
    ANY = "any"
    """Every subscription an accepted event names."""
    DECLARED = "declared"
    """Only those whose settings a config event has set; the others' events are dead-lettered."""


class DigestScope(StrEnum):
    """``ENDUSERS_DIGEST_SCOPE``."""
    SUBSCRIPTION = "subscription"
    SHARED = "shared"


class Environment(StrEnum):
    """``ENDUSERS_ENV``."""
    PRODUCTION = "production"
    DEVELOPMENT = "development"


class WebAuth(StrEnum):
    """``ENDUSERS_WEB_AUTH``: how the HTTP API is guarded."""
    TOKENS = "tokens"
    NONE = "none"


class SecurityProtocol(StrEnum):
    """``ENDUSERS_KAFKA_SECURITY_PROTOCOL`` (the protocols of Kafka's clients)."""
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """``ENDUSERS_KAFKA_SASL_MECHANISM``: the mechanisms that take a username and a password."""
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


Source = Literal["environment", "default", "argument"]


class SettingsError(Exception):
    """Settings that cannot be used: one line per wrong variable, each naming it and what it accepts.
    (Not a ValueError: pydantic would wrap one raised by a validator; this one must pass through.)"""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class OpenApi(RuntimeError):
    """A production worker whose HTTP API would answer anyone as an admin: it needs a token file, or
    ``ENDUSERS_WEB_AUTH=none`` to say that the API is meant to be open (a private network)."""


class MissingSecret(RuntimeError):
    """A worker outside development needs ENDUSERS_SECRET: a silent built-in key would make every
    digest guessable by anyone who has read this source."""


@dataclass(frozen=True)
class Severities:
    """Which severity a level has (``ENDUSERS_ALERT_SEVERITIES``): each ``(level, name)`` tier applies
    from its level upward."""

    tiers: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, text: str) -> Severities:
        """``"1:warning,100:critical"``: warning above 0, critical at 100 and above."""
        tiers = []
        for part in (p.strip() for p in text.split(",")):
            level, _, name = part.partition(":")
            if not part or not name.strip() or not level.strip().isdigit():
                raise ValueError(f"ENDUSERS_ALERT_SEVERITIES: {part!r} is not level:severity (e.g. 100:critical)")
            tiers.append((int(level), name.strip()))
        if len({name for _, name in tiers}) != len(tiers) or len({level for level, _ in tiers}) != len(tiers):
            raise ValueError(f"ENDUSERS_ALERT_SEVERITIES: {text!r} repeats a level or a severity")
        return cls(tuple(sorted(tiers)))

    def __str__(self) -> str:
        return ",".join(f"{level}:{name}" for level, name in self.tiers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.tiers)

    def of(self, level: int) -> str | None:
        """The severity of a level; None at level 0 or below the lowest tier (no alert)."""
        held = [name for start, name in self.tiers if level > 0 and level >= start]
        return held[-1] if held else None


def _default_data_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".local", "share", "endusers", "worker")


def _var(name: str, default: Any = None, **constraints: Any) -> Any:
    """A field read from the variable ``name`` (``default`` when it is not set)."""
    if callable(default):
        return Field(default_factory=default, validation_alias=name, **constraints)
    return Field(default, validation_alias=name, **constraints)


def _redis_url(value: str) -> str:
    from streams.store.connect import BadRedisUrl, parse  # the one parser of ENDUSERS_REDIS

    try:
        parse(value)
    except BadRedisUrl as exc:  # its message shows the URL, password masked: here the line names it
        raise ValueError(exc.reason) from None
    return value


def _keycloak_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
        raise ValueError("expected an http:// or https:// URL, e.g. https://sso.example.com")
    return value


def _severities(value: str) -> str:
    try:
        Severities.parse(value)
    except ValueError as exc:  # the line names the variable already
        raise ValueError(str(exc).removeprefix("ENDUSERS_ALERT_SEVERITIES: ")) from None
    return value


def _alertmanager_urls(value: str) -> str:
    from streams.store.connect import masked

    for url in _listed(value):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{masked(url)!r} is not an http:// or https:// URL")
    return value


RedisUrl = Annotated[str, AfterValidator(_redis_url)]
KeycloakUrl = Annotated[str, AfterValidator(_keycloak_url)]
SeverityList = Annotated[str, AfterValidator(_severities)]
AlertmanagerUrls = Annotated[str, AfterValidator(_alertmanager_urls)]


class WorkerSettings(BaseModel):
    """Every setting of the service, validated. ``WorkerSettings()`` reads the environment (the
    variables that are set; the others keep their defaults); keyword arguments take precedence, so
    tests give only what they care about."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, validate_default=True,
                              allow_inf_nan=False)  # ENDUSERS_SESSION_TIMEOUT=nan would pass every bound

    kafka: str = _var("ENDUSERS_KAFKA", "kafka://127.0.0.1:9092")
    redis: RedisUrl = _var("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0", repr=False)
    """May hold a password (``rediss://user:password@host``), so it stays out of the repr; parsed at
    build time by ``streams.store.connect.parse`` (a wrong scheme or host list stops the start)."""
    redis_sentinel_password: SecretStr | None = _var("ENDUSERS_REDIS_SENTINEL_PASSWORD")
    redis_min_replicas: int = _var("ENDUSERS_REDIS_MIN_REPLICAS", 0, ge=0)
    """Replicas that must confirm each commit (``WAIT``); 0: none."""
    redis_wait_timeout_ms: int = _var("ENDUSERS_REDIS_WAIT_TIMEOUT_MS", 1000, ge=0)
    topic_prefix: str = _var("ENDUSERS_TOPIC_PREFIX", "enduser")
    topic_layout: TopicLayout = _var("ENDUSERS_TOPIC_LAYOUT", TopicLayout.SHARED)
    """``shared``: ``<prefix>.logins``; ``per-subscription``: ``<prefix>.logins.<subscription>``, so that
    Kafka's ACLs can let each producer write only its own licensee's topics."""
    web_port: int = _var("ENDUSERS_WEB_PORT", 6066, ge=0, le=65535)
    web_host: str = _var("ENDUSERS_WEB_HOST", "127.0.0.1")
    gateway_port: int = _var("ENDUSERS_GATEWAY_PORT", 6068, ge=0, le=65535)
    gateway_host: str = _var("ENDUSERS_GATEWAY_HOST", "127.0.0.1")
    """Where ``endusers gateway`` listens for the identity providers (docs/sources.md)."""
    web_advertised_url: str = _var("ENDUSERS_WEB_ADVERTISED_URL", "")
    """Where the other workers reach this one's web server (admission checks are forwarded to the
    worker that counts the subscription); empty: ``http://ENDUSERS_WEB_HOST:ENDUSERS_WEB_PORT``."""
    web_allowed_hosts: str = _var("ENDUSERS_WEB_ALLOWED_HOSTS", "")
    """More Host names the web server answers to, comma-separated (``*``: any)."""
    api_tokens_file: str = _var("ENDUSERS_API_TOKENS_FILE", "")
    """The HTTP token file; empty: no token file (see :meth:`web_tokens_file`)."""
    web_auth: WebAuth = _var("ENDUSERS_WEB_AUTH", WebAuth.TOKENS)
    """``tokens``: every data path needs a token from the token file; ``none``: no token needed, on
    purpose (a private network only)."""
    partitions: int = _var("ENDUSERS_PARTITIONS", 4, ge=1)
    """Partitions of each topic the service creates: the most workers that can share the work."""
    replication_factor: int = _var("ENDUSERS_REPLICATION_FACTOR", 1, ge=1)
    """Replicas of each topic the service creates (3 on a production cluster)."""
    data_dir: str = _var("ENDUSERS_DATA_DIR", _default_data_dir)
    """Faust's own data folder (no tables are kept there; the state lives in Redis)."""
    app_id: str = _var("ENDUSERS_APP_ID", "endusers")
    instance_id: str = _var("ENDUSERS_INSTANCE_ID", "")
    """Kafka static membership (``group.instance.id``), e.g. the pod name: a worker restarting under
    the same id within the session timeout keeps its partitions, so nothing is rebalanced or reloaded."""
    secret: SecretStr | None = _var("ENDUSERS_SECRET")
    digest_scope: DigestScope = _var("ENDUSERS_DIGEST_SCOPE", DigestScope.SUBSCRIPTION)
    """``subscription``: a digest key per subscription; ``shared``: one key (state built before 0.2)."""
    environment: Environment = _var("ENDUSERS_ENV", Environment.PRODUCTION)
    """``development`` lets a worker start without ENDUSERS_SECRET (the demo and the tests)."""
    raw_dead_letters: bool = _var("ENDUSERS_DEADLETTER_RAW", False)
    """Keep rejected values unredacted in dead letters (debugging only: they hold personal data)."""
    batch_size: int = _var("ENDUSERS_BATCH_SIZE", 5000, ge=1)
    session_timeout: float = _var("ENDUSERS_SESSION_TIMEOUT", 10.0, gt=0)
    """Seconds before a silent worker's partitions move to the others (heartbeats every third of it).
    Shorter means a dead worker's subscriptions wait less; too short and a long GC pause or a
    congested network makes a live worker lose its partitions (a rebalance, then a reload)."""
    stall_seconds: float = _var("ENDUSERS_STALL_SECONDS", 30.0)
    """Changes waiting with no batch processed for this long: /readyz says ``stalled``."""
    statement_sweep: float = _var("ENDUSERS_STATEMENT_SWEEP", 60.0, gt=0)
    """Seconds between two looks for billing statements that have closed (streams/worker/statements.py)."""
    web_redis_connections: int = _var("ENDUSERS_WEB_REDIS_CONNECTIONS", 20, ge=1)
    """Redis connections of the HTTP side (its own pool: HTTP load cannot starve the count stage)."""
    web_max_streams: int = _var("ENDUSERS_WEB_MAX_STREAMS", 100, ge=1)
    """Concurrent dashboard streams (SSE); beyond it 503 with Retry-After."""
    web_max_streams_per_token: int = _var("ENDUSERS_WEB_MAX_STREAMS_PER_TOKEN", 5, ge=1)
    """Concurrent dashboard streams of one token, so that one caller cannot take every stream of the
    worker (requests without a token, on a worker without tokens, share only ENDUSERS_WEB_MAX_STREAMS)."""
    web_stream_idle: float = _var("ENDUSERS_WEB_STREAM_IDLE", 60.0, gt=0)
    """Seconds a dashboard stream may go without its client taking a message (a client that stopped
    reading, or a connection gone silent); then the stream is closed and its place freed."""
    subscriptions: SubscriptionsMode = _var("ENDUSERS_SUBSCRIPTIONS", SubscriptionsMode.ANY)
    """``declared``: count only the subscriptions a config event has declared (docs/design.md)."""
    batch_within: float = _var("ENDUSERS_BATCH_WITHIN", 0.05)
    watermark_interval: float = _var("ENDUSERS_WATERMARK_INTERVAL", 0.2, gt=0, le=60)
    """Seconds between a producer's watermarks (``publish``): ingest holds an event about this long
    at most for a producer that is writing elsewhere or idle."""
    watermark_wait: float = _var("ENDUSERS_WATERMARK_WAIT", 10.0, gt=0)
    """Seconds ingest waits for a silent producer (no record, every partition read to its end)
    before it gives it up and releases what it held back."""
    max_future: int = _var("ENDUSERS_MAX_FUTURE", DEFAULT_MAX_FUTURE)
    """Microseconds an event's ``time`` may be ahead of the processing clock; later ones are rejected
    (the variable is a duration: ``30s``, ``15m``, ``24h``, ``2d``)."""
    metrics_max_labels: int = _var("ENDUSERS_METRICS_MAX_LABELS", 50, ge=1)
    """Runtimes (and providers) exported as their own label per subscription; the rest are ``other``."""
    # Kafka security, passed to the clients as they support it
    kafka_security_protocol: SecurityProtocol = _var("ENDUSERS_KAFKA_SECURITY_PROTOCOL", SecurityProtocol.PLAINTEXT)
    kafka_sasl_mechanism: SaslMechanism | None = _var("ENDUSERS_KAFKA_SASL_MECHANISM")
    """None (unset): ``PLAIN`` when a username is given."""
    kafka_username: str = _var("ENDUSERS_KAFKA_USERNAME", "")
    kafka_password: SecretStr | None = _var("ENDUSERS_KAFKA_PASSWORD")
    kafka_cafile: str = _var("ENDUSERS_KAFKA_CAFILE", "")
    # Alertmanager push (streams/worker/alerts.py); off while no URL is set
    alertmanager_url: AlertmanagerUrls = _var("ENDUSERS_ALERTMANAGER_URL", "")
    """Alertmanager base URLs, comma-separated (every member of an HA cluster gets every alert)."""
    alert_severities: SeverityList = _var("ENDUSERS_ALERT_SEVERITIES", "1:warning,100:critical")
    """``level:severity`` pairs: each severity applies from its level upward (:attr:`severities`)."""
    alert_interval: float = _var("ENDUSERS_ALERT_INTERVAL", 60.0, gt=0)
    """Seconds between re-sends of the firing alerts (Alertmanager resolves alerts nobody re-sends)."""
    dashboard_url: str = _var("ENDUSERS_DASHBOARD_URL", "")
    """The dashboard's address as people reach it, for alert links; the worker's own address if unset."""
    # Identity sources read by ``endusers connect`` (docs/sources.md)
    keycloak_url: KeycloakUrl = _var("ENDUSERS_KEYCLOAK_URL", "")
    """Keycloak's base URL (``https://sso.example.com``, with its path prefix if it has one)."""
    keycloak_username: str = _var("ENDUSERS_KEYCLOAK_USERNAME", "")
    """A master-realm administrator, signed in through ``admin-cli`` (or use a client below)."""
    keycloak_password: SecretStr | None = _var("ENDUSERS_KEYCLOAK_PASSWORD")
    keycloak_client_id: str = _var("ENDUSERS_KEYCLOAK_CLIENT_ID", "")
    """A confidential client of the realm read, whose service account has ``view-events`` and ``view-users``."""
    keycloak_client_secret: SecretStr | None = _var("ENDUSERS_KEYCLOAK_CLIENT_SECRET")
    eventhubs_connection_string: SecretStr | None = _var("ENDUSERS_EVENTHUBS_CONNECTION_STRING")
    """An Event Hubs namespace's connection string: ``connect entra`` signs in with it (SASL PLAIN)."""

    _sources: dict[str, Source] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **values: Any) -> WorkerSettings:
        """The settings of another environment than the process's (``values`` first)."""
        return cls.model_validate(values, context={"environ": environ})

    @classmethod
    def only(cls, *variables: str) -> WorkerSettings:
        """Settings read from these variables alone, the rest at their defaults: for a command that
        needs one value (``replay``'s far-future limit) and must not fail on unrelated settings."""
        return cls.from_environment({name: os.environ[name] for name in variables if name in os.environ})

    # mypy infers Never for this validator's model once scim2-models (the gateway's) is in the graph: a
    # false alarm on pydantic's ValidationInfo type-variable default, which depends on the analysis order.
    @model_validator(mode="wrap")  # type: ignore[arg-type, unused-ignore]
    @classmethod
    def _read_environment(cls, values: Any, handler: ModelWrapValidatorHandler[WorkerSettings],
                          info: ValidationInfo) -> WorkerSettings:
        """Each variable that is set, for the fields not given; notes where each value came from.
        A wrong value raises :class:`SettingsError` (``WorkerSettings()`` and ``model_validate`` alike)."""
        if not isinstance(values, dict):
            return handler(values)
        environ: Mapping[str, str] = (info.context or {}).get("environ", os.environ)
        read: dict[str, str] = {}
        sources: dict[str, Source] = {}
        for name, spec in cls.model_fields.items():
            variable = str(spec.validation_alias)
            if name in values:
                sources[name] = "argument"
            elif variable in environ:
                read[variable] = environ[variable]
                sources[name] = "environment"
            else:
                sources[name] = "default"
        try:
            settings = handler({**read, **values})
        except ValidationError as exc:
            raise SettingsError(_problems(exc)) from None
        settings._sources = sources
        return settings

    @field_validator("redis_sentinel_password", "secret", "kafka_password", "kafka_sasl_mechanism", "keycloak_password",
                     "keycloak_client_secret", "eventhubs_connection_string", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("web_allowed_hosts", "api_tokens_file", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("raw_dead_letters", mode="before")
    @classmethod
    def _zero_or_one(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if value not in ("0", "1", ""):
            raise ValueError("allowed values: 0, 1")
        return value == "1"

    @field_validator("max_future", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @property
    def alertmanager_urls(self) -> list[str]:
        """ENDUSERS_ALERTMANAGER_URL's URLs (none: no alerts are pushed)."""
        return _listed(self.alertmanager_url)

    @property
    def severities(self) -> Severities:
        return Severities.parse(self.alert_severities)

    def source(self, name: str) -> Source:
        """Where field ``name``'s value came from: the environment, the default or an argument."""
        return self._sources.get(name, "default")

    def sentinel_password(self) -> str | None:
        """ENDUSERS_REDIS_SENTINEL_PASSWORD, for the Redis client (None: the sentinels have none)."""
        return None if self.redis_sentinel_password is None else self.redis_sentinel_password.get_secret_value()

    @property
    def heartbeat_interval(self) -> float:
        return self.session_timeout / 3

    def topic(self, name: str) -> str:
        """``logins`` -> ``enduser.logins`` (prefix from ENDUSERS_TOPIC_PREFIX)."""
        return f"{self.topic_prefix}.{name}"

    @property
    def per_subscription_topics(self) -> bool:
        return self.topic_layout == TopicLayout.PER_SUBSCRIPTION

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
        if self.environment == Environment.DEVELOPMENT:
            return DEVELOPMENT_SECRET
        raise MissingSecret(
            "ENDUSERS_SECRET is not set. Set it to a long random value (for example the output of "
            "'python -c \"import secrets; print(secrets.token_hex(32))\"') and keep it, or set "
            "ENDUSERS_ENV=development to use the built-in development secret on a test machine.")

    def web_tokens_file(self) -> str | None:
        """The token file the web server checks; None: the API is open. Open means either
        ``ENDUSERS_WEB_AUTH=none`` or a development worker without a token file; a production worker
        without one raises :class:`OpenApi` (a forgotten file must not serve every licensee to anyone)."""
        if self.web_auth == WebAuth.NONE:
            if self.api_tokens_file:
                raise OpenApi("ENDUSERS_WEB_AUTH=none and ENDUSERS_API_TOKENS_FILE contradict each other: "
                              "unset one of them.")
            return None
        if self.api_tokens_file:
            return self.api_tokens_file
        if self.environment == Environment.DEVELOPMENT:
            return None
        raise OpenApi(
            "ENDUSERS_API_TOKENS_FILE is not set: the HTTP API would answer anyone as an admin. Create "
            "tokens with 'endusers token create' and set ENDUSERS_API_TOKENS_FILE to their file, or set "
            "ENDUSERS_WEB_AUTH=none if the API is meant to be open (a private network only).")


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
    secure = settings.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    return KafkaConnection(
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol=settings.kafka_security_protocol.value,
        ssl_context=ssl.create_default_context(cafile=settings.kafka_cafile or None) if secure else None,
        username=settings.kafka_username,
        password=settings.kafka_password,
        sasl_mechanism=(settings.kafka_sasl_mechanism or SaslMechanism.PLAIN).value,
    )


def kafka_client_options(settings: WorkerSettings) -> dict[str, object]:
    """Connection options for aiokafka clients (publish, ingest, topics), including TLS and SASL."""
    return kafka_connection(settings).client_options()


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


# --- errors and the effective settings --------------------------------------------------------------

SECRETS = frozenset({"secret", "kafka_password", "redis_sentinel_password", "keycloak_password", "keycloak_client_secret",
                     "eventhubs_connection_string"})
"""Fields whose value is never shown."""
URLS = frozenset({"redis", "alertmanager_url", "dashboard_url"})
"""Fields of URLs (comma-separated), shown with any password in them masked."""
MASK = "********"


def variable_of(name: str) -> str:
    """The variable of field ``name`` (``topic_layout`` -> ``ENDUSERS_TOPIC_LAYOUT``)."""
    return str(WorkerSettings.model_fields[name].validation_alias)


def _choices(name: str) -> list[str]:
    """The allowed values of an enum field, in their order; [] for any other field."""
    annotation = WorkerSettings.model_fields[name].annotation
    for kind in (annotation, *get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, Enum):
            return [str(member.value) for member in kind]
    return []


_REASONS = {"int_parsing": "expected a whole number", "int_from_float": "expected a whole number",
            "float_parsing": "expected a number", "finite_number": "expected a finite number", "bool_parsing": "allowed values: 0, 1",
            "greater_than_equal": "expected at least {ge}", "greater_than": "expected more than {gt}",
            "less_than_equal": "expected at most {le}"}


def _problems(exc: ValidationError) -> list[str]:
    """One line per wrong variable: ``ENDUSERS_X='value': reason`` (secrets and passwords masked)."""
    fields = {str(spec.validation_alias): name for name, spec in WorkerSettings.model_fields.items()}
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else ""
        name = fields.get(key, key)
        if name not in WorkerSettings.model_fields:  # an unknown keyword argument (a caller's mistake)
            problems.append(f"{key}: {error['msg']}")
            continue
        context = error.get("ctx") or {}
        choices = _choices(name)
        if choices:
            reason = "allowed values: " + ", ".join(choices)
        elif error["type"] == "value_error":
            reason = str(context.get("error", error["msg"]))
        else:
            template = _REASONS.get(error["type"])
            reason = template.format(**context) if template else error["msg"]
        problems.append(f"{variable_of(name)}={_shown(name, error['input'])!r}: {reason}")
    return problems


def _shown(name: str, value: Any) -> str:
    """A value as it may be printed: secrets masked, the Redis URL without its password."""
    if name in SECRETS:
        return MASK if value else ""
    if name in URLS:
        from streams.store.connect import masked

        return ",".join(masked(url) for url in str(value).split(","))
    return str(value)


def _text(name: str, value: Any) -> str:
    """A field's value in the variable's own form (``24h``, ``1``, ``shared``, ``10``)."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if name == "max_future":
        return format_duration(int(value))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def describe(settings: WorkerSettings) -> list[tuple[str, str, Source]]:
    """Every setting as (variable, value as it may be shown, where it came from), in field order."""
    return [(variable_of(name), _shown(name, _text(name, getattr(settings, name))), settings.source(name))
            for name in WorkerSettings.model_fields]


def warn_if_development_secret(settings: WorkerSettings) -> None:
    """Said loudly at a worker's start: digests under the built-in secret are guessable."""
    if settings.secret is None:
        log.warning(
            "ENDUSERS_SECRET is not set: identifiers are digested with the built-in DEVELOPMENT "
            "secret (ENDUSERS_ENV=development). Set ENDUSERS_SECRET to a long random value in "
            "production (and keep it: changing it later splits every person in two)."
        )
