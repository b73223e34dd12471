"""SCIM 2.0 provisioning on the gateway: ``/scim/v2/{subscription}/...`` (docs/sources.md, docs/http.md).

Identity providers (Entra ID, Okta, ...) push Users here; each write becomes one profile event of the
resource's new state (:mod:`streams.gateway.scim_mapping`), published like every gateway event, and the
resource is kept in Redis (:mod:`streams.store.scim`) so the client reads back what it wrote.

Order of a write: the event is published and acknowledged by Kafka first, and only then is the resource
stored; the answer comes last. A crash between the two leaves the event counted and the resource as it
was: the client gets no answer and sends the request again, which computes the same resource id (a new
User's id is derived from its userName) and the same version, so the same event id and the same state
are published again (harmless: an upsert sets the state it carries), and then the resource is stored.
Writes of one subscription are serialized, in the process (a lock) and across gateways (a lease in
Redis, ``ScimStore.writing``), so versions never race.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError
from scim2_models import (
    Context,
    InvalidFilterException,
    InvalidSyntaxException,
    InvalidValueException,
    NotFoundException,
    NotImplementedException,
    PreconditionFailedException,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)

from counters import StoreUnavailable
from streams.gateway import metrics as observed
from streams.gateway import scim_mapping as mapping
from streams.gateway.mapping import Target, Unmapped
from streams.kafka.errors import BrokerUnavailable
from streams.kafka.publish import Publisher
from streams.gateway.writers import ACK_TIMEOUT, RETRY_AFTER, writer
from streams.store.scim import ScimStore, Stored

CONTENT_TYPE = "application/scim+json"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_PREFIX = "/scim/v2/"
KNOWN = frozenset({"ServiceProviderConfig", "ResourceTypes", "Schemas", "Users"})
"""The endpoints served: another method on them is 405, not 404."""

Handler = Callable[[web.Request], Awaitable[web.Response]]


def answer(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=CONTENT_TYPE,
                        headers={"Cache-Control": "no-cache", **(headers or {})})


def error(status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
          ) -> web.Response:
    body: dict[str, object] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return answer(body, status, headers)


def scim_errors(handler: Handler) -> Handler:
    """Every failure as a SCIM error body: the client's, the token's, the store's, Kafka's."""
    @functools.wraps(handler)
    async def call(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except SCIMException as exc:
            return answer(exc.to_error().model_dump(), int(exc.status))
        except web.HTTPException as exc:
            return error(exc.status, _reason(exc))
        except StoreUnavailable as exc:
            return error(503, f"the store is unavailable: {exc}", headers={"Retry-After": str(RETRY_AFTER)})
        except (BrokerUnavailable, asyncio.TimeoutError) as exc:
            return error(503, f"Kafka is unavailable; send the request again later ({exc or 'timeout'})",
                         headers={"Retry-After": str(RETRY_AFTER)})
    return call


@web.middleware
async def scim_refusals(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The access policy's refusals (401 without a valid token, 403, 421) on a SCIM path as SCIM error
    bodies: an identity provider's SCIM client reads ``detail`` (RFC 7644, section 3.12), not the
    ``error`` of the other routes. Installed outside the access middleware, so it sees what that answers."""
    response = await handler(request)
    if (request.path.startswith(SCIM_PREFIX) and response.status >= 400 and isinstance(response, web.Response)
            and response.content_type == "application/json"):
        return error(response.status, _detail(response.body, response.reason), headers={k: v for k, v in response.headers.items()
                                                        if k in ("WWW-Authenticate", "Retry-After")})
    return response


def _reason(exc: web.HTTPException) -> str:
    return _detail(exc.body, exc.reason)


