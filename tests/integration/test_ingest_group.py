"""The ingest stage's consumer group on the real broker: workers started together settle in one
rebalance, and each holds its share of the source partitions.

aiokafka (0.14) sends one JoinGroup per assignor listed, each naming one protocol more than the last,
so a member with two assignors changed its protocols at every join, and the broker started another
rebalance each time ("Updating metadata for member ... during CompletingRebalance"). Two such workers
started together could restart each other's rebalance about seven times a second for minutes, and
one of them ingested nothing meanwhile (1 run in 3 of the two-worker live-order test).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.fixtures.pipeline import DeploymentFactory, Worker

pytestmark = pytest.mark.integration


def _synced(worker: Worker, group: str) -> list[int]:
    """The generations of ``group`` in which this worker completed a join (aiokafka's INFO lines)."""
    found = re.findall(rf"Successfully synced group {re.escape(group)} with generation (\d+)",
                       worker.log.read_text(errors="replace"))
    return [int(generation) for generation in found]


def test_two_workers_started_together_settle_in_the_ingest_group_by_its_second_generation(deployment_factory: DeploymentFactory) -> None:
    deployment = deployment_factory()
    workers = [deployment.start_worker(wait=False, loglevel="info") for _ in range(2)]
    for worker in workers:
        deployment.wait_ready(worker)
    group = f"{deployment.app_id}-ingest"
    deadline = time.monotonic() + 60
    synced = [_synced(worker, group) for worker in workers]
    while not (all(synced) and synced[0][-1] == synced[1][-1]) and time.monotonic() < deadline:
        time.sleep(0.5)  # until both completed the same generation: the group has settled
        synced = [_synced(worker, group) for worker in workers]
    # one generation when both join at once, two when one joins first: a join that restarted the
    # rebalance it joined would add one more for each member
    assert all(synced) and synced[0][-1] == synced[1][-1] <= 2, \
        f"generations of {group} completed by each worker: {synced}"
