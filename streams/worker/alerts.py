"""Alertmanager push: one alert per subscription and class whose committed capacity level is above 0.

Alertmanager's v2 API takes alerts the way Prometheus sends them: a label set (its identity), and
``startsAt``/``endsAt``. Sending the same labels again updates the one alert, so re-sending is
idempotent, and an alert nobody re-sends resolves itself at its ``endsAt``. The worker therefore:

- reads the *committed* counts and levels of the subscriptions it counts (Redis), never the events
  in flight, so an alert never reports a level that a failed commit did not keep;
- sends promptly when a commit changes a level (the count stage tells it), and re-sends every firing
  alert every ``ENDUSERS_ALERT_INTERVAL`` seconds with ``endsAt`` four intervals ahead, as Prometheus
  does, so a worker that dies leaves alerts that stay up long enough for the next owner to take over;
- resolves (``endsAt`` now) the label set it last sent when the level returns to 0, or when the
  severity changes (a severity is a label, so warning and critical are two alerts);
- speaks only for the subscriptions it counts. A subscription that moves to another worker in a
  rebalance is simply dropped here, never resolved: its new owner reads the same committed level and
  sends the same labels, which Alertmanager merges into the alert already firing (no duplicate, no
  gap). The new owner resolves nothing it did not send itself: resolving label sets blindly would
  add never-notified alerts to the notification group, which makes Alertmanager notify again. So if
  an owner dies in the second between committing a level change and pushing it, the label set it
  could not resolve ends at its ``endsAt`` (at most four intervals later), and Alertmanager sends
  the resolved notification then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from counters import CLASSES, CommittedCounts
from streams.settings import Severities as Severities  # parsed there, at start; re-exported for the pusher's callers

if TYPE_CHECKING:
    import faust

    from streams.settings import WorkerSettings
    from streams.worker.count import Count

log = logging.getLogger(__name__)

ALERT_NAME = "EndUserCapacity"
VALID_FOR_INTERVALS = 4
"""A firing alert's ``endsAt`` is this many re-send intervals ahead (Prometheus uses 4 too)."""
RETRY_AFTER = 5.0
"""Seconds to wait after Alertmanager refused or could not be reached."""
POST_CHUNK = 1000

Alert = dict[str, Any]
Post = Callable[[Sequence[Alert]], Awaitable[None]]




@dataclass(frozen=True, slots=True)
class ClassLevel:
    """One class of one subscription as last committed."""

    subscription: str
    user_class: str
    level: int
    count: int
    capacity: int | None


def committed_levels(subscription: str, counts: Mapping[str, Any], settings: Mapping[str, Any]) -> list[ClassLevel]:
    """Both classes of a subscription from its committed counts document and settings."""
    levels = counts.get("levels") or {}
    capacity = settings.get("capacity") or {}
    return [ClassLevel(subscription, user_class, int(levels.get(user_class) or 0), int(counts.get(user_class) or 0),
                       capacity.get(user_class)) for user_class in CLASSES]