def _detail(body: object, reason: str) -> str:
    """The ``error`` of one of this project's JSON error bodies; the HTTP reason when there is none."""
    try:
        return str(orjson.loads(body or b"{}").get("error") or reason)  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return reason


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _body(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntaxException(detail=f"not JSON: {exc}") from None


def etag(version: int) -> str:
    return f'W/"{version}"'


def _response_parameters(request: web.Request) -> Any:
    query = {k: request.query[k] for k in ("attributes", "excludedAttributes") if k in request.query}
    try:
        return ResponseParameters[mapping.UserResource].model_validate(query) if query else None
    except (ValidationError, SCIMException) as exc:
        raise InvalidValueException(detail=f"attributes: {exc}") from None


def shown(stored: Stored, parameters: Any = None) -> dict[str, Any]:
    """A stored User as a response carries it (``attributes``/``excludedAttributes`` applied)."""
    user = mapping.UserResource.model_validate(stored.document)
    return user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)


def _int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise InvalidValueException(detail=f"{name} must be an integer") from None


def username_equals(text: str) -> str | None:
    """The value of a filter ``userName eq "..."`` (the lookup Entra and Okta make before a create),
    answered from the name index; None for any other filter (evaluated on every resource)."""
    try:
        node = ScimFilter[mapping.UserResource](text).ast
    except SCIMException:
        raise
    except (ValueError, ValidationError) as exc:
        raise InvalidFilterException(detail=str(exc)) from None
    attr = getattr(node, "attr_path", None)
    if getattr(getattr(node, "op", None), "value", None) != "eq" or attr is None or attr.sub_attr is not None \
            or attr.attr.lower() != "username" or attr.uri not in (None, CORE) \
            or not isinstance(value := getattr(node, "value", None), str):
        return None
    return value


