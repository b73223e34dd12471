"""Three KRaft brokers, topics with three replicas and min.insync.replicas=2, idempotent producers:
a broker killed mid-stream loses no count and no capacity event."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.fixtures.clusters import Cluster, ClusterDeploymentFactory, kill, wait_for
from tests.fixtures.generate import churn_stream, write_jsonl
from tests.fixtures.pipeline import Deployment
from tests.integration.test_redis_modes import _assert_exact

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
EVENTS = 50_000


async def _topic_settings(bootstrap: str, topic: str) -> tuple[int, str]:
    """(replicas of partition 0, min.insync.replicas) of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {name: value for name, value, *_ in configs[0].resources[0][4]}
        return len(described[0]["partitions"][0]["replicas"]), entries["min.insync.replicas"]
    finally:
        await admin.close()


def test_a_broker_killed_mid_stream_loses_nothing(kafka_cluster: Cluster, cluster_deployment: ClusterDeploymentFactory,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDUSERS_REPLICATION_FACTOR", kafka_cluster.env["ENDUSERS_REPLICATION_FACTOR"])
    bootstrap = kafka_cluster.env["ENDUSERS_KAFKA"].removeprefix("kafka://").replace(";", ",")
    deployment: Deployment = cluster_deployment(kafka_bootstrap=bootstrap)
    configs, stream = churn_stream(EVENTS)
    config_file = write_jsonl(tmp_path / "config.jsonl", configs)
    stream_file = write_jsonl(tmp_path / "stream.jsonl", stream)
    deployment.start_worker()
    assert asyncio.run(_topic_settings(bootstrap, deployment.topic("changes"))) == (3, "2")
    deployment.cli("publish", str(config_file))
    deployment.wait_caught_up()
    publishing = subprocess.Popen([sys.executable, "-m", "streams", "publish", str(stream_file)],
                                  env=deployment.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    redis = deployment.redis()
    wait_for(lambda: any(redis.scan_iter("endusers:*:counts")), 120, "counting under way")
    victim = 2  # not the first bootstrap address, so every client still starts
    assert publishing.poll() is None, "the kill must land while the stream is still being published"
    kill(kafka_cluster.kafka_pid(victim))
    killed_at = time.monotonic()
    assert publishing.wait(timeout=300) == 0, publishing.stderr.read() if publishing.stderr else ""
    deployment.wait_caught_up(timeout=300)
    print(f"\nKafka: {EVENTS} events counted {time.monotonic() - killed_at:.1f} s after SIGKILL of broker {victim}")
    kafka_cluster.up()  # the broker back (as an operator would bring it), then nothing may be missing
    _assert_exact(deployment, config_file, stream_file)
