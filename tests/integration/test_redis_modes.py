"""Redis Cluster and Sentinel: every read and write path, commits confirmed by replicas, a primary
killed mid-stream; and the worker's answer when Redis comes back with an older position."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from counters import Position, StoreUnavailable
from streams.settings import WorkerSettings
from streams.store.connect import NotDurable, connect_sync
from streams.store.keys import Keys
from streams.store.redis_store import RedisStore
from tests.fixtures.clusters import Cluster, ClusterDeploymentFactory, kill, wait_for
from tests.fixtures.examples import assert_counts_match, example_files, expected_for
from tests.fixtures.factories import changes
from tests.fixtures.generate import churn_stream, write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory
from tests.integration.test_pipeline import assert_capacity_events_chain, renamed
from tests.integration.test_redis_store import run_batches

pytestmark = pytest.mark.integration
FAILOVER_EVENTS = 100_000


def _url(request: pytest.FixtureRequest, mode: str) -> tuple[Cluster, str]:
    cluster: Cluster = request.getfixturevalue("redis_cluster" if mode == "cluster" else "redis_sentinel")
    return cluster, cluster.env["ENDUSERS_REDIS"]


@pytest.mark.cluster
@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
async def test_store_reads_and_writes_on_cluster_and_sentinel(request: pytest.FixtureRequest, mode: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples through the commit script with WAIT 1, a reload, and every reader's call."""
    from tests.fixtures.clusters import flush

    _, url = _url(request, mode)
    capacity = next(p for p in example_files() if "capacity" in p.name)
    for path in [p for p in example_files() if p != capacity] + [capacity]:  # each alone: they share names
        flush(url)
        store = RedisStore.from_settings(WorkerSettings(redis=url, redis_min_replicas=1))
        try:
            assert store.replicas == 1
            expected = expected_for(path)["subscriptions"]
            await run_batches(store, list(changes(path.read_bytes().splitlines())))
            for name in expected:
                store.forget(name)
            assert_counts_match({n: (await store.load(n)).summary() for n in expected}, expected)
            assert_counts_match({n: await store.counts(n) for n in expected}, expected)
            assert set(await store.subscriptions()) == set(expected)
        finally:
            await store.close()
    store = RedisStore.from_url(url)  # the readers, on the capacity example's subscription
    try:
        subscription = next(iter(expected_for(capacity)["subscriptions"]))
        assert await store.settings(subscription) is not None
        assert await store.sources([subscription]) == {subscription: ["changes:0"]}
        side = (await store.read_sides([subscription, "never-committed"]))[subscription]  # one pipeline, two slots
        assert (side.counts, side.settings) == (await store.counts(subscription), await store.settings(subscription))
        assert len(await store.recent_capacity_events(subscription)) > 0
        assert len(await store.history(subscription)) >= 1
        pending = await store.outbox(subscription)
        assert pending
        await store.outbox_sent(subscription, pending)  # one LREM per entry, pipelined on its node
        assert await store.outbox(subscription) == []
        await store.confirm(subscription)
        entries = [{"changed": ["domains"], "actor": "test", "topic": "t", "partition": 0, "offset": n,
                    "after": {"domains": [f"d{n}.example"]}} for n in range(3)]
        state = await store.load(subscription)
        at = state.positions["changes:0"]  # the audit entries travel in the commit script (one slot)
        assert await store.commit(state, Position("changes:0", at, at + 1), [], entries)
        assert [e["offset"] for e in await store.audit(subscription)] == [2, 1, 0]
        assert await store.ping()
    finally:
        await store.close()


@pytest.mark.cluster
async def test_a_commit_fewer_replicas_confirm_is_not_durable(redis_cluster: Cluster) -> None:
    """Each primary of the local cluster has one replica: asking for two must fail, visibly."""
    from tests.fixtures.clusters import flush

    url = redis_cluster.env["ENDUSERS_REDIS"]
    flush(url)
    path = next(p for p in example_files() if "capacity" in p.name)
    items = list(changes(path.read_bytes().splitlines()))
    store = RedisStore.from_url(url)
    demanding = RedisStore(store.redis, replicas=2, wait_ms=100)
    try:
        with pytest.raises(StoreUnavailable, match="NotDurable: 1 of 2 replicas") as refused:
            await run_batches(demanding, items)
        assert isinstance(refused.value.__cause__, NotDurable)
        with pytest.raises(StoreUnavailable, match="NotDurable"):
            await demanding.confirm(items[0].subscription)
    finally:
        await store.close()