def _instant(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class AlertPusher:
    """Keeps Alertmanager's ``EndUserCapacity`` alerts equal to the committed levels this worker owns."""

    def __init__(self, store: CommittedCounts, owned: Callable[[], set[str]], post: Post, *,
                 severities: Severities, interval: float, dashboard_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.owned = owned
        self.post = post
        self.severities = severities
        self.interval = interval
        self.dashboard_url = dashboard_url
        self.clock = clock
        self._sent: dict[tuple[str, str], str | None] = {}
        """(subscription, class) -> the severity last sent firing (None: resolved) by this worker."""
        self._dirty: set[str] = set()
        self._next_full = 0.0
        self._paused_until = 0.0
        self._failing = False

    def level_changed(self, subscription: str) -> None:
        """A commit changed a level of the subscription: sync it at the next tick."""
        self._dirty.add(subscription)

    async def tick(self) -> int:
        """Sync what changed (every second) and everything owned (every interval); return the alerts
        sent. A subscription this worker no longer counts is forgotten, not resolved."""
        owned = self.owned()
        for key in [k for k in self._sent if k[0] not in owned]:
            del self._sent[key]
        now = self.clock()
        if now < self._paused_until:
            return 0
        full = now >= self._next_full
        known = {subscription for subscription, _ in self._sent}
        todo = set(owned) if full else (owned - known) | (self._dirty & owned)
        self._dirty -= todo
        if not todo:
            return 0
        try:
            alerts, updates = await self._plan(sorted(todo), now)
            still = self.owned()  # a rebalance during the reads: the new owner speaks for those
            alerts = [a for a in alerts if a["labels"]["subscription"] in still]
            for start in range(0, len(alerts), POST_CHUNK):
                await self.post(alerts[start : start + POST_CHUNK])
        except Exception as exc:
            self._dirty |= todo
            self._paused_until = now + min(RETRY_AFTER, self.interval)
            if not self._failing:
                log.warning("cannot send capacity alerts to Alertmanager (%s); retrying every %.0f s", exc,
                            min(RETRY_AFTER, self.interval))
            self._failing = True
            return 0
        if self._failing:
            log.info("capacity alerts reach Alertmanager again")
            self._failing = False
        self._sent.update((key, severity) for key, severity in updates.items() if key[0] in still)
        if full:
            self._next_full = now + self.interval
        return len(alerts)

    async def _plan(self, subscriptions: Iterable[str], now: float) -> tuple[list[Alert], dict[tuple[str, str], str | None]]:
        alerts: list[Alert] = []
        updates: dict[tuple[str, str], str | None] = {}
        # one pipelined read for all of them; a subscription with nothing committed yet is left out
        for subscription, side in (await self.store.read_sides(list(subscriptions))).items():
            for state in committed_levels(subscription, side.counts, side.settings):
                key = (subscription, state.user_class)
                severity = self.severities.of(state.level)
                previous = self._sent.get(key)
                if previous is not None and previous != severity:
                    alerts.append(self.alert(state, previous, now, firing=False))
                if severity is not None:
                    alerts.append(self.alert(state, severity, now, firing=True))
                updates[key] = severity
        return alerts, updates

    def alert(self, state: ClassLevel, severity: str, now: float, *, firing: bool) -> Alert:
        """One alert in Alertmanager's v2 form; a resolved one ends now."""
        capacity = "unlimited" if state.capacity is None else str(state.capacity)
        dashboard = self.dashboard_url
        summary = (f"{state.subscription}: {state.count} of {capacity} {state.user_class} end users "
                   f"(capacity level {state.level}%)")
        return {
            "labels": {"alertname": ALERT_NAME, "subscription": state.subscription,
                       "user_class": state.user_class, "severity": severity},
            "annotations": {
                "summary": summary,
                "description": (f"The {state.user_class} end users of subscription {state.subscription} hold the "
                                f"{state.level}% capacity threshold: {state.count} counted, {capacity} licensed."),
                "count": str(state.count),
                "capacity": capacity,
                "level": str(state.level),
                "dashboard": dashboard,
                "api": dashboard.rstrip("/") + "/api/v1/subscriptions/" + quote(state.subscription, safe=""),
            },
            "startsAt": _instant(now),
            "endsAt": _instant(now + VALID_FOR_INTERVALS * self.interval if firing else now),
            "generatorURL": dashboard,
        }


class AlertmanagerClient:
    """POSTs alerts to ``/api/v2/alerts`` of every Alertmanager given (the members of an HA cluster do
    not share alerts, so each needs them). It succeeds when at least one accepts: the others get
    everything again at the next full re-send."""

    def __init__(self, urls: Sequence[str], session: Callable[[], aiohttp.ClientSession], timeout: float = 10.0) -> None:
        self.urls = [url.rstrip("/") + "/api/v2/alerts" for url in urls]
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def __call__(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        body = orjson.dumps(list(alerts))
        results = await asyncio.gather(*(self._post(url, body) for url in self.urls), return_exceptions=True)
        failures = [f"{url}: {result!r}" for url, result in zip(self.urls, results) if result is not None]
        if len(failures) == len(self.urls):
            raise ConnectionError("; ".join(failures))
        for failure in failures:
            log.warning("Alertmanager %s", failure)

    async def _post(self, url: str, body: bytes) -> None:
        async with self.session().post(url, data=body, timeout=self.timeout,
                                       headers={"Content-Type": "application/json"}) as response:
            if response.status >= 300:
                raise ConnectionError(f"HTTP {response.status}: {(await response.text())[:200]}")


def install_alerts(app: faust.App, settings: WorkerSettings, store: CommittedCounts, count: Count) -> AlertPusher | None:
    """Push capacity alerts from this worker when ``ENDUSERS_ALERTMANAGER_URL`` is set."""
    urls = settings.alertmanager_urls
    if not urls:
        return None
    client = AlertmanagerClient(urls, lambda: app.http_client)  # Faust closes it
    pusher = AlertPusher(
        store, count.ownership.owned, client,
        severities=settings.severities,
        interval=settings.alert_interval,
        dashboard_url=settings.dashboard_url or f"http://{settings.web_host}:{settings.web_port}/",
    )
    count.level_listeners.append(pusher.level_changed)
    log.info("pushing capacity alerts to %s every %.0f s", ", ".join(client.urls), settings.alert_interval)

    @app.timer(1.0)
    async def push_alerts() -> None:
        await pusher.tick()

    return pusher
