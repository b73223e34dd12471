"""A backlog already on the source topics when the workers start gives exactly replay's results: the
counts, and every capacity event id for id and field for field, with one worker, with a worker killed
(SIGKILL) and restarted in the middle of the backlog, and with two workers sharing it.

The backlog is random streams (configs, deletes, late, tied and redelivered events over 50
subscriptions), published with ``endusers publish`` before any worker runs, so the ingest merge sees
every partition far behind its end: the case where order across topics used to give way. Two
partitions per topic put more than one fetch (1 MiB) into each partition, as a larger backlog would
on four: with the old 1-second hold that reordered events and lost about a fifth of the capacity
events (measured: 120 of 619 missing, 3 subscriptions with other counts), while this stays short.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.exactness import (
    assert_live_equals_replay,
    ingested,
    replayed_stream,
)
from tests.fixtures.generate import random_stream
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration
EVENTS = 40_000
PARTITIONS = 2


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The stream's file and ``endusers replay``'s document of it (computed once for every variant)."""
    return replayed_stream(tmp_path_factory.mktemp("backlog"), random_stream(EVENTS), capacity_events=200)


def test_a_backlog_counted_by_one_worker_equals_replay(deployment_factory: DeploymentFactory, backlog: tuple[Path, dict[str, Any]]) -> None:
    path, expected = backlog
    deployment: Deployment = deployment_factory(PARTITIONS)
    deployment.publish_stream(path)
    deployment.start_worker()
    assert_live_equals_replay(deployment, expected)


def test_a_backlog_with_a_worker_killed_and_restarted_midway_equals_replay(deployment_factory: DeploymentFactory, backlog: tuple[Path, dict[str, Any]]) -> None:
    path, expected = backlog
    deployment: Deployment = deployment_factory(PARTITIONS)
    deployment.publish_stream(path)
    first = deployment.start_worker()
    deadline = time.monotonic() + 120
    while asyncio.run(ingested(deployment)) < EVENTS // 5:
        assert time.monotonic() < deadline, f"no progress before the kill:\n{first.log_tail()}"
        time.sleep(0.05)
    first.kill()
    assert asyncio.run(deployment.lag()) > 0, "the kill must land before the backlog is consumed"
    deployment.start_worker()
    assert_live_equals_replay(deployment, expected)


def test_a_backlog_shared_by_two_workers_equals_replay(deployment_factory: DeploymentFactory, backlog: tuple[Path, dict[str, Any]]) -> None:
    path, expected = backlog
    deployment: Deployment = deployment_factory(PARTITIONS)
    deployment.publish_stream(path)
    workers = [deployment.start_worker(wait=False) for _ in range(2)]
    for worker in workers:
        deployment.wait_ready(worker)
    assert_live_equals_replay(deployment, expected)
