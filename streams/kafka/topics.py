"""The service's Kafka topics, created with the configured partition count before anything uses them.

A broker with ``auto.create.topics.enable`` creates a topic on the first metadata request that names
it, with the broker's default partition count (often 1). A topic created that way caps how many
workers can share the work, silently, so topics are created here explicitly, and a topic that
already has fewer partitions than ``ENDUSERS_PARTITIONS`` is reported instead of ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import SOURCE_TOPICS, WorkerSettings, kafka_client_options

OUTPUT_TOPICS = ("capacity", "counts", "deadletter", "statements")
INTERNAL_TOPICS = ("changes",)
_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS: another client created it first
_WEEK_MS = str(7 * 24 * 3600 * 1000)

TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    "deadletter": {"cleanup.policy": "delete", "retention.ms": _WEEK_MS},
    "changes": {"cleanup.policy": "delete", "retention.ms": _WEEK_MS},
    "counts": {"cleanup.policy": "compact"},
}
"""Explicit retention, not the broker's default: dead letters (rejected input, redacted) and the
internal changes go after 7 days; ``counts`` keeps the latest document per subscription (its key)."""


def topic_configs(settings: WorkerSettings, topic: str) -> dict[str, str]:
    """The configs a topic of this service is created with (none for the source topics: the operator's)."""
    for name, configs in TOPIC_CONFIGS.items():
        if topic == settings.topic(name):
            return dict(configs)
    return {}


def all_topics(settings: WorkerSettings) -> list[str]:
    """Every topic the service reads or writes, with its prefix; in the per-subscription layout the
    source topics are made per licensee (by the operator, or by ``endusers publish``)."""
    sources = () if settings.per_subscription_topics else tuple(SOURCE_TOPICS.values())  # made per licensee
    return [settings.topic(name) for name in (*sources, *INTERNAL_TOPICS, *OUTPUT_TOPICS)]


def durability_configs(settings: WorkerSettings) -> dict[str, str]:
    """For every topic the service creates: with three or more replicas, a write needs two in sync (``acks=all``): one broker may fail without
    losing an acknowledged message or stopping the writes."""
    return {"min.insync.replicas": "2"} if settings.replication_factor >= 3 else {}


async def ensure_topics(settings: WorkerSettings, topics: Iterable[str]) -> list[str]:
    """Create the missing topics with ``settings.partitions``; return one warning per existing topic
    with fewer partitions (the most workers that can share it).

    Only topics known to exist are described: describing a missing one would auto-create it.
    """
    wanted = list(topics)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, settings.partitions, settings.replication_factor,
                          topic_configs={**topic_configs(settings, t), **durability_configs(settings)})
                 for t in missing])
            failures = [f"{topic}: {message or code}" for topic, code, *rest in response.topic_errors
                        for message in [rest[0] if rest else None] if code not in (0, _ALREADY_EXISTS)]
            if failures:
                raise RuntimeError("cannot create topics: " + "; ".join(failures))
            await _until_served(admin, missing)
        present = [t for t in wanted if t in existing]
        warnings = []
        for description in await admin.describe_topics(present) if present else []:
            count = len(description.get("partitions") or [])
            if 0 < count < settings.partitions:
                warnings.append(
                    f"topic {description['topic']} has {count} partition(s) but ENDUSERS_PARTITIONS is "
                    f"{settings.partitions}: at most {count} worker(s) can share it. It was probably "
                    "auto-created by the broker; recreate it, or add partitions while it is drained.")
        return warnings
    finally:
        await admin.close()


async def _until_served(admin: AIOKafkaAdminClient, created: list[str], timeout: float = 30.0) -> None:
    """Until the broker's metadata lists the new topics with a leader for every partition.

    Creation returns before the metadata has caught up; a consumer that subscribes in between is told
    the topic does not exist and ignores it until its next metadata refresh, minutes later.
    """
    deadline = time.monotonic() + timeout
    while True:
        if set(created) <= set(await admin.list_topics()):  # listing never auto-creates; describing might
            described = await admin.describe_topics(created)
            if all(d.get("error_code", 0) == 0 and d.get("partitions")
                   and all(p.get("leader", -1) >= 0 for p in d["partitions"]) for d in described):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"created topics not served by the broker within {timeout:.0f} s: {created}")
        await asyncio.sleep(0.1)
