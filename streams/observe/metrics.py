"""Prometheus metrics of the stream processor (``GET /metrics``, docs/operations.md).

Everything lives in a dedicated :data:`REGISTRY` (not the process-global default), so tests and several
apps in one process never collide, and ``/metrics`` shows exactly the series this service defines.

The pipeline calls the module-level objects directly::

    EVENTS.labels(topic).inc(n)
    REJECTIONS.labels(rejection.category).inc()
    DEAD_LETTERS.inc()
    BATCH_SECONDS.labels("ingest").observe(seconds)  # or "count"
    CAPACITY_EVENTS.labels(event.subscription, event.user_class, event.direction).inc()
    CONSUMER_LAG.labels(topic, str(partition)).set(lag)
    observe_counts(subscription, counts, settings["capacity"], shared_identifiers)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from counters import CLASSES

REGISTRY = CollectorRegistry(auto_describe=True)


EVENTS = Counter(
    "endusers_events_processed_total",
    "Input events consumed, per source topic (valid or not).",
    ["topic"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "endusers_rejections_total",
    "Input events rejected as invalid, per reason category (see schemas.codec.RejectionCategory).",
    ["reason"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "endusers_dead_letters_total",
    "Rejected messages published to the dead-letter topic.",
    registry=REGISTRY,
)
OTHER_DIGESTS = Counter(
    "endusers_changes_other_digests_total",
    "Changes messages refused by the count stage because the worker that ingested them digests with "
    "another ENDUSERS_SECRET or ENDUSERS_DIGEST_SCOPE (sent to the dead-letter topic).",
    registry=REGISTRY,
)
LOST_RANGES = Counter(
    "endusers_changes_lost_ranges_total",
    "Times a changes partition was found processed less far in Redis than Kafka's committed offset "
    "(Redis lost writes, a failover), so the range was read again.",
    ["topic", "partition"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "endusers_batch_seconds",
    "Time spent on one batch of events, per processing stage (ingest, count).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
CAPACITY_EVENTS = Counter(
    "endusers_capacity_events_total",
    "Capacity-change events emitted, per subscription, class and direction.",
    ["subscription", "user_class", "direction"],
    registry=REGISTRY,
)
WATERMARK_GIVEN_UP = Counter(
    "endusers_watermark_producers_given_up_total",
    "Producers ingest stopped waiting for: silent for ENDUSERS_WATERMARK_WAIT without closing (died, or cut off).",
    registry=REGISTRY,
)

CONSUMER_LAG = Gauge(
    "endusers_consumer_lag",
    "Messages not yet read (high-water mark minus the last fetched offset), per partition of the source and changes topics.",
    ["topic", "partition"],
    registry=REGISTRY,
)

USERS = Gauge(
    "endusers_users",
    "Licensed end users (deduplicated individuals) of a subscription, per class.",
    ["subscription", "user_class"],
    registry=REGISTRY,
)
RECORDS = Gauge(
    "endusers_records",
    "Countable user records of a subscription (no deduplication).",
    ["subscription"],
    registry=REGISTRY,
)
RUNTIME_USERS = Gauge(
    "endusers_runtime_users",
    "End users (individuals) of one runtime, per class (the per-runtime estimate).",
    ["subscription", "runtime", "user_class"],
    registry=REGISTRY,
)
RUNTIME_RECORDS = Gauge(
    "endusers_runtime_records",
    "Countable user records of one runtime.",
    ["subscription", "runtime"],
    registry=REGISTRY,
)
PROVIDER_RECORDS = Gauge(
    "endusers_provider_records",
    "Countable user records per user provider (no deduplication).",
    ["subscription", "provider"],
    registry=REGISTRY,
)
ANONYMOUS_SESSIONS = Gauge(
    "endusers_anonymous_sessions",
    "Distinct anonymous sessions of a subscription (an estimate within 2%).",
    ["subscription"],
    registry=REGISTRY,
)
CAPACITY = Gauge(
    "endusers_capacity",
    "Licensed capacity per class; no series when the capacity is unlimited.",
    ["subscription", "user_class"],
    registry=REGISTRY,
)
LEVEL = Gauge(
    "endusers_level",
    "Current capacity level (the highest threshold percent held, 0 if none) per class.",
    ["subscription", "user_class"],
    registry=REGISTRY,
)
SHARED_IDENTIFIERS = Gauge(
    "endusers_shared_identifiers",
    "Emails and logins held by more records than the subscription's shared_identifier_threshold: their "
    "records still count as one individual; see GET /api/v1/subscriptions/{id}/shared-identifiers.",
    ["subscription"],
    registry=REGISTRY,
)
INVALID_EMAILS = Gauge(
    "endusers_invalid_emails",
    "Events that carried an invalid email (treated as no email): a data-quality problem to fix upstream.",
    ["subscription"],
    registry=REGISTRY,
)

SOURCE_LAST_EVENT = Gauge(
    "endusers_source_last_event_timestamp_seconds",
    "Time of the latest event of a user provider of a subscription (event time, never later than its commit); "
    "see GET /api/v1/subscriptions/{id}/sources.",
    ["subscription", "provider"],
    registry=REGISTRY,
)
SOURCE_SILENCE = Gauge(
    "endusers_source_silence_seconds",
    "The subscription's source_silence: how long a user provider may send nothing before it is silent "
    "(the EndUsersSourceSilent rule).",
    ["subscription"],
    registry=REGISTRY,
)

# label sets currently exported per subscription, so that runtimes/providers that vanish are removed
_LOCK = threading.Lock()
_EXPORTED: dict[str, dict[Gauge, set[tuple[str, ...]]]] = {}

OTHER = "other"
"""The label value under which the runtimes (or providers) beyond the cap are summed."""
_label_cap = 50


def cap_labels(limit: int) -> None:
    """Export at most ``limit`` runtimes and ``limit`` providers per subscription (ENDUSERS_METRICS_MAX_LABELS).

    Their names come from producers: without a cap, every new name would add series to every scrape
    and to Prometheus for good, several per name, and ``/metrics`` would grow without bound.
    """
    global _label_cap
    if limit < 1:
        raise ValueError(f"ENDUSERS_METRICS_MAX_LABELS must be at least 1, got {limit}")
    _label_cap = limit


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def observe_counts(subscription: str, counts: Mapping[str, Any], capacity: Mapping[str, int | None],
                   shared_identifiers: int = 0) -> None:
    """Set the count gauges of one subscription from its counts and the number of its shared
    identifiers.

    ``capacity`` is the subscription's ``{"internal": int|None, "external": int|None}``; a null
    capacity removes the ``endusers_capacity`` series. Runtimes and providers absent from ``counts``
    lose their series.
    """
    series: dict[Gauge, dict[tuple[str, ...], float]] = {gauge: {} for gauge in _PER_SUBSCRIPTION}
    levels = counts.get("levels") or {}
    for user_class in CLASSES:
        series[USERS][(subscription, user_class)] = _number(counts.get(user_class))
        series[LEVEL][(subscription, user_class)] = _number(levels.get(user_class))
        limit = capacity.get(user_class) if capacity else None
        if limit is not None:
            series[CAPACITY][(subscription, user_class)] = _number(limit)
    series[RECORDS][(subscription,)] = _number(counts.get("records"))
    series[SHARED_IDENTIFIERS][(subscription,)] = float(shared_identifiers)
    series[ANONYMOUS_SESSIONS][(subscription,)] = _number(counts.get("anonymous_sessions"))
    runtimes = {name: {key: _number(scope.get(key)) for key in ("records", *CLASSES)}
                for name, scope in (counts.get("runtimes") or {}).items()}
    for runtime, scope in _largest(runtimes, "records").items():
        for user_class in CLASSES:
            series[RUNTIME_USERS][(subscription, runtime, user_class)] = scope[user_class]
        series[RUNTIME_RECORDS][(subscription, runtime)] = scope["records"]
    providers = {name: {"records": _number(number)} for name, number in (counts.get("providers") or {}).items()}
    for provider, scope in _largest(providers, "records").items():
        series[PROVIDER_RECORDS][(subscription, provider)] = scope["records"]

    with _LOCK:
        exported = _EXPORTED.setdefault(subscription, {})
        for gauge, values in series.items():
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            for labels in exported.get(gauge, set()) - values.keys():
                _remove(gauge, labels)
            exported[gauge] = set(values)


def observe_sources(subscription: str, last: Mapping[str, int], silence_hours: int) -> None:
    """Set the silent-sources gauges of one subscription from each provider's latest event time (µs).

    The providers beyond the label cap are shown as one, :data:`OTHER`, with the oldest of their times
    within the last 7 days (so that one of them falling silent still shows), or the latest when none is."""
    seconds = {provider: at / 1e6 for provider, at in last.items()}
    if len(seconds) > _label_cap:
        ranked = sorted(seconds, key=lambda name: (-seconds[name], name))
        rest = [seconds[name] for name in ranked[_label_cap:]]
        recent = [at for at in rest if at >= max(seconds.values()) - 7 * 86_400]
        seconds = {name: seconds[name] for name in ranked[:_label_cap] if name != OTHER}
        seconds[OTHER] = min(recent) if recent else max(rest)
    series: dict[tuple[str, ...], float] = {(subscription, provider): at for provider, at in seconds.items()}
    with _LOCK:
        exported = _EXPORTED.setdefault(subscription, {})
        for labels, value in series.items():
            SOURCE_LAST_EVENT.labels(*labels).set(value)
        for labels in exported.get(SOURCE_LAST_EVENT, set()) - series.keys():
            _remove(SOURCE_LAST_EVENT, labels)
        exported[SOURCE_LAST_EVENT] = set(series)
        SOURCE_SILENCE.labels(subscription).set(silence_hours * 3600)
        exported[SOURCE_SILENCE] = {(subscription,)}


def _largest(values: dict[str, dict[str, float]], by: str) -> dict[str, dict[str, float]]:
    """The ``_label_cap`` largest entries by ``by`` (ties by name), the rest summed under :data:`OTHER`.

    A real entry named ``other`` joins the sum when there is one, so that the label stays one series.
    """
    if len(values) <= _label_cap:
        return values
    ranked = sorted((name for name in values if name != OTHER), key=lambda name: (-values[name][by], name))
    kept = {name: values[name] for name in ranked[:_label_cap]}
    rest = [values[name] for name in ranked[_label_cap:]] + ([values[OTHER]] if OTHER in values else [])
    kept[OTHER] = {key: sum(scope[key] for scope in rest) for key in values[ranked[0]]}
    return kept


def forget_subscription(subscription: str) -> None:
    """Remove every gauge series of a subscription (another worker counts it after a rebalance).

    Counters (capacity events emitted) stay: they count what this process did.
    """
    with _LOCK:
        for gauge, labels in _EXPORTED.pop(subscription, {}).items():
            for label_values in labels:
                _remove(gauge, label_values)
        _remove(INVALID_EMAILS, (subscription,))


def keep_lag_of(topics: Iterable[str], assigned: Iterable[tuple[str, int]]) -> None:
    """After a consumer's rebalance: drop the lag series of its ``topics``' partitions that are no
    longer ``assigned`` to it. Series of other topics belong to the worker's other consumer."""
    topics, assigned = set(topics), set(assigned)
    for sample in [s for family in CONSUMER_LAG.collect() for s in family.samples]:
        topic, partition = sample.labels["topic"], sample.labels["partition"]
        if topic in topics and (topic, int(partition)) not in assigned:
            _remove(CONSUMER_LAG, (topic, partition))


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


_PER_SUBSCRIPTION = (USERS, RECORDS, RUNTIME_USERS, RUNTIME_RECORDS, PROVIDER_RECORDS, ANONYMOUS_SESSIONS,
                     CAPACITY, LEVEL, SHARED_IDENTIFIERS)


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` (the workers' :data:`REGISTRY`, or another
    process's own, the gateway's): ``(body, content_type)``."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
