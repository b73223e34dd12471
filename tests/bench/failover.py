"""How long counting stops when a worker dies (``kill -9``), on the local Kafka and Redis (never part of
the test suite; needs ``deploy/local/services up`` and its ENDUSERS_* variables exported).

    .venv/bin/python tests/bench/failover.py

Two figures per setup, one worker (restarted at once, as a supervisor would) and two workers (the
survivor takes over after the session timeout):
- idle: the time from the kill of a caught-up worker until a login published right after the kill
  shows in the counts (the dead period an end user sees);
- backlog: the time from a kill in the middle of a 50,000-event stream until everything published is
  counted (lag 0), and how much of it remained after the publisher had finished.
Each setup runs on a fresh deployment (topic prefix, consumer group, Redis database 14).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.generate import churn_stream, write_jsonl  # noqa: E402
from tests.fixtures.pipeline import Deployment  # noqa: E402


class _Deployment(Deployment):
    @property
    def env(self) -> dict[str, str]:
        """As the tests' deployments, with the default session timeout unless one is exported."""
        return {**super().env, "ENDUSERS_SESSION_TIMEOUT": os.environ.get("ENDUSERS_SESSION_TIMEOUT", "10")}


def _deployment(directory: Path) -> Deployment:
    kafka = os.environ.get("ENDUSERS_KAFKA", "kafka://127.0.0.1:9092").removeprefix("kafka://")
    redis_url = os.environ.get("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
    Redis.from_url(redis_url).flushdb()
    name = uuid.uuid4().hex[:8]
    folder = directory / name
    folder.mkdir()
    deployment = _Deployment(kafka, redis_url, f"f{name}", f"endusers-f{name}", folder)
    return deployment


def _records(worker_url: str, subscription: str) -> int:
    try:
        body = httpx.get(f"{worker_url}/api/v1/subscriptions/{subscription}", timeout=5).json()
        return int(body.get("records", 0))
    except httpx.HTTPError:
        return -1


def idle(workers: int, directory: Path) -> float:
    deployment = _deployment(directory)
    started = [deployment.start_worker() for _ in range(workers)]
    for worker in started:
        deployment.wait_ready(worker)
    seed = write_jsonl(directory / f"seed-{workers}.jsonl",
                       [{"type": "login", "subscription": f"s{n}", "user_id": "0"} for n in range(8)])
    deployment.cli("publish", str(seed))
    deployment.wait_caught_up()
    probe = write_jsonl(directory / f"probe-{workers}.jsonl",
                        [{"type": "login", "subscription": f"s{n}", "user_id": "1"} for n in range(8)])
    killed = time.monotonic()
    started[0].kill()
    survivor = deployment.start_worker(wait=False) if workers == 1 else started[1]
    deployment.cli("publish", str(probe))
    while any(_records(survivor.url, f"s{n}") != 2 for n in range(8)):
        time.sleep(0.1)
    dead = time.monotonic() - killed
    deployment.close()
    return dead


def backlog(workers: int, directory: Path) -> tuple[float, float]:
    deployment = _deployment(directory)
    configs, stream = churn_stream(50_000)
    config_file = write_jsonl(directory / f"config-{workers}.jsonl", configs)
    stream_file = write_jsonl(directory / f"stream-{workers}.jsonl", stream)
    started = [deployment.start_worker() for _ in range(workers)]
    deployment.cli("publish", str(config_file))
    deployment.wait_caught_up()
    publishing = subprocess.Popen([sys.executable, "-m", "streams", "publish", str(stream_file)],
                                  env=deployment.env, stdout=subprocess.DEVNULL)
    time.sleep(3)
    killed = time.monotonic()
    started[0].kill()
    if workers == 1:
        deployment.start_worker(wait=False)
    publishing.wait()
    published = time.monotonic()
    deployment.wait_caught_up(timeout=600, quiet=0.0)
    done = time.monotonic()
    deployment.close()
    return done - killed, done - published


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        session = os.environ.get("ENDUSERS_SESSION_TIMEOUT", "10 (default)")
        print(f"session timeout: {session} s")
        for workers in (1, 2):
            dead = idle(workers, directory)
            print(f"{workers} worker(s), idle:    kill -9 -> a new login counted: {dead:.1f} s")
            total, after = backlog(workers, directory)
            print(f"{workers} worker(s), backlog: kill -9 -> caught up: {total:.1f} s "
                  f"({after:.1f} s after the publisher finished)")


if __name__ == "__main__":
    main()