class ScimRoutes:
    """The SCIM endpoints of one gateway: its publisher for the events, its store for the resources."""

    def __init__(self, publisher: Publisher, store: ScimStore) -> None:
        self.publisher = publisher
        self.store = store
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def routes(self) -> list[web.RouteDef]:
        base = SCIM_PREFIX + "{subscription}"
        return [
            web.get(f"{base}/ServiceProviderConfig", scim_errors(self.service_provider_config)),
            web.get(f"{base}/ResourceTypes", scim_errors(self.resource_types)),
            web.get(f"{base}/ResourceTypes/{{name}}", scim_errors(self.resource_type)),
            web.get(f"{base}/Schemas", scim_errors(self.schemas)),
            web.get(f"{base}/Schemas/{{name}}", scim_errors(self.schema)),
            web.get(f"{base}/Users", scim_errors(self.list_users)),
            web.post(f"{base}/Users", scim_errors(self.create)),
            web.get(f"{base}/Users/{{id}}", scim_errors(self.read)),
            web.put(f"{base}/Users/{{id}}", scim_errors(self.replace)),
            web.patch(f"{base}/Users/{{id}}", scim_errors(self.patch)),
            web.delete(f"{base}/Users/{{id}}", scim_errors(self.delete)),
            web.route("*", f"{base}/Groups{{tail:.*}}", scim_errors(self.unsupported)),
            web.route("*", f"{base}/Bulk", scim_errors(self.unsupported)),
            web.post(f"{base}/.search", scim_errors(self.search)),
            web.post(f"{base}/Users/.search", scim_errors(self.search)),
            web.route("*", f"{base}/{{tail:.*}}", scim_errors(self.not_found)),
        ]

    # discovery -------------------------------------------------------------------------------------

    async def service_provider_config(self, request: web.Request) -> web.Response:
        _writer(request)
        return answer(mapping.service_provider_config(f"{_base(request)}/ServiceProviderConfig"))

    async def resource_types(self, request: web.Request) -> web.Response:
        _writer(request)
        return answer(_listed(mapping.resource_types(_base(request)), 1))

    async def resource_type(self, request: web.Request) -> web.Response:
        _writer(request)
        return answer(_named(mapping.resource_types(_base(request)), request.match_info["name"], "resource type"))

    async def schemas(self, request: web.Request) -> web.Response:
        _writer(request)
        return answer(_listed(mapping.schemas(_base(request)), 1))

    async def schema(self, request: web.Request) -> web.Response:
        _writer(request)
        return answer(_named(mapping.schemas(_base(request)), request.match_info["name"], "schema"))

    async def unsupported(self, request: web.Request) -> web.Response:
        _writer(request)
        raise NotImplementedException(detail="only Users are provisioned here (no Groups, no Bulk)")

    async def not_found(self, request: web.Request) -> web.Response:
        """404 for a path that is no endpoint; 405 for a method an endpoint does not take (RFC 7644 §3.2)."""
        _writer(request)
        if request.match_info["tail"].split("/")[0] in KNOWN:
            return error(405, f"{request.method} is not supported on {request.path}")
        raise NotFoundException(detail=f"no SCIM endpoint {request.path!r}")

    # reads -----------------------------------------------------------------------------------------

    async def read(self, request: web.Request) -> web.Response:
        _writer(request)
        stored = await self._existing(request)
        return answer(shown(stored, _response_parameters(request)), headers={"ETag": etag(stored.version)})

    async def list_users(self, request: web.Request) -> web.Response:
        subscription = _writer(request)
        parameters = _response_parameters(request)
        start, count = _int(request, "startIndex", 1), _int(request, "count", mapping.MAX_RESULTS)
        return answer(await self._page(subscription, request.query.get("filter"), start, count, parameters))

    async def search(self, request: web.Request) -> web.Response:
        """POST ``.search`` (RFC 7644 §3.4.3), at the root or on Users: Users are the only resources."""
        subscription = _writer(request)
        try:
            query = SearchRequest[mapping.UserResource].model_validate(_body(await request.read()))
        except ValidationError as exc:
            raise InvalidValueException(detail=mapping.reason(exc)) from None
        return answer(await self._page(subscription, str(query.filter) if query.filter else None,
                                       query.start_index or 1, mapping.MAX_RESULTS if query.count is None
                                       else query.count, query))

    async def _page(self, subscription: str, text: str | None, start: int, count: int,
                    parameters: Any) -> dict[str, Any]:
        """One page of the Users that match: ``startIndex`` below 1 is 1, ``count`` at most MAX_RESULTS."""
        start, count = max(1, start), min(max(0, count), mapping.MAX_RESULTS)
        found = await self._filtered(subscription, text)
        page = found[start - 1:start - 1 + count]
        return _listed([shown(s, parameters) for s in page], start, len(found))

    async def _filtered(self, subscription: str, text: str | None) -> list[Stored]:
        if not text:
            return await self.store.all(subscription)
        name = username_equals(text)
        if name is not None:
            resource_id = await self.store.id_of(subscription, name)
            stored = await self.store.get(subscription, resource_id) if resource_id else None
            return [stored] if stored is not None else []
        condition = ScimFilter[mapping.UserResource](text)
        return [s for s in await self.store.all(subscription)
                if condition.match(mapping.UserResource.model_validate(s.document))]

    async def _existing(self, request: web.Request) -> Stored:
        stored = await self.store.get(request.match_info["subscription"], request.match_info["id"])
        if stored is None:
            raise NotFoundException(detail=f"no User {request.match_info['id']!r}")
        return stored

    # writes ----------------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        subscription = _writer(request)
        user = mapping.parsed_user(_body(await request.read()), Context.RESOURCE_CREATION_REQUEST)
        async with self._locks[subscription], self.store.writing(subscription):
            if await self.store.id_of(subscription, user.user_name) is not None:
                raise UniquenessException(detail=f"userName {user.user_name!r} is taken")
            attempt = 0
            while await self.store.get(subscription, self.store.new_id(subscription, user.user_name, attempt)):
                attempt += 1  # a renamed User holds the id this name would get first
            resource_id = self.store.new_id(subscription, user.user_name, attempt)
            stored = _stamped(user, resource_id, 1, _now(), _base(request))
            await self._commit(request, stored, None)
        return answer(shown(stored), 201, {"Location": stored.document["meta"]["location"],
                                           "ETag": etag(stored.version)})

    async def replace(self, request: web.Request) -> web.Response:
        _writer(request)
        user = mapping.parsed_user(_body(await request.read()), Context.RESOURCE_REPLACEMENT_REQUEST)
        return await self._rewrite(request, lambda _: user)

    async def patch(self, request: web.Request) -> web.Response:
        _writer(request)
        body = _body(await request.read())
        return await self._rewrite(request, lambda old: mapping.patched(old, body))

    async def _rewrite(self, request: web.Request, change: Callable[[Any], Any]) -> web.Response:
        """PUT and PATCH: the new state from the stored one, published, then stored."""
        subscription = request.match_info["subscription"]
        async with self._locks[subscription], self.store.writing(subscription):
            old = await self._existing(request)
            _check_version(request, old)
            user = change(mapping.UserResource.model_validate(old.document))
            holder = await self.store.id_of(subscription, user.user_name) if user.user_name else None
            if holder not in (None, old.document["id"]):
                raise UniquenessException(detail=f"userName {user.user_name!r} is taken")
            stored = _stamped(user, old.document["id"], old.version + 1, old.document["meta"]["created"],
                              _base(request))
            await self._commit(request, stored, old.document.get("userName"))
        return answer(shown(stored), headers={"ETag": etag(stored.version)})

    async def delete(self, request: web.Request) -> web.Response:
        subscription = _writer(request)
        async with self._locks[subscription], self.store.writing(subscription):
            old = await self._existing(request)
            _check_version(request, old)
            event = mapping.delete_event(old.document["id"], old.version + 1, _target(request))
            await self._publish(event)
            await self.store.delete(subscription, old.document["id"], old.document["userName"])
        return web.Response(status=204, headers={"Cache-Control": "no-cache"})

    async def _commit(self, request: web.Request, stored: Stored, old_name: str | None) -> None:
        """Publish the resource's state, wait for Kafka's acknowledgement, then keep the resource."""
        await self._publish(mapping.upsert_event(stored.document, stored.version, _target(request)))
        await self.store.put(request.match_info["subscription"], stored, old_name)

    async def _publish(self, event: dict[str, object] | Unmapped) -> None:
        if isinstance(event, Unmapped):
            observed.REFUSED.labels("scim", event.category).inc()
            raise InvalidValueException(detail=event.reason)
        result = await asyncio.wait_for(self.publisher.publish([event]), ACK_TIMEOUT)
        if result.unroutable:
            observed.REFUSED.labels("scim", "no_topic").inc()
            raise BrokerUnavailable("; ".join(result.unroutable))
        observed.ACCEPTED.labels("scim").inc()


