"""Alertmanager push (streams/worker/alerts.py) and the CloudEvents headers of capacity records, without I/O:
a dictionary stands in for the committed counts in Redis and a list for Alertmanager."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pytest

from counters import ReadSide
from schemas.cloudevents import capacity_headers
from schemas.outputs import CapacityEvent
from streams.worker.alerts import ALERT_NAME, VALID_FOR_INTERVALS, Alert, AlertPusher, Severities

INTERVAL = 60.0


class Committed:
    """Counts and settings as the count stage committed them."""

    def __init__(self) -> None:
        self.levels: dict[str, dict[str, int]] = {}

    def set(self, subscription: str, internal: int = 0, external: int = 0) -> None:
        self.levels[subscription] = {"internal": internal, "external": external}

    async def read_sides(self, subscriptions: Sequence[str]) -> dict[str, ReadSide]:
        return {name: ReadSide({"internal": levels["internal"] // 10, "external": levels["external"] // 10 * 3,
                                "levels": levels}, {"capacity": {"internal": 10, "external": None}}, None)
                for name in subscriptions if (levels := self.levels.get(name)) is not None}


class Alertmanager:
    def __init__(self) -> None:
        self.posts: list[list[Alert]] = []
        self.down = False

    async def __call__(self, alerts: Sequence[Alert]) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        self.posts.append(list(alerts))

    def last(self) -> set[tuple[str, str, str, bool]]:
        """(subscription, class, severity, firing) of the last post."""
        return {_summary(a) for a in self.posts[-1]}


def _summary(alert: Alert) -> tuple[str, str, str, bool]:
    labels = alert["labels"]
    return labels["subscription"], labels["user_class"], labels["severity"], alert["endsAt"] > alert["startsAt"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _pusher(owned: set[str]) -> tuple[AlertPusher, Committed, Alertmanager, Clock]:
    store, manager, clock = Committed(), Alertmanager(), Clock()
    pusher = AlertPusher(store, lambda: set(owned), manager, severities=Severities.parse("1:warning,100:critical"),
                         interval=INTERVAL, dashboard_url="https://counts.example/", clock=clock)
    return pusher, store, manager, clock


async def test_a_level_above_zero_fires_with_labels_and_annotations() -> None:
    pusher, store, manager, clock = _pusher({"acme"})
    store.set("acme", internal=0, external=80)
    await pusher.tick()
    firing = [a for a in manager.posts[-1] if _summary(a)[3]]
    assert len(firing) == 1
    alert = firing[0]
    assert alert["labels"] == {"alertname": ALERT_NAME, "subscription": "acme", "user_class": "external",
                               "severity": "warning"}
    annotations = alert["annotations"]
    assert (annotations["count"], annotations["capacity"], annotations["level"]) == ("24", "unlimited", "80")
    assert annotations["dashboard"] == "https://counts.example/"
    assert annotations["api"] == "https://counts.example/api/v1/subscriptions/acme"
    starts, ends = (datetime.fromisoformat(alert[k].replace("Z", "+00:00")).timestamp() for k in ("startsAt", "endsAt"))
    assert (starts, ends) == (clock.now, clock.now + VALID_FOR_INTERVALS * INTERVAL)


async def test_the_first_sync_sends_only_what_fires() -> None:
    """A new owner does not know what the previous one sent; resolving other label sets blindly would
    put never-notified alerts into Alertmanager's notification group and notify it again."""
    pusher, store, manager, _ = _pusher({"acme"})
    store.set("acme", internal=0, external=100)
    store.set("globex", internal=0, external=0)
    await pusher.tick()
    assert manager.last() == {("acme", "external", "critical", True)}


