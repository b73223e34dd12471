"""The gateway's SCIM resources in Redis (docs/sources.md, SCIM provisioning).

A SCIM client reads back what it wrote, so the gateway keeps each provisioned User, per subscription,
under the subscription's hash tag: ``endusers:{acme}:scim:users`` maps a resource id to the resource
sealed with AES-GCM (:class:`counters.Sealer`, a key of its own derived from ENDUSERS_SECRET; the
subscription and id are the associated data), and ``endusers:{acme}:scim:names`` maps a keyed digest
of the lower-cased ``userName`` to the id, for uniqueness and ``userName eq`` lookups. Neither key
holds a personal field in clear. The counted record stays digest-only: it is the worker's, from the
published event.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import LockError, RedisError

from counters import Digester, Sealer, StoreUnavailable
from streams.settings import WorkerSettings
from streams.store.connect import AsyncClient, connect
from streams.store.errors import translated

PURPOSE = b"endusers scim resource sealing v1"
"""The HKDF info of the resources' key: not the key that seals the records' user ids."""

LEASE_SECONDS = 30.0
"""How long one gateway may hold a subscription's SCIM writes: longer than any write (Kafka's
acknowledgement within 10 s, then two Redis calls), so the lease lapses only for a frozen gateway."""
WAIT_SECONDS = 10.0
"""How long a write waits for another gateway's write of the same subscription before answering 503."""

log = logging.getLogger(__name__)

_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' and ARGV[4] ~= ARGV[3] and redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
"""Resource and name index in one step: a crash leaves both or neither."""

_DELETE = """
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One resource as kept: the SCIM document (with ``id`` and ``meta``) and its version (1, 2, ...)."""

    document: dict[str, Any]
    version: int


def _keys(subscription: str) -> list[str]:
    base = "endusers:{%s}:scim:" % subscription
    return [base + "users", base + "names", base + "writing"]


class ScimStore:
    """The SCIM Users of every subscription, sealed; single-key commands and one-slot scripts only, so
    one Redis server, Cluster and Sentinel alike."""

    def __init__(self, client: AsyncClient, secret: bytes) -> None:
        self.client = client
        self._sealer = Sealer(secret, PURPOSE)
        self._digester = Digester(secret)
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ScimStore:
        """The store ``ENDUSERS_REDIS`` names, sealing under ``ENDUSERS_SECRET``; nothing is sent yet."""
        return cls(connect(settings.redis, settings.sentinel_password()), settings.digest_secret())

    def name_key(self, subscription: str, user_name: str) -> str:
        """The index field of a ``userName``: SCIM compares it case-insensitively."""
        return self._digester.for_subscription(subscription)("scim-username", user_name.casefold())

    def new_id(self, subscription: str, user_name: str, attempt: int = 0) -> str:
        """A deterministic id for a new resource: a POST retried after a crash gets the id it got
        before, so the event it publishes again is the same record's (docs/sources.md)."""
        digest = self._digester.for_subscription(subscription)("scim-id", user_name.casefold(), str(attempt))
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"endusers:scim:{digest}"))

    def _open(self, subscription: str, resource_id: str, sealed: bytes | str | None) -> Stored | None:
        if not isinstance(sealed, bytes):
            return None
        plain = self._sealer.open_bytes(f"{subscription}\x1f{resource_id}".encode(), sealed)
        if plain is None:
            return None
        kept = orjson.loads(plain)
        return Stored(kept["resource"], int(kept["version"]))

    @contextlib.asynccontextmanager
    async def writing(self, subscription: str) -> AsyncIterator[None]:
        """The subscription's SCIM writes, one at a time across every gateway: a lease in Redis
        (``endusers:{acme}:scim:writing``, redis-py's lock: a token, set only if absent, released only
        by its holder). A write reads the stored version and publishes the next, so two gateways writing
        one User at once would publish one version twice. ``StoreUnavailable`` (503) when another
        gateway holds it for ``WAIT_SECONDS`` or Redis does not answer."""
        lease = self.client.lock(_keys(subscription)[2], timeout=LEASE_SECONDS, blocking_timeout=WAIT_SECONDS)
        try:
            held = await lease.acquire()
        except RedisError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not held:
            raise StoreUnavailable(f"another gateway has been writing the SCIM users of {subscription!r} "
                                   f"for {WAIT_SECONDS:.0f} s")
        try:
            yield
        finally:
            try:
                await lease.release()
            except LockError:  # lapsed: this write outlived LEASE_SECONDS, and another may have begun
                log.warning("the SCIM write lease of %r lapsed before its write ended", subscription)
            except RedisError:
                pass  # it lapses by itself

    @translated
    async def get(self, subscription: str, resource_id: str) -> Stored | None:
        sealed = await self.client.hget(_keys(subscription)[0], resource_id)
        return self._open(subscription, resource_id, sealed)

    @translated
    async def id_of(self, subscription: str, user_name: str) -> str | None:
        """The id of the resource whose ``userName`` is this one (any case), or None."""
        found = await self.client.hget(_keys(subscription)[1], self.name_key(subscription, user_name))
        return found.decode() if isinstance(found, bytes) else found

    @translated
    async def all(self, subscription: str) -> list[Stored]:
        """Every resource of the subscription, in creation order (then id): stable pages."""
        raw = await self.client.hgetall(_keys(subscription)[0])
        opened = [self._open(subscription, key.decode() if isinstance(key, bytes) else key, value)
                  for key, value in raw.items()]
        found = [item for item in opened if item is not None]
        return sorted(found, key=lambda s: (s.document.get("meta", {}).get("created", ""), s.document["id"]))

    @translated
    async def put(self, subscription: str, stored: Stored, old_user_name: str | None) -> None:
        """Keep ``stored`` (its document's ``id`` and ``userName``), moving the name index off the old name."""
        resource_id = stored.document["id"]
        sealed = self._sealer.seal_bytes(f"{subscription}\x1f{resource_id}".encode(),
                                         orjson.dumps({"resource": stored.document, "version": stored.version}))
        old = self.name_key(subscription, old_user_name) if old_user_name else ""
        await self._put(keys=_keys(subscription),
                        args=[resource_id, sealed, self.name_key(subscription, stored.document["userName"]), old])

    @translated
    async def delete(self, subscription: str, resource_id: str, user_name: str) -> None:
        await self._delete(keys=_keys(subscription), args=[resource_id, self.name_key(subscription, user_name)])

    async def close(self) -> None:
        await self.client.aclose()
