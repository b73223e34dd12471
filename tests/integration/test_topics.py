"""Topics are created with ENDUSERS_PARTITIONS partitions, never left to the broker's auto-creation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import SOURCE_TOPICS, WorkerSettings
from streams.kafka.topics import ensure_topics
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration


def test_publish_before_any_worker_creates_the_source_topics_with_the_configured_partitions(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    events = [{"type": "login", "subscription": "early", "user_id": "1"}]
    deployment.cli("publish", str(write_jsonl(tmp_path / "early.jsonl", events)))
    counts = asyncio.run(deployment.partition_counts())
    assert {deployment.topic(t): counts.get(deployment.topic(t)) for t in SOURCE_TOPICS.values()} == \
        {deployment.topic(t): 4 for t in SOURCE_TOPICS.values()}


def test_a_topic_with_fewer_partitions_than_configured_is_reported(deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory()
    settings = WorkerSettings(kafka=f"kafka://{deployment.kafka_bootstrap}", topic_prefix=deployment.prefix, partitions=4)
    narrow, fresh = deployment.topic("logins"), deployment.topic("visits")

    async def scenario() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(narrow, 1, 1)])
        finally:
            await admin.close()
        return await ensure_topics(settings, [narrow, fresh])

    (warning,) = asyncio.run(scenario())
    assert warning.startswith(f"topic {narrow} has 1 partition(s) but ENDUSERS_PARTITIONS is 4")
    assert asyncio.run(deployment.partition_counts()) == {narrow: 1, fresh: 4}
