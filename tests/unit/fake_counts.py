"""An in-memory :class:`streams.http.views.CountsReader` for tests of the HTTP views and the dashboard."""

from __future__ import annotations

import copy
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from counters.history import Entry
from counters.state import SubscriptionState


def counts(internal: int = 0, external: int = 0, *, runtimes: dict[str, Any] | None = None,
           providers: dict[str, int] | None = None, anonymous: int = 0,
           levels: dict[str, int] | None = None, excluded: int = 0) -> dict[str, Any]:
    """The counts of one subscription (docs/events.md)."""
    if runtimes is None:
        runtimes = {"default": {"internal": internal, "external": external, "records": internal + external}}
    return {"internal": internal, "external": external, "records": internal + external, "runtimes": runtimes,
            "providers": providers if providers is not None else {"default": internal + external},
            "excluded": excluded, "anonymous_sessions": anonymous, "levels": levels or {"internal": 0, "external": 0}}


def settings(internal: int | None = None, external: int | None = None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"platform": "o11", "domains": ["example.com"],
                            "capacity": {"internal": internal, "external": external},
                            "thresholds": [80, 90, 100], "hysteresis": 1, "runtimes": {}}
    base.update(extra)
    return base


class FakeReader:
    """Subscriptions held in dicts; tests mutate them and the views see the change."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.settings_by: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.histories: dict[str, list[list[int]]] = {}
        self.audits: dict[str, list[dict[str, Any]]] = {}
        self.shared: dict[str, dict[str, Any]] = {}
        self.states: dict[str, SubscriptionState] = {}
        self.days: dict[str, list[Entry]] = {}
        self.hours: dict[str, list[Entry]] = {}
        self.source_last: dict[str, dict[str, int]] = {}
        self.source_days: dict[str, dict[tuple[str, int], int]] = {}
        self.fail: Exception | None = None
        self.calls = 0

    def put(self, subscription: str, value: dict[str, Any], setting: dict[str, Any] | None = None,
            events: list[dict[str, Any]] | None = None, history: list[list[int]] | None = None) -> None:
        self.data[subscription] = value
        self.settings_by[subscription] = setting if setting is not None else settings()
        self.events[subscription] = events or []
        now = int(time.time() * 1000)
        self.histories[subscription] = history if history is not None else [
            [now - 60_000 * (30 - i), value["internal"] * i // 30, value["external"] * i // 30] for i in range(31)]

    def _check(self) -> None:
        self.calls += 1
        if self.fail is not None:
            raise self.fail

    async def subscriptions(self) -> list[str]:
        self._check()
        return sorted(self.data)

    async def counts(self, subscription: str) -> dict[str, Any] | None:
        self._check()
        value = self.data.get(subscription)
        return copy.deepcopy(value) if value is not None else None

    async def settings(self, subscription: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.settings_by.get(subscription))

    async def recent_capacity_events(self, subscription: str, limit: int = 20) -> list[dict[str, Any]]:
        self._check()
        return copy.deepcopy(self.events.get(subscription, [])[:limit])

    async def source_activity(self, subscription: str) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
        self._check()
        return dict(self.source_last.get(subscription, {})), dict(self.source_days.get(subscription, {}))

    async def statement_data(self, subscription: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        self._check()
        return {}, {}

    async def history(self, subscription: str) -> list[list[int]]:
        self._check()
        return copy.deepcopy(self.histories.get(subscription, []))

    async def audit(self, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
        self._check()
        return copy.deepcopy(self.audits.get(subscription, [])[:limit])

    async def shared_identifiers(self, subscription: str) -> Any:
        self._check()
        return copy.deepcopy(self.shared.get(subscription))
    async def fresh_state(self, subscription: str) -> SubscriptionState | None:
        self._check()
        state = self.states.get(subscription)
        return copy.deepcopy(state) if state is not None else None

    async def daily(self, subscription: str) -> list[Entry]:
        self._check()
        return list(self.days.get(subscription, []))

    async def hourly(self, subscription: str) -> list[Entry]:
        self._check()
        return list(self.hours.get(subscription, []))


def capacity_event(subscription: str, user_class: str, previous: int, level: int, count: int, capacity: int,
                   time_text: str = "2026-11-01T09:00:00Z") -> dict[str, Any]:
    return {"id": f"{subscription}-{user_class}-{level}", "subscription": subscription, "user_class": user_class,
            "previous_level": previous, "level": level, "direction": "up" if level > previous else "down",
            "count": count, "capacity": capacity, "exceeded": count > capacity, "time": time_text, "trigger": None}


def sample_reader() -> FakeReader:
    """Two subscriptions: one near its internal capacity, one unlimited."""
    reader = FakeReader()
    reader.put("acme", counts(1234, 56, runtimes={
        "prod": {"internal": 1200, "external": 50, "records": 1300},
        "dev": {"internal": 80, "external": 6, "records": 90}},
        providers={"default": 1100, "azure-ad": 280, "visitor": 10}, anonymous=987,
        levels={"internal": 80, "external": 100}, excluded=12),
        settings(1500, 50, platform="o11"),
        events=[capacity_event("acme", "external", 90, 100, 56, 50, "2026-11-01T10:05:00Z"),
                capacity_event("acme", "internal", 0, 80, 1200, 1500, "2026-11-01T09:40:00Z")])
    reader.data["acme"]["external_domains"] = {
        "top": [["partner.example", 31], ["supplier.example", 17], ["gmail.com", 5]],
        "other_domains": 2, "other_individuals": 3}
    reader.put("globex", counts(42, 7, anonymous=3), settings(platform="odc"))
    today = datetime.now(timezone.utc).date()
    # a year of daily maxima: internal growing 2 a day towards 1,500, external near its 50
    reader.days["acme"] = [Entry((today - timedelta(days=n)).isoformat(), 1234 - 2 * n, 1200 - 2 * n, 1230 - 2 * n,
                                 56 - n // 30, 40 - n // 30, 50 - n // 30) for n in range(364, -1, -1)]
    return reader


def dormant_state(subscription: str = "acme") -> SubscriptionState:
    """A committed state whose report (``GET .../dormant``, default 60 days from its config) frees 2 internal
    and 1 external seats: logins 100-300 days before now, and one 10 days ago that stays."""
    import orjson

    from counters import Replay

    now = datetime.now(timezone.utc)

    def ago(days: int) -> str:
        return (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    events = [{"type": "config", "domains": ["example.com"], "dormant_days": 60, "time": ago(400)}]
    for user, email, days in (("ann", "ann@example.com", 200), ("bob", "bob@example.com", 100),
                              ("eve", "eve@partner.io", 300), ("cid", "cid@example.com", 10)):
        events.append({"type": "login", "user_id": user, "email": email, "time": ago(days)})
    replay = Replay(now=int(now.timestamp() * 1_000_000))
    replay.feed_lines([orjson.dumps({"subscription": subscription, **e}) for e in events])
    return replay.states[subscription]
