"""Static membership on the real broker: a worker restarted with the same ``ENDUSERS_INSTANCE_ID``
within the session timeout takes its partitions back without a rebalance (no new group generation),
so a rolling restart moves no partition and makes no other worker reload state."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory, Worker

pytestmark = pytest.mark.integration

_JOINED = re.compile(r"Joined group '([^']+)' \(generation (\d+)\)")


def _generations(worker: Worker) -> dict[str, list[int]]:
    """Each consumer group's generations that this worker joined, from aiokafka's INFO lines."""
    joined: dict[str, list[int]] = {}
    for group, generation in _JOINED.findall(worker.log.read_text(errors="replace")):
        joined.setdefault(group, []).append(int(generation))
    return joined


def _counted(deployment: Deployment, subscription: str, records: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = deployment.counts().get(subscription, {})
        if document.get("records") == records:
            return
        time.sleep(0.3)
    pytest.fail(f"{subscription} did not reach {records} records: {deployment.counts().get(subscription)}")


def test_a_restart_with_the_same_instance_id_causes_no_rebalance(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory()
    # a session timeout long enough for a restart on a loaded machine: the trade-off static members make
    env = {"ENDUSERS_INSTANCE_ID": "pod-0", "ENDUSERS_SESSION_TIMEOUT": "45"}
    first = deployment.start_worker(env=env, loglevel="info")
    login = {"type": "login", "subscription": "static", "email": "ann@corp.example"}
    deployment.cli("publish", str(write_jsonl(tmp_path / "one.jsonl", [{**login, "user_id": "1"}])))
    _counted(deployment, "static", 1)
    before = _generations(first)
    assert len(before) == 2, f"both consumer groups (ingest and count) joined: {before}"

    first.stop()  # SIGTERM: a static member does not leave its group
    second = deployment.start_worker(env=env, loglevel="info")
    deployment.cli("publish", str(write_jsonl(tmp_path / "two.jsonl", [{**login, "user_id": "2"}])))
    _counted(deployment, "static", 2)
    after = _generations(second)
    assert after.keys() == before.keys(), (before, after)
    for group, generations in after.items():
        assert generations == [before[group][-1]], (
            f"group {group}: the restarted static member must rejoin the generation it left "
            f"({before[group][-1]}), not trigger a rebalance: {generations}\n{second.log_tail()}")