def _publish_examples_and_check(deployment: Deployment, tmp_path: Path) -> None:
    files = [renamed(p, tmp_path) for p in example_files()]
    deployment.publish_examples(files)
    deployment.wait_caught_up()
    counts = deployment.counts()  # the CLI, on the same Redis
    for path in example_files():
        expected = {f"{path.stem}-{name}": value for name, value in expected_for(path)["subscriptions"].items()}
        assert_counts_match({name: counts.get(name) for name in expected}, expected)
        with httpx.Client(base_url=deployment.workers[0].url, timeout=5) as http:  # the API and dashboard reader
            for name, want in expected.items():
                assert http.get(f"/api/v1/subscriptions/{name}").json()["records"] == want["records"]
            assert set(expected) <= set(http.get("/api/v1/subscriptions").json()["subscriptions"])
            assert http.get("/readyz").status_code == 200


@pytest.mark.cluster
@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_examples_live_on_cluster_and_sentinel(request: pytest.FixtureRequest, mode: str, cluster_deployment: ClusterDeploymentFactory,
                                               tmp_path: Path) -> None:
    _, url = _url(request, mode)
    deployment: Deployment = cluster_deployment(redis_url=url)
    deployment.start_worker()
    _publish_examples_and_check(deployment, tmp_path)


def _replay(deployment: Deployment, *files: Path) -> dict[str, Any]:
    return orjson.loads(deployment.cli("replay", *map(str, files)).stdout)  # type: ignore[no-any-return]


def _assert_exact(deployment: Deployment, *files: Path, min_events: int = 10) -> None:
    """Counts equal the replay's; every capacity event of the replay is on the topic, and nothing else."""
    expected = _replay(deployment, *files)
    want = {name: doc["records"] for name, doc in expected["subscriptions"].items()}
    # a re-read partition is behind Redis, not behind Kafka's committed offsets: poll the counts
    wait_for(lambda: {n: d["records"] for n, d in deployment.counts().items()} == want, 60, "counts of the replay")
    assert_counts_match(deployment.counts(), expected["subscriptions"])
    live = assert_capacity_events_chain(deployment.read_topic("capacity", timeout=30))
    assert len(expected["capacity_events"]) >= min_events, "the stream must cross thresholds"
    assert {e["id"]: e for e in live} == {e["id"]: e for e in expected["capacity_events"]}


def _kill_primary_mid_stream(deployment: Deployment, tmp_path: Path, kill_primary: Any, restore: Any) -> float:
    """Publish a stream, SIGKILL the primary of the busiest subscription once counting is under way,
    and return the seconds from the kill until that subscription's commits succeed again."""
    configs, stream = churn_stream(FAILOVER_EVENTS)
    config_file = write_jsonl(tmp_path / "config.jsonl", configs)
    stream_file = write_jsonl(tmp_path / "stream.jsonl", stream)
    busiest = Counter(e["subscription"] for e in stream).most_common(1)[0][0]
    deployment.start_worker()
    deployment.cli("publish", str(config_file))
    deployment.wait_caught_up()
    reader = connect_sync(deployment.redis_url)
    key = Keys(busiest).counts

    def records() -> int:
        return int(orjson.loads(reader.get(key) or b"{}").get("records", 0))

    publishing = subprocess.Popen([sys.executable, "-m", "streams", "publish", str(stream_file)],
                                  env=deployment.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: records() >= 500, 120, "counting under way")
    before = reader.get(key)
    killed_at = kill_primary(busiest)
    back_at = wait_for(lambda: reader.get(key) != before, 120, "commits after the kill")
    restore()
    assert publishing.wait(timeout=300) == 0, publishing.stderr.read() if publishing.stderr else ""
    deployment.wait_caught_up(timeout=300)
    reader.close()
    _assert_exact(deployment, config_file, stream_file)
    return back_at - killed_at


