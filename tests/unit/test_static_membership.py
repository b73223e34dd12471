"""ENDUSERS_INSTANCE_ID makes both of a worker's Kafka consumers static members of their groups
(``group.instance.id``, KIP-345): a pod restarted under the same name within the session timeout gets
its partitions back without a rebalance, so no worker reloads state.

The consumers are the real aiokafka objects the worker would start (Faust's, built by its own driver,
and the ingest consumer); nothing here connects to a broker.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from streams.worker.app import create_app
from streams.settings import WorkerSettings
from streams.kafka.consumer import ingest_consumer


def consumers(settings: WorkerSettings) -> list[AIOKafkaConsumer]:
    """The count stage's consumer (as Faust's aiokafka driver creates it) and the ingest consumer."""
    app = create_app(settings)
    counting: AIOKafkaConsumer = app.consumer._thread._create_worker_consumer(app.transport)
    return [counting, ingest_consumer(settings)]


async def test_instance_id_sets_group_instance_id_of_both_consumers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDUSERS_INSTANCE_ID", "endusers-7d9f-x2k4p")
    monkeypatch.setenv("ENDUSERS_APP_ID", "endusers-test")
    built = consumers(WorkerSettings())
    try:
        assert [(c._group_id, c._group_instance_id) for c in built] == [
            ("endusers-test", "endusers-7d9f-x2k4p"), ("endusers-test-ingest", "endusers-7d9f-x2k4p")]
    finally:
        for consumer in built:
            await consumer.stop()


async def test_without_instance_id_the_consumers_are_dynamic_members(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDUSERS_INSTANCE_ID", raising=False)
    built = consumers(WorkerSettings())
    try:
        assert [c._group_instance_id for c in built] == [None, None]
    finally:
        for consumer in built:
            await consumer.stop()
