"""The dashboard stream of a real worker over real Kafka and Redis: a snapshot once, then only the
changes that counting makes, heartbeats at rest, and a reconnect that resumes from its last id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import DeploymentFactory

pytestmark = pytest.mark.integration


def read_blocks(lines: Iterator[str], until: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """SSE blocks (``{"id", "event", "data"}``; a heartbeat is ``{"comment": True}``) up to and including
    the first ``until`` event."""
    blocks: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    for line in lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {until!r} within {timeout}s: {blocks}")
        if line == "":
            if current:
                blocks.append(current)
                if current.get("event") == until:
                    return blocks
            current = {}
            continue
        name, _, value = line.partition(":")
        if name == "":
            current["comment"] = True
        else:
            current[name] = orjson.loads(value) if name == "data" else value.strip()
    raise AssertionError(f"the stream ended before {until!r}")


def test_the_stream_sends_counting_as_changes_and_resumes_after_a_reconnect(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory()
    worker = deployment.start_worker()

    def publish(name: str, users: range) -> None:
        events = [{"type": "login", "subscription": "live", "user_id": str(n), "email": f"u{n}@x.io"} for n in users]
        deployment.cli("publish", str(write_jsonl(tmp_path / f"{name}.jsonl", events)))
        deployment.wait_caught_up()

    publish("first", range(3))
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        with http.stream("GET", "/api/v1/stream") as keep:  # keeps the worker's poll loop running
            snapshot = read_blocks(keep.iter_lines(), "snapshot")[-1]
            entry = snapshot["data"]["subscriptions"]["live"]
            assert entry["internal"] + entry["external"] == 3 and entry["history"]
            with http.stream("GET", "/api/v1/stream") as quiet:
                lines = quiet.iter_lines()
                quiet_snapshot = read_blocks(lines, "snapshot")[-1]
                time.sleep(3)  # at rest: heartbeats only
                publish("second", range(3, 5))
                blocks = read_blocks(lines, "change")
                assert all(b.get("comment") for b in blocks[:-1]) and len(blocks) >= 2, blocks
                change = blocks[-1]
                while sum(change["data"]["subscriptions"]["live"]["point"][1:]) < 5:
                    change = read_blocks(lines, "change")[-1]
            changed = change["data"]["subscriptions"]["live"]
            assert changed["internal"] + changed["external"] == 5
            assert "settings" not in changed and "history" not in changed  # unchanged groups stay home

            publish("third", range(5, 6))  # while the second client is away
            with http.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": change["id"]}) as again:
                blocks = read_blocks(again.iter_lines(), "change")
            assert [b.get("event") for b in blocks if "data" in b] == ["change"]  # no second snapshot
            resumed = blocks[-1]["data"]["subscriptions"]["live"]
            assert resumed["internal"] + resumed["external"] == 6
            assert int(quiet_snapshot["id"].rpartition("-")[2]) < int(change["id"].rpartition("-")[2])
