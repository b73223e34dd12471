"""The live pipeline on the real Kafka and Redis: examples, poison input, crashes, shared work."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.examples import assert_counts_match, assert_events_match, example_files, expected_for
from tests.fixtures.generate import churn_stream, write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration
CAPACITY_EVENT_KEYS = {"id", "subscription", "user_class", "previous_level", "level", "direction", "count",
                       "capacity", "exceeded", "time", "trigger"}


def renamed(path: Path, tmp: Path) -> Path:
    """The example with its subscriptions prefixed by the file's stem, so all examples share a run."""
    out = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("subscription"), str):
            event["subscription"] = f"{path.stem}-{event['subscription']}"
        out.append(json.dumps(event))
    target = tmp / path.name
    target.write_text("\n".join(out) + "\n")
    return target


def assert_capacity_events_chain(messages: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    """Well formed; repeats carry the same id and content; each change chains from the previous one."""
    seen: dict[str, dict[str, Any]] = {}
    chains: dict[tuple[str, str], int] = {}
    unique = []
    for key, value in messages:
        event = orjson.loads(value)
        assert set(event) == CAPACITY_EVENT_KEYS, event
        assert key == event["subscription"].encode()
        assert event["direction"] == ("up" if event["level"] > event["previous_level"] else "down")
        assert event["exceeded"] == (event["count"] > event["capacity"])
        if event["id"] in seen:
            assert seen[event["id"]] == event, "a repeat must be the same change"
            continue
        seen[event["id"]] = event
        unique.append(event)
        chain = (event["subscription"], event["user_class"])
        assert event["previous_level"] == chains.get(chain, 0), f"broken chain at {event}"
        chains[chain] = event["level"]
    return unique


def test_examples_published_live_give_the_expected_counts(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    deployment.start_worker()
    files = [renamed(p, tmp_path) for p in example_files()]
    deployment.publish_examples(files)
    deployment.wait_caught_up()
    counts = deployment.counts()
    for path in example_files():
        expected = {f"{path.stem}-{name}": value for name, value in expected_for(path)["subscriptions"].items()}
        assert_counts_match({name: counts.get(name) for name in expected}, expected)
    events = assert_capacity_events_chain(deployment.read_topic("capacity"))
    # ingest merges the four topics in publish order, so the live path is the replay's, event for event
    expected = expected_for(next(p for p in example_files() if "capacity" in p.name))["capacity_events"]
    live = [e for e in events if e["subscription"] == "07-capacity-acme"]
    assert_events_match(live, [{**e, "subscription": "07-capacity-acme"} for e in expected])


async def _produce_raw(deployment: Deployment, items: list[tuple[str, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for topic, value in items:
            await producer.send_and_wait(deployment.topic(topic), value, key=b"acme")
    finally:
        await producer.stop()


def test_poison_input_goes_to_the_dead_letter_topic_and_the_worker_keeps_going(deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    poison: list[tuple[str, bytes | None]] = [
        ("logins", b"this is not json"),
        ("logins", b'{"type":"login","subscription":"acme","user_id":{"nested":1}}'),
        ("profiles", None),
        ("visits", b'{"type":"visit","subscription":"acme","session_id":"' + b"x" * 1_000_000 + b'"}'),
        ("logins", b'{"type":"login","subscription":"acme","user_id":"1","email":"\xff\xfe@example.com"}'),
        ("config", b'{"type":"config","subscription":"acme","thresholds":"80"}'),
        ("logins", b'{"type":"login","subscription":"acme","user_id":"7","email":"fine@example.com"}'),
    ]
    asyncio.run(_produce_raw(deployment, poison))
    deployment.wait_caught_up()
    assert worker.process.poll() is None, worker.log_tail()
    letters = [orjson.loads(v) for _, v in deployment.read_topic("deadletter")]
    assert len(letters) == 6
    by_offset = {(d["topic"], d["offset"]): d for d in letters}
    assert {d["topic"] for d in letters} == {deployment.topic(t) for t in ("logins", "profiles", "visits", "config")}
    reasons = sorted(d["reason"] for d in letters)
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("user_id" in r for r in reasons)
    assert any("empty message" in r for r in reasons)
    assert any("session_id" in r and "256" in r for r in reasons)
    assert any("UTF-8" in r for r in reasons)
    assert any("thresholds" in r for r in reasons)
    blob = next(d for d in letters if d["topic"] == deployment.topic("visits"))
    assert blob["value_size"] > 1_000_000 and orjson.loads(blob["value"])["session_id"] == "<session_id: 1000000 chars>"
    # by default no personal data is kept: the invalid email is gone, its letter says only how big it was
    assert all(d["redacted"] is True for d in letters if d["value_size"] is not None)
    assert not any("example.com" in orjson.dumps(d).decode() for d in letters)
    assert any(d.get("value", "").startswith("<not JSON: ") for d in letters if d["topic"] == deployment.topic("logins"))
    assert all("partition" in d and "offset" in d for d in by_offset.values())
    assert deployment.counts()["acme"]["records"] == 1


def _replay(deployment: Deployment, *files: Path) -> dict[str, Any]:
    return orjson.loads(deployment.cli("replay", *map(str, files)).stdout)  # type: ignore[no-any-return]


def _counted(deployment: Deployment) -> int:
    """Records counted so far, from the committed snapshots."""
    redis = deployment.redis()
    return sum(orjson.loads(redis.get(key) or b"{}").get("records", 0) for key in redis.scan_iter("endusers:*:counts"))


def _wait_until_some_progress(deployment: Deployment, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _counted(deployment) >= at_least:
            return
        time.sleep(0.05)
    pytest.fail("no progress before the kill")


def _crash_run(deployment: Deployment, tmp_path: Path, workers: int) -> None:
    configs, stream = churn_stream(50_000)
    config_file = write_jsonl(tmp_path / "config.jsonl", configs)
    stream_file = write_jsonl(tmp_path / "stream.jsonl", stream)
    started = [deployment.start_worker() for _ in range(workers)]
    deployment.cli("publish", str(config_file))
    deployment.wait_caught_up()
    publishing = subprocess.Popen([sys.executable, "-m", "streams", "publish", str(stream_file)],
                                  env=deployment.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_until_some_progress(deployment, at_least=1_000)
    started[0].kill()
    assert asyncio.run(deployment.lag()) > 0, "the kill must land before the stream is fully consumed"
    assert publishing.wait(timeout=300) == 0, publishing.stderr.read() if publishing.stderr else ""
    if workers == 1:
        deployment.start_worker()
    deployment.wait_caught_up(timeout=300)
    expected = _replay(deployment, config_file, stream_file)
    assert_counts_match(deployment.counts(), expected["subscriptions"])
    live = assert_capacity_events_chain(deployment.read_topic("capacity"))
    assert len(expected["capacity_events"]) > 10, "the stream must cross thresholds"
    assert [e["id"] for e in live] == [e["id"] for e in expected["capacity_events"]] or \
        sorted(e["id"] for e in live) == sorted(e["id"] for e in expected["capacity_events"])
    assert {e["id"]: e for e in live} == {e["id"]: e for e in expected["capacity_events"]}


def test_kill_9_midway_and_restart_gives_the_replay_counts_and_events(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    _crash_run(deployment_factory(), tmp_path, workers=1)


def test_two_workers_sharing_partitions_one_killed_midway_stay_exact(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    _crash_run(deployment_factory(), tmp_path, workers=2)
