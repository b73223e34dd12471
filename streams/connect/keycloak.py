"""``endusers connect keycloak``: a realm's users and stored events, read through Keycloak's admin REST
API and published as our events (docs/sources.md, Keycloak).

The first start upserts the realm's users as they stand, then reads every stored event; from then on
it polls the user events and the admin events from its cursors (``cursor.py``), kept in the store per
subscription and realm and saved only after Kafka has acknowledged what they cover. Keycloak or Kafka
away: the poll is retried at the next interval, from the same cursors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from counters import Cursors, StoreUnavailable
from streams.connect import keycloak_events as mapping
from streams.connect.common import Mapped, Scope
from streams.connect.cursor import Cursor
from streams.connect.outlet import Outlet
from streams.kafka.errors import BrokerUnavailable
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

PAGE = 100
"""Users or events per request."""
USER_EVENT_TYPES = ("LOGIN", "REGISTER")


class KeycloakRefused(Exception):
    """Keycloak could not be reached, or answered but not with what was asked (wrong credentials,
    missing roles, no realm)."""


@dataclass
class Credentials:
    """Who the connector signs in as: a master-realm admin through ``admin-cli`` (password grant),
    or a confidential client of the realm read (client credentials)."""

    username: str = ""
    password: str = field(default="", repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Credentials:
        secret = settings.keycloak_client_secret
        password = settings.keycloak_password
        return cls(settings.keycloak_username, "" if password is None else password.get_secret_value(),
                   settings.keycloak_client_id, "" if secret is None else secret.get_secret_value())

    def grant(self, realm: str) -> tuple[str, dict[str, str]]:
        """The token endpoint's realm and the form to post to it."""
        if self.client_id:
            return realm, {"grant_type": "client_credentials", "client_id": self.client_id,
                           "client_secret": self.client_secret}
        if self.username:
            return "master", {"grant_type": "password", "client_id": "admin-cli", "username": self.username,
                              "password": self.password}
        raise KeycloakRefused("no credentials: set ENDUSERS_KEYCLOAK_USERNAME and ENDUSERS_KEYCLOAK_PASSWORD "
                              "(a master-realm admin) or ENDUSERS_KEYCLOAK_CLIENT_ID and _CLIENT_SECRET")


