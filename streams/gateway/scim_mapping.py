"""SCIM 2.0 Users (RFC 7643/7644) to our events, and the documents a SCIM client discovers.

The schema handling is ``scim2-models`` (pydantic models of RFC 7643/7644): parsing a request in its
context, PATCH operations (with and without a path, ``Replace`` in any case, the string booleans Entra
ID sends), filters, ``attributes``/``excludedAttributes``. What is ours is the mapping, a pure function
of the resource: every write becomes one profile event of the resource's state (docs/sources.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    InvalidValueException,
    Patch,
    PatchOp,
    ResourceType,
    SCIMException,
    ServiceProviderConfig,
    Sort,
    User,
)

from scim2_models.resources.user import Email

from streams.gateway.mapping import Batch, Target, Unmapped

PROVIDER = "scim"
"""The provider of the records SCIM provisions (``?provider=`` names another)."""


class DirectoryEmail(Email):
    """An email as the directory holds it: scim2-models checks deliverability rules (``okta.local``,
    the address in Okta's own examples, is refused as a special-use name); refusing the whole User
    for it would leave the person unprovisioned. The codec clears an address it finds invalid and
    counts it as a data-quality problem, as for any source."""

    value: str | None = None


class UserResource(User[EnterpriseUser]):
    """The User with the enterprise extension, as this server keeps it."""

    emails: list[DirectoryEmail] | None = None  # type: ignore[assignment]

MAX_RESULTS = 200
"""The most Users one list answers (``count`` larger is cut to it, as RFC 7644 §3.4.2.4 allows)."""
DOCS = "https://github.com/endusers/endusers/blob/main/docs/sources.md"


def parsed_user(body: object, context: Context) -> Any:
    """The User a POST or PUT carries; a :class:`SCIMException` (400 ``invalidValue``) otherwise."""
    if not isinstance(body, dict):
        raise InvalidValueException(detail="a User is a JSON object")
    try:
        return UserResource.model_validate(body, scim_ctx=context)
    except SCIMException:
        raise
    except ValidationError as exc:
        raise InvalidValueException(detail=reason(exc)) from None


def patched(user: Any, body: object) -> Any:
    """``user`` with a PatchOp body applied (a copy; the stored one is unchanged)."""
    if not isinstance(body, dict):
        raise InvalidValueException(detail="a PatchOp is a JSON object")
    try:
        operation = PatchOp[UserResource].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        copy = user.model_copy(deep=True)
        operation.patch(copy)
    except SCIMException:
        raise
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidValueException(detail=reason(exc)) from None
    return copy


def reason(exc: Exception) -> str:
    """A refusal as a client can read it: the first few validation errors, each with where it is."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)


def email(document: dict[str, Any]) -> str | None:
    """The primary email, else the work one, else the first: the address the person signs in with."""
    emails = [e for e in document.get("emails") or [] if isinstance(e, dict) and isinstance(e.get("value"), str)]
    for choose in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work", lambda e: True):
        found = next((e["value"] for e in emails if choose(e)), None)
        if found is not None:
            return str(found)
    return None


def _name(document: dict[str, Any]) -> str | None:
    found = document.get("name")
    name: dict[str, Any] = found if isinstance(found, dict) else {}
    parts = [name.get("givenName"), name.get("familyName")]
    joined = " ".join(p for p in parts if isinstance(p, str) and p)
    value = document.get("displayName") or name.get("formatted") or joined
    return value if isinstance(value, str) and value else None


def upsert_event(document: dict[str, Any], version: int, target: Target) -> dict[str, object] | Unmapped:
    """The profile upsert that makes the record the resource's state: login, email, name and
    ``active`` (absent counts as active, the SCIM default of a provisioned user); an attribute the
    resource lacks clears the record's (``null``). The id is the resource's and its version's: a
    retried request publishes the same event again."""
    event: dict[str, object] = {
        "type": "profile", "op": "upsert", "id": f"scim:{document['id']}:{version}", **target.scope(),
        "user_id": document["id"], "username": document.get("userName"), "email": email(document),
        "name": _name(document), "active": document.get("active") is not False}
    event.setdefault("provider", PROVIDER)
    return _checked(event)


def delete_event(resource_id: str, version: int, target: Target) -> dict[str, object] | Unmapped:
    """The profile delete of a resource, the version after its last."""
    event: dict[str, object] = {"type": "profile", "op": "delete", "id": f"scim:{resource_id}:{version}",
                                **target.scope(), "user_id": resource_id}
    event.setdefault("provider", PROVIDER)
    return _checked(event)


def _checked(event: dict[str, object]) -> dict[str, object] | Unmapped:
    """The event when the codec takes it (as every gateway event), else why not."""
    batch = Batch()
    batch.add(0, event)
    return batch.events[0] if batch.events else batch.unmapped[0][1]


def service_provider_config(location: str) -> dict[str, Any]:
    """What this server supports: PATCH, filters (up to :data:`MAX_RESULTS`), ETags (the version);
    no bulk, no sort, no password change; bearer tokens."""
    config = ServiceProviderConfig(
        documentation_uri=DOCS,  # type: ignore[arg-type]  # a URL string, validated into a Reference
        patch=Patch(supported=True), bulk=Bulk(supported=False),
        filter=Filter(supported=True, max_results=MAX_RESULTS), change_password=ChangePassword(supported=False),
        sort=Sort(supported=False), etag=ETag(supported=True),
        authentication_schemes=[AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken, name="Bearer token", primary=True,
            description="A token of role source whose scope holds the subscription (docs/security.md)")])
    document = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["meta"] = {"resourceType": "ServiceProviderConfig", "location": location}
    return document


def resource_types(base: str) -> list[dict[str, Any]]:
    """Users only: Groups are not provisioned here (the counts are of people)."""
    document = ResourceType.from_resource(UserResource).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["meta"] = {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"}
    return [document]


def schemas(base: str) -> list[dict[str, Any]]:
    """The core User schema and the enterprise extension, as scim2-models describes them."""
    found = []
    for model in (User, EnterpriseUser):
        document = model.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        document["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{document['id']}"}
        found.append(document)
    return found
