"""The README's run command does what it says: a worker, sample events published, live counts printed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest
from redis import Redis

from tests.fixtures.pipeline import free_port
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SUITE_SERVICES = ("ENDUSERS_DATA", "ENDUSERS_KAFKA_PORT", "ENDUSERS_KAFKA_CONTROLLER_PORT", "ENDUSERS_REDIS_PORT")


def test_demo_prints_the_live_counts_of_the_sample_events(services: Services, tmp_path: Path) -> None:
    redis_url = services.redis_db_url(14)
    Redis.from_url(redis_url).flushdb()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()),
           "ENDUSERS_TOPIC_PREFIX": f"demo{free_port()}", "ENDUSERS_APP_ID": f"demo-{free_port()}",
           "ENDUSERS_WEB_PORT": str(free_port()), "ENDUSERS_REDIS": redis_url,
           "ENDUSERS_DATA_DIR": str(tmp_path / "worker"),
           # the suite's own services (deploy/local/test), which the demo's `services up` then reuses
           **{name: os.environ[name] for name in SUITE_SERVICES if name in os.environ}}
    run = subprocess.run([str(REPO / "deploy/local/demo"), "--once"], env=env, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    output = run.stdout.decode()
    replay = subprocess.run([str(REPO / ".venv/bin/endusers"), "replay", str(REPO / "deploy/local/sample-events.jsonl")],
                            capture_output=True, check=True)
    expected = orjson.loads(replay.stdout)["subscriptions"]
    for name, counts in expected.items():
        row = [line for line in output.splitlines() if line.startswith(name + " ")][-1]  # the last table
        assert row.split()[1] == str(counts["internal"]), row
    assert "Dashboard: http://127.0.0.1:" in run.stderr.decode()
