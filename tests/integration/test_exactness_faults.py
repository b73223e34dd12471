"""Exactness when the changes topic gains partitions, when Redis loses writes that Kafka moved past,
and when a state does not record how it was digested: on the real Redis, and Kafka where a worker runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from counters import Digester, DigestMismatch, engine
from counters.ports import Position
from counters.state import SubscriptionState
from streams.store.redis_store import RedisStore
from tests.fixtures.factories import changes, lines, login
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import DeploymentFactory
from tests.fixtures.services import Services, empty_redis_db

pytestmark = pytest.mark.integration
TEST_DB = 14


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[Redis]:
    async with empty_redis_db(services, TEST_DB) as client:
        yield client


def apply_login(state: SubscriptionState, user: str) -> None:
    for change in changes(lines([login(user, email=f"{user}@x.org")])):
        engine.apply(state, change)


async def test_a_subscription_counted_from_two_changes_partitions_has_one_writer_at_a_time(redis: Redis) -> None:
    """The changes topic gained partitions: the subscription's key maps to partition 5 now, read by one
    worker, while another still drains what partition 0 holds of it. Each passes its own partition's
    position check; the subscription's fence lets only one of them write from a stale copy."""
    draining, new_owner = RedisStore(redis), RedisStore(redis)
    state = await draining.load("acme")
    apply_login(state, "1")
    assert await draining.commit(state, Position("changes:0", None, 1), [])

    theirs = await new_owner.load("acme")
    apply_login(theirs, "2")
    assert await new_owner.commit(theirs, Position("changes:5", None, 1), [])

    ours = await draining.load("acme")  # the cached copy, without user 2
    apply_login(ours, "3")
    assert not await draining.commit(ours, Position("changes:0", 1, 2), []), "a stale copy must not be written"

    draining.forget("acme")
    ours = await draining.load("acme")
    apply_login(ours, "3")
    assert await draining.commit(ours, Position("changes:0", 1, 2), [])
    assert (await RedisStore(redis).load("acme")).summary()["records"] == 3
    assert (await RedisStore(redis).counts("acme") or {})["records"] == 3


async def test_a_retried_commit_that_landed_is_recognised_by_its_fence(redis: Redis) -> None:
    store = RedisStore(redis)
    state = await store.load("acme")
    apply_login(state, "1")
    assert await store.commit(state, Position("changes:0", None, 1), [])
    apply_login(state, "2")
    assert await store.commit(state, Position("changes:0", 1, 2), [])
    state.positions = {"changes:0": 1}  # the reply of that commit was lost: the retry sends it again
    assert await store.commit(state, Position("changes:0", 1, 2), [], retried=True)


async def test_production_refuses_a_state_that_records_no_fingerprint(redis: Redis) -> None:
    unrecorded = RedisStore(redis)  # as a version before the fingerprint commits
    state = await unrecorded.load("acme")
    apply_login(state, "1")
    assert await unrecorded.commit(state, Position("changes:0", None, 1), [])
    assert not await redis.hexists("endusers:{acme}:meta", "digest")

    production = RedisStore(redis)
    production.fingerprint = Digester().fingerprint
    with pytest.raises(DigestMismatch) as refused:
        await production.load("acme")
    assert "has no record of the digests it was counted with" in str(refused.value)
    assert Digester().fingerprint in str(refused.value)
    assert (await production.load("fresh")).summary()["records"] == 0, "a new subscription is no one's yet"

    development = RedisStore(redis)
    development.fingerprint, development.adopt_unrecorded = Digester().fingerprint, True
    assert (await development.load("acme")).summary()["records"] == 1


def _logins(people: range) -> list[dict[str, object]]:
    return [{"type": "login", "subscription": "lost", "user_id": str(n), "email": f"u{n}@client.example"}
            for n in people]


def test_commits_redis_lost_across_a_restart_are_found_and_counted_again(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory(partitions=1)
    worker = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "first.jsonl", _logins(range(5)))))
    deployment.wait_caught_up()
    with deployment.redis() as redis:
        snapshot = {key: redis.dump(key) for key in redis.keys("*")}
    deployment.cli("publish", str(write_jsonl(tmp_path / "second.jsonl", _logins(range(5, 10)))))
    deployment.wait_caught_up()
    assert deployment.counts()["lost"]["records"] == 10
    worker.stop()
    with deployment.redis() as redis:  # a failover to a replica that missed the second batch's writes
        redis.flushdb()
        for key, value in snapshot.items():
            redis.restore(key, 0, value, replace=True)
    assert deployment.counts()["lost"]["records"] == 5

    restarted = deployment.start_worker(loglevel="info")
    deployment.cli("publish", str(write_jsonl(tmp_path / "third.jsonl", _logins(range(10, 11)))))
    deployment.wait_caught_up()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and deployment.counts()["lost"]["records"] < 11:
        time.sleep(0.5)

    assert deployment.counts()["lost"]["records"] == 11, restarted.log_tail()
    log = restarted.log.read_text(errors="replace")
    assert "Redis lost writes (a failover?)" in log, log[-3000:]
    metrics = httpx.get(restarted.url + "/metrics", timeout=5).text
    lost = [line for line in metrics.splitlines() if line.startswith("endusers_changes_lost_ranges_total{")]
    assert lost and float(lost[0].split()[-1]) == 1.0, lost
    assert httpx.get(restarted.url + "/readyz", timeout=5).status_code == 200, "ready once read again"
    restarted.stop()