@pytest.mark.cluster
def test_cluster_primary_killed_mid_stream_stays_exact(redis_cluster: Cluster, cluster_deployment: ClusterDeploymentFactory,
                                                       tmp_path: Path) -> None:
    """Without MIN_REPLICAS: the replica takes over; a commit lost on the way is counted again."""
    url = redis_cluster.env["ENDUSERS_REDIS"]
    deployment: Deployment = cluster_deployment(redis_url=url)

    def kill_primary(subscription: str) -> float:
        client = connect_sync(url)
        node = client.get_node_from_key(Keys(subscription).meta)  # type: ignore[union-attr]
        client.close()
        kill(redis_cluster.redis_pid(node.port))
        return time.monotonic()

    seconds = _kill_primary_mid_stream(deployment, tmp_path, kill_primary, redis_cluster.up)
    print(f"\nRedis Cluster: commits succeeded again {seconds:.1f} s after SIGKILL of the primary "
          f"(cluster-node-timeout {os.environ.get('ENDUSERS_REDIS_CLUSTER_NODE_TIMEOUT', '3000')} ms)")


@pytest.mark.cluster
def test_sentinel_primary_killed_mid_stream_stays_exact(redis_sentinel: Cluster, cluster_deployment: ClusterDeploymentFactory,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MIN_REPLICAS=1: no commit is acknowledged before the replica has it, so the promoted
    replica has every commit; commits resume once the old primary is back as a replica."""
    monkeypatch.setenv("ENDUSERS_REDIS_MIN_REPLICAS", "1")
    url = redis_sentinel.env["ENDUSERS_REDIS"]
    deployment: Deployment = cluster_deployment(redis_url=url)
    sentinel = url.split("//")[1].split(",")[0]
    killed: list[int] = []

    def master() -> int:
        host, port = sentinel.split(":")
        answer = subprocess.run(["redis-cli", "-h", host, "-p", port, "sentinel", "get-master-addr-by-name",
                                 "endusers"], capture_output=True, text=True, check=True).stdout.split()
        return int(answer[1])

    killed_at: list[float] = []

    def kill_primary(subscription: str) -> float:
        killed.append(master())
        kill(redis_sentinel.redis_pid(killed[0]))
        killed_at.append(time.monotonic())
        return killed_at[0]

    def restore() -> None:
        redis_sentinel.up()

    failed_over: list[float] = []

    def restore_after_failover() -> None:  # as a supervisor would restart the dead node
        failed_over.append(wait_for(lambda: master() != killed[0], 60, "sentinel failover"))
        restore()

    import threading

    restarter = threading.Thread(target=lambda: (time.sleep(0.5), restore_after_failover()))

    def kill_and_schedule(subscription: str) -> float:
        at = kill_primary(subscription)
        restarter.start()
        return at

    seconds = _kill_primary_mid_stream(deployment, tmp_path, kill_and_schedule, lambda: restarter.join(120))
    print(f"\nRedis Sentinel (MIN_REPLICAS=1): the replica was promoted {failed_over[0] - killed_at[0]:.1f} s "
          f"after SIGKILL of the primary; commits succeeded again after {seconds:.1f} s, once the old "
          "primary was restarted and back as a replica")


def test_redis_back_with_an_older_position_makes_the_worker_read_again(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    """A failover can lose commits after Kafka's offsets moved past them. The worker's next commit is
    refused (its copy is newer than Redis), and instead of counting on from there, which would skip
    the lost changes for good, it reads the partition again from the position Redis holds."""
    deployment: Deployment = deployment_factory()
    configs, stream = churn_stream(6_000, subscriptions=1)
    files = [write_jsonl(tmp_path / "config.jsonl", configs)]
    for part in range(3):
        files.append(write_jsonl(tmp_path / f"part{part}.jsonl", stream[part * 2000 : (part + 1) * 2000]))
    worker = deployment.start_worker()
    redis = deployment.redis()
    keys = Keys("sub-0")
    for file in files[:2]:
        deployment.cli("publish", str(file))
    deployment.wait_caught_up()
    snapshot = {key: redis.dump(key) for key in redis.scan_iter("endusers:{sub-0}:*")}
    old_position = redis.hgetall(keys.meta)
    deployment.cli("publish", str(files[2]))
    deployment.wait_caught_up()
    assert redis.hgetall(keys.meta) != old_position
    for key in redis.scan_iter("endusers:{sub-0}:*"):  # back in time, as a promoted stale replica would be
        redis.delete(key)
    for key, value in snapshot.items():
        redis.restore(key, 0, value, replace=True)
    deployment.cli("publish", str(files[3]))
    deployment.wait_caught_up()
    assert "reading the partition again" in worker.log.read_text()
    _assert_exact(deployment, *files, min_events=1)