def _stamped(user: Any, resource_id: str, version: int, created: str, base: str) -> Stored:
    """The document to keep: the User as a response shows it (no password: SCIM never returns one),
    with its id and meta."""
    user.id = resource_id
    user.meta = None
    document: dict[str, Any] = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["meta"] = {"resourceType": "User", "created": created, "lastModified": _now(),
                        "location": f"{base}/Users/{resource_id}", "version": etag(version)}
    return Stored(document, version)


def _check_version(request: web.Request, stored: Stored) -> None:
    wanted = request.headers.get("If-Match")
    if wanted and wanted.strip() not in ("*", etag(stored.version)):
        raise PreconditionFailedException(detail=f"the User is at version {etag(stored.version)}")


def _listed(resources: list[dict[str, Any]], start: int, total: int | None = None) -> dict[str, Any]:
    return {"schemas": [LIST], "totalResults": len(resources) if total is None else total,
            "startIndex": start, "itemsPerPage": len(resources), "Resources": resources}


def _named(definitions: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    """The discovery document whose id is ``name``; a SCIM 404 naming ``what`` otherwise."""
    for definition in definitions:
        if definition["id"] == name:
            return definition
    raise NotFoundException(detail=f"no {what} {name!r}")


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/scim/v2/{request.match_info['subscription']}"


def _target(request: web.Request) -> Target:
    return Target(request.match_info["subscription"], request.query.get("runtime") or None,
                  request.query.get("provider") or mapping.PROVIDER)



def _writer(request: web.Request) -> str:
    """The route's subscription when the token may write for it (role source or admin); 403 otherwise."""
    writer(request)
    return request.match_info["subscription"]