async def test_severity_follows_the_level_and_the_old_severity_is_resolved() -> None:
    pusher, store, manager, clock = _pusher({"acme"})
    store.set("acme", external=80)
    await pusher.tick()
    store.set("acme", external=100)
    pusher.level_changed("acme")
    clock.now += 1
    await pusher.tick()
    assert manager.last() == {("acme", "external", "critical", True), ("acme", "external", "warning", False)}
    store.set("acme", external=0)
    pusher.level_changed("acme")
    clock.now += 1
    await pusher.tick()
    assert manager.last() == {("acme", "external", "critical", False)}
    resolved = manager.posts[-1][0]
    assert resolved["endsAt"] == resolved["startsAt"]


async def test_firing_alerts_are_re_sent_every_interval_and_nothing_in_between() -> None:
    pusher, store, manager, clock = _pusher({"acme"})
    store.set("acme", internal=90)
    await pusher.tick()
    for _ in range(5):
        clock.now += 10
        assert await pusher.tick() == 0
    clock.now += 10
    assert await pusher.tick() == 1
    assert manager.last() == {("acme", "internal", "warning", True)}


async def test_severities_are_configurable() -> None:
    severities = Severities.parse("90:page, 80:ticket")
    assert [severities.of(level) for level in (0, 50, 80, 90, 120)] == [None, None, "ticket", "page", "page"]
    assert Severities.parse("1:warning,100:critical").of(99) == "warning"
    for bad in ("warning", "x:warning", "1:warning,1:critical", "1:warning,2:warning", ""):
        with pytest.raises(ValueError, match="ENDUSERS_ALERT_SEVERITIES"):
            Severities.parse(bad)


async def test_only_owned_subscriptions_alert_and_a_released_one_is_not_resolved() -> None:
    """After a rebalance the new owner sends the same labels; resolving here would break the alert."""
    owned = {"acme", "globex"}
    store, manager, clock = Committed(), Alertmanager(), Clock()
    pusher = AlertPusher(store, lambda: set(owned), manager, severities=Severities.parse("1:warning,100:critical"),
                         interval=INTERVAL, dashboard_url="http://127.0.0.1:6066/", clock=clock)
    store.set("acme", external=100)
    store.set("globex", external=80)
    store.set("initech", external=100)  # counted by another worker
    await pusher.tick()
    assert {s for s, *_ in manager.last()} == {"acme", "globex"}
    owned.discard("globex")
    store.set("globex", external=0)
    pusher.level_changed("globex")
    clock.now += INTERVAL
    await pusher.tick()
    assert manager.last() == {("acme", "external", "critical", True)}


async def test_an_unreachable_alertmanager_is_retried_without_losing_a_change() -> None:
    pusher, store, manager, clock = _pusher({"acme"})
    store.set("acme", external=80)
    await pusher.tick()
    manager.down = True
    store.set("acme", external=0)
    pusher.level_changed("acme")
    clock.now += 1
    assert await pusher.tick() == 0
    manager.down = False
    clock.now += 1
    assert await pusher.tick() == 0, "waits a moment before retrying"
    clock.now += 5
    await pusher.tick()
    assert manager.last() == {("acme", "external", "warning", False)}


async def test_nothing_is_sent_before_a_subscription_has_committed_counts() -> None:
    pusher, store, manager, clock = _pusher({"acme"})
    await pusher.tick()
    assert manager.posts == []
    store.set("acme", external=80)
    clock.now += 1
    await pusher.tick()
    assert ("acme", "external", "warning", True) in manager.last()


def test_capacity_records_carry_cloudevents_binary_mode_headers() -> None:
    event = CapacityEvent("0b6c0e0e-7d1c-5e7a-9c55-3f0f1c1e2a11", "acme corp", "external", 0, 80, "up", 8, 10,
                          False, "2026-11-29T17:00:00.5Z", "login")
    assert dict(capacity_headers(event.to_bytes())) == {
        "ce_specversion": b"1.0",
        "ce_id": b"0b6c0e0e-7d1c-5e7a-9c55-3f0f1c1e2a11",
        "ce_source": b"endusers/acme%20corp",
        "ce_type": b"io.endusers.capacity.changed.v1",
        "ce_subject": b"acme corp/external",
        "ce_time": b"2026-11-29T17:00:00.5Z",
        "content-type": b"application/json",
    }
