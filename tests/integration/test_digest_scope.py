"""A worker whose digests differ from those a subscription's state was built with (another
ENDUSERS_DIGEST_SCOPE or ENDUSERS_SECRET) refuses to count it, on the real Kafka and Redis: it would
digest every returning person anew and count them twice."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from counters import DEVELOPMENT_SECRET, fingerprint
from streams.store.keys import Keys
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import DeploymentFactory

pytestmark = pytest.mark.integration


def _logins(people: range) -> list[dict[str, object]]:
    return [{"type": "login", "subscription": "scoped", "user_id": str(n), "email": f"u{n}@client.example"}
            for n in people]


def test_a_worker_with_another_digest_scope_refuses_the_state_and_counts_nothing(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory()
    first = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "first.jsonl", _logins(range(5)))))
    deployment.wait_caught_up()
    before = deployment.counts()["scoped"]
    assert before["records"] == 5
    meta = Keys("scoped").meta
    with deployment.redis() as redis:
        assert redis.hget(meta, "digest") == fingerprint(DEVELOPMENT_SECRET, "subscription").encode()
        committed = redis.hgetall(meta)
    first.stop()

    shared = deployment.start_worker(wait=False, env={"ENDUSERS_DIGEST_SCOPE": "shared"})
    deployment.cli("publish", str(write_jsonl(tmp_path / "again.jsonl", _logins(range(5)))))
    deployment.wait_caught_up()

    assert deployment.counts()["scoped"] == before, "the same people must not count again"
    with deployment.redis() as redis:
        assert redis.hgetall(meta) == committed, "nothing committed for a refused subscription"
    log = shared.log.read_text(errors="replace")
    assert "subscription 'scoped' was counted with other digests (stored ENDUSERS_DIGEST_SCOPE=subscription, " \
           "configured shared)" in log and "docs/operations.md" in log, log[-3000:]
    deadline, ready = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        ready = httpx.get(shared.url + "/readyz", timeout=5)
        if ready.status_code == 503 and str(ready.json().get("state")).startswith("refusing scoped"):
            break
        time.sleep(0.3)
    assert ready is not None and ready.status_code == 503, ready and ready.text
    assert ready.json()["state"] == (f"refusing scoped: stored digests {fingerprint(DEVELOPMENT_SECRET, 'subscription')}, "
                                     f"configured {fingerprint(DEVELOPMENT_SECRET, 'shared')}")
    shared.stop()


def test_state_from_before_the_fingerprint_is_adopted_and_gets_it_at_its_next_commit(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory()
    first = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "first.jsonl", _logins(range(3)))))
    deployment.wait_caught_up()
    first.stop()
    meta = Keys("scoped").meta
    with deployment.redis() as redis:
        assert redis.hdel(meta, "digest") == 1  # as earlier versions left it
    deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "more.jsonl", _logins(range(5)))))
    deployment.wait_caught_up()
    assert deployment.counts()["scoped"]["records"] == 5
    with deployment.redis() as redis:
        assert redis.hget(meta, "digest") == fingerprint(DEVELOPMENT_SECRET, "subscription").encode()
