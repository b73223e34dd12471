"""Readiness and outage reports as pure logic, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from streams.observe.outages import KafkaNoise, Outage
from streams.observe.readiness import Readiness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loads:
    """The store's ``progress`` (``counters.LoadProgress``)."""

    def __init__(self) -> None:
        self.progress: dict[str, tuple[int, int]] = {}


def test_not_ready_until_assigned_and_every_owned_state_is_loaded() -> None:
    clock, progress = Clock(), Loads()
    health = Readiness(30, progress, clock)
    assert health.checks()["assignment"] == "waiting for assignment"
    health.assignment_received()
    assert health.checks()["state"] == "finding the subscriptions to load"
    health.to_load, health.listing = {"acme", "globex"}, False
    progress.progress["acme"] = (420_000, 1_000_000)
    assert health.checks()["state"] == "loading acme: 420,000 of 1,000,000 records; 1 more subscription to load"
    del progress.progress["acme"]
    health.to_load = set()
    assert health.checks() == {"assignment": True, "state": True, "progress": True}
    health.assignment_revoked()
    assert health.checks()["assignment"] == "waiting for assignment"


def test_stalled_only_when_changes_wait_and_nothing_is_processed_for_the_stall_time() -> None:
    clock = Clock()
    health = Readiness(30, Loads(), clock)
    health.assignment_received()
    health.listing = False
    clock.now += 100
    health.observe_lag(0)
    assert health.checks()["progress"] is True  # idle is not stalled
    health.observe_lag(5)  # changes start waiting now
    clock.now += 29
    assert health.checks()["progress"] is True
    clock.now += 2
    assert str(health.checks()["progress"]).startswith("stalled: 5 changes waiting")
    health.batch_done()
    assert health.checks()["progress"] is True


def test_an_outage_is_one_line_then_one_per_period_then_one_when_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("Redis", every=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="endusers.outage"):
        for _ in range(250):  # 25 s of retries every 100 ms
            outage.failed(ConnectionError("Connection refused"))
            clock.now += 0.1
        outage.recovered()
        outage.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0] == "Redis is unreachable (ConnectionError: Connection refused); retrying"
    assert lines[1].startswith("Redis unreachable for 10 s") and lines[2].startswith("Redis unreachable for 20 s")
    assert lines[3] == "Redis is back after 25.0 s"


def test_kafka_client_connection_errors_are_counted_not_logged() -> None:
    noise = KafkaNoise()
    dropped = logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable connect to %r: %s", ("node", "refused"), None)
    kept = logging.LogRecord("aiokafka", logging.ERROR, "", 0, "something else", (), None)
    assert noise.filter(dropped) is False
    assert noise.filter(kept) is True
