"""Events published while the workers count give exactly replay's results: the counts, and every
capacity event id for id and field for field, with one worker, with two, with one of two killed
(SIGKILL) mid-publish and restarted, and with two ``publish`` processes writing disjoint subscriptions.

The stream is random (configs, deletes, late, tied and redelivered events over 300 subscriptions).
While a worker keeps up, every partition it reads is at its end most of the time: this is the case
where the merge used to release other partitions after a wall-clock hold, and a producer's batches to
different topics reached the broker further apart than that (measured with the hold: 2 capacity
events of 1,236 differed with one worker, 16 with two). Ingest now waits for every partition's
watermark from ``publish`` instead (docs/design.md, "Ordering across source topics").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.generate import random_stream
from tests.fixtures.pipeline import Deployment, DeploymentFactory
from tests.integration.test_backlog import _ingested, assert_live_equals_replay

pytestmark = pytest.mark.integration
EVENTS = 15_000
SUBSCRIPTIONS = 300


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The stream's file and ``endusers replay``'s document of it (computed once for every variant)."""
    path = tmp_path_factory.mktemp("live") / "random.jsonl"
    path.write_bytes(b"\n".join(random_stream(EVENTS, SUBSCRIPTIONS, seed=28)) + b"\n")
    replay = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)], capture_output=True, check=True)
    expected: dict[str, Any] = orjson.loads(replay.stdout)
    assert len(expected["capacity_events"]) > 100, "the stream must move levels often"
    return path, expected


def _publish(deployment: Deployment, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "streams", "publish", str(path)], env=deployment.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finished(publisher: subprocess.Popen[bytes]) -> None:
    _, stderr = publisher.communicate(timeout=300)
    assert publisher.returncode == 0, stderr.decode()


def _counting(deployment: Deployment, workers: int) -> None:
    started = [deployment.start_worker(wait=False) for _ in range(workers)]
    for worker in started:
        deployment.wait_ready(worker)


def test_events_published_while_one_worker_counts_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]]) -> None:
    path, expected = stream
    deployment = deployment_factory()
    _counting(deployment, 1)
    _finished(_publish(deployment, path))
    assert_live_equals_replay(deployment, expected)


def test_events_published_while_two_workers_count_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]]) -> None:
    path, expected = stream
    deployment = deployment_factory()
    _counting(deployment, 2)
    _finished(_publish(deployment, path))
    assert_live_equals_replay(deployment, expected)


def test_events_published_while_a_worker_is_killed_and_restarted_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]]) -> None:
    path, expected = stream
    deployment = deployment_factory()
    _counting(deployment, 2)
    publisher = _publish(deployment, path)
    deadline = time.monotonic() + 120
    while asyncio.run(_ingested(deployment)) < EVENTS // 4:
        assert time.monotonic() < deadline and publisher.poll() is None, "the kill must land mid-publish"
        time.sleep(0.05)
    deployment.workers[0].kill()
    deployment.start_worker(wait=False)
    _finished(publisher)
    assert_live_equals_replay(deployment, expected)


def test_two_publishers_of_disjoint_subscriptions_while_two_workers_count_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, expected = stream
    halves: list[list[bytes]] = [[], []]
    for line in path.read_bytes().splitlines():
        try:
            subscription = orjson.loads(line).get("subscription")
        except (orjson.JSONDecodeError, AttributeError):
            subscription = None  # an invalid line: rejected whoever sends it
        halves[zlib.crc32(str(subscription).encode()) % 2].append(line)
    files = [tmp_path / f"half-{n}.jsonl" for n in range(2)]
    for file, lines in zip(files, halves):
        file.write_bytes(b"\n".join(lines) + b"\n")
    deployment = deployment_factory()
    _counting(deployment, 2)
    publishers = [_publish(deployment, file) for file in files]
    for publisher in publishers:
        _finished(publisher)
    assert_live_equals_replay(deployment, expected)