class KeycloakApi:
    """The few admin REST calls the connector makes, with a token renewed before it expires."""

    def __init__(self, url: str, realm: str, credentials: Credentials, timeout: float = 30.0) -> None:
        self.url, self.realm, self.credentials = url.rstrip("/"), realm, credentials
        self.client = httpx.AsyncClient(timeout=timeout)
        self._token: str | None = None
        self._expires = 0.0

    async def close(self) -> None:
        await self.client.aclose()

    async def _authorization(self) -> dict[str, str]:
        if self._token is None or time.monotonic() > self._expires:
            realm, form = self.credentials.grant(self.realm)
            answer = await self.client.post(f"{self.url}/realms/{realm}/protocol/openid-connect/token", data=form)
            if answer.status_code != 200:
                raise KeycloakRefused(f"sign-in to realm {realm} refused ({answer.status_code}): {answer.text[:200]}")
            token = answer.json()
            self._token = token["access_token"]
            self._expires = time.monotonic() + max(5.0, float(token.get("expires_in", 60)) - 15)
        return {"Authorization": f"Bearer {self._token}"}

    async def get(self, path: str, **params: Any) -> Any:
        """``GET /admin/realms/<realm>/<path>``, signing in again once if the token was refused."""
        try:
            return await self._get(path, params)
        except httpx.HTTPError as exc:
            raise KeycloakRefused(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        for attempt in (1, 2):
            answer = await self.client.get(f"{self.url}/admin/realms/{self.realm}/{path}", params=params,
                                           headers=await self._authorization())
            if answer.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if answer.status_code != 200:
                raise KeycloakRefused(f"GET {path} of realm {self.realm}: {answer.status_code} {answer.text[:200]}")
            return answer.json()

    async def pages(self, path: str, **params: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """A paginated list (``first``/``max``), page by page."""
        first = 0
        while True:
            page = await self.get(path, first=first, max=PAGE, **params)
            if not isinstance(page, list):
                raise KeycloakRefused(f"GET {path}: expected a list, got {type(page).__name__}")
            if page:
                yield page
            if len(page) < PAGE:
                return
            first += len(page)


def config_warnings(config: Mapping[str, Any], realm: str) -> list[str]:
    """What the realm's event settings (``GET events/config``) keep the connector from seeing, and how to fix it."""
    where = f"in the admin console, realm {realm} > Realm settings > Events"
    found = []
    kinds = config.get("enabledEventTypes") or []
    if not config.get("eventsEnabled") or (kinds and "LOGIN" not in kinds):
        found.append(f"realm {realm} does not store LOGIN events, so no login is counted: {where} > User events "
                     "settings: turn on Save events (with LOGIN among the saved types)")
    if not config.get("adminEventsEnabled") or not config.get("adminEventsDetailsEnabled"):
        found.append(f"realm {realm} does not store admin events with their representation, so users created, "
                     f"disabled or deleted after the first start are missed: {where} > Admin events settings: turn "
                     "on Save events and Include representation")
    if config.get("eventsEnabled") and config.get("eventsExpiration"):
        found.append(f"realm {realm} expires its events after {config['eventsExpiration']} s: a connector stopped "
                     "for longer misses the logins in between")
    return found


@dataclass
class KeycloakConnector:
    """One realm read into one subscription."""

    api: KeycloakApi
    outlet: Outlet
    cursors: Cursors
    scope: Scope
    clock: Callable[[], float] = time.time
    emails: dict[str, str] = field(default_factory=dict)
    """User id -> email, from the listing and the admin events: the logins of these users carry it."""

    @property
    def realm(self) -> str:
        return self.api.realm

    @property
    def source(self) -> str:
        return f"keycloak:{self.realm}"

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Poll until ``stop`` is set; a failed poll is logged and retried at the next interval."""
        for warning in config_warnings(await self.api.get("events/config"), self.realm):
            log.warning(warning)
        while not stop.is_set():
            try:
                await self.poll()
            except (KeycloakRefused, OSError, BrokerUnavailable, StoreUnavailable) as exc:
                log.warning("keycloak %s: %s; retrying from the same cursor in %ss", self.realm, exc, interval)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def poll(self) -> None:
        """One pass: the users on the first start, then the user events and the admin events."""
        state = await self.cursors.cursor(self.scope.subscription, self.source) or {}
        if not state.get("users"):
            await self.load_users()
            state["users"] = True
            await self.cursors.save_cursor(self.scope.subscription, self.source, state)
        for name, path, params, mapper in (
                ("admin", "admin-events", {"resourceTypes": "USER"}, self._admin),
                ("events", "events", {"type": list(USER_EVENT_TYPES)}, self._user)):
            cursor = Cursor.from_json(state.get(name))
            async for page in self.api.pages(path, dateFrom=cursor.start, direction="asc", **params):
                await self._take(page, cursor, mapper)
                state[name] = cursor.to_json()
                await self.cursors.save_cursor(self.scope.subscription, self.source, state)

    async def load_users(self) -> None:
        """Every user of the realm as it stands now, as upserts (paginated)."""
        now = int(self.clock() * 1000)
        loaded = 0
        async for page in self.api.pages("users", briefRepresentation="true"):
            for user in page:
                if isinstance(user.get("id"), str) and isinstance(user.get("email"), str):
                    self.emails[user["id"]] = user["email"]
                await self.outlet.send(mapping.user_upsert(user, self.scope, self.realm, now), f"{self.source} user")
            await self.outlet.flush()
            loaded += len(page)
        log.info("keycloak %s: %d existing users published", self.realm, loaded)

    async def _take(self, page: list[dict[str, Any]], cursor: Cursor,
                    mapper: Callable[[dict[str, Any]], Mapped]) -> None:
        """Publish the page's new events, wait for Kafka, then move the cursor over them."""
        taken = []
        for event in page:
            when = event.get("time")
            key = mapping.event_key(event)
            if not isinstance(when, int) or not cursor.is_new(key, when):
                continue
            await self.outlet.send(mapper(event), f"{self.source} event {key}")
            taken.append((key, when))
        await self.outlet.flush()
        for key, when in taken:
            cursor.take(key, when)

    def _user(self, event: dict[str, Any]) -> Mapped:
        return mapping.user_event(event, self.scope, self.realm, self.emails)

    def _admin(self, event: dict[str, Any]) -> Mapped:
        user = mapping.representation(event)
        path = str(event.get("resourcePath", ""))
        if user is not None and isinstance(user.get("email"), str) and path.startswith("users/"):
            self.emails[path.removeprefix("users/")] = user["email"]
        return mapping.admin_event(event, self.scope, self.realm)


async def run(settings: WorkerSettings, realm: str, scope: Scope, url: str | None, interval: float, once: bool,
              stop: asyncio.Event) -> Outlet:
    """Read the realm until ``stop`` (one pass with ``once``); the outlet's tally says what was published."""
    from streams.store import open_cursors

    base = url or settings.keycloak_url
    if not base:
        raise KeycloakRefused("no Keycloak URL: pass --url or set ENDUSERS_KEYCLOAK_URL")
    api = KeycloakApi(base, realm, Credentials.from_settings(settings))
    cursors = open_cursors(settings)
    try:
        async with Outlet(settings) as outlet:
            connector = KeycloakConnector(api, outlet, cursors, scope)
            if once:
                for warning in config_warnings(await api.get("events/config"), realm):
                    log.warning(warning)
                await connector.poll()
            else:
                await connector.run(stop, interval)
        return outlet
    finally:
        await api.close()
        await cursors.close()
