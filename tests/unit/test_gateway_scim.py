"""SCIM Users mapped to our events, with the request shapes Entra ID's and Okta's provisioning
documentation show (Entra: "Develop a SCIM endpoint" request/response examples; Okta: "SCIM 2.0
protocol" reference): what a create, a replace, each PATCH shape and a delete become."""

from __future__ import annotations

from typing import Any

import pytest
from scim2_models import Context, InvalidFilterException, InvalidValueException

from counters import Sealer
from schemas.codec import Rejection, validate
from streams.gateway.mapping import Target, Unmapped
from streams.gateway.scim import username_equals
from streams.gateway.scim_mapping import (
    delete_event,
    email,
    parsed_user,
    patched,
    resource_types,
    schemas,
    service_provider_config,
    upsert_event,
)

ACME = Target("acme", provider="scim")
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

ENTRA_CREATE: dict[str, Any] = {
    "schemas": [CORE, ENTERPRISE],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "active": True,
    "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
    "meta": {"resourceType": "User"},
    "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
    "roles": [],
    ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations"},
}
"""Entra ID's "Create User" request."""

OKTA_CREATE: dict[str, Any] = {
    "schemas": [CORE],
    "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}
"""Okta's "Create the User" request (it sends a password when the app pushes one)."""


def stored(body: dict[str, Any], resource_id: str = "2819c223-7f76-453a-919d-413861904646") -> Any:
    user = parsed_user(body, Context.RESOURCE_CREATION_REQUEST)
    user.id = resource_id
    return user


def document(user: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return dumped


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def test_an_entra_create_becomes_an_active_upsert_with_the_login_and_work_email() -> None:
    event = upsert_event(document(stored(ENTRA_CREATE)), 1, ACME)
    assert event == {"type": "profile", "op": "upsert", "id": "scim:2819c223-7f76-453a-919d-413861904646:1",
                     "subscription": "acme", "provider": "scim", "user_id": "2819c223-7f76-453a-919d-413861904646",
                     "username": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
                     "email": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com",
                     "name": "givenName familyName", "active": True}
    assert not isinstance(validate(event), Rejection)


def test_the_enterprise_extension_and_external_id_are_kept() -> None:
    kept = document(stored(ENTRA_CREATE))
    assert kept["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert kept[ENTERPRISE] == {"employeeNumber": "701984", "department": "Tour Operations"}


def test_an_okta_create_keeps_no_password_and_maps_the_display_name() -> None:
    kept = document(stored(OKTA_CREATE))
    assert "password" not in kept
    event = upsert_event(kept, 1, Target("acme", "prod", "okta-scim"))
    assert isinstance(event, dict)
    assert (event["username"], event["email"], event["name"], event["runtime"], event["provider"]) == (
        "test.user@okta.local", "test.user@okta.local", "Test User", "prod", "okta-scim")


def test_the_primary_email_wins_then_the_work_one_then_the_first() -> None:
    assert email({"emails": [{"value": "a@x.io", "type": "home"}, {"value": "b@x.io", "primary": True}]}) == "b@x.io"
    assert email({"emails": [{"value": "a@x.io", "type": "home"}, {"value": "b@x.io", "type": "work"}]}) == "b@x.io"
    assert email({"emails": [{"value": "a@x.io", "type": "home"}]}) == "a@x.io"
    assert email({}) is None


@pytest.mark.parametrize("operation", [
    {"op": "Replace", "value": {"active": False}},          # Entra, no path
    {"op": "Replace", "path": "active", "value": "False"},  # Entra's string boolean
    {"op": "replace", "path": "active", "value": False},    # Okta
    {"op": "replace", "value": {"active": False}},          # Okta's deactivation, no path
])
def test_each_deactivation_shape_makes_the_record_inactive(operation: dict[str, Any]) -> None:
    user = patched(stored(OKTA_CREATE), patch(operation))
    event = upsert_event(document(user), 2, ACME)
    assert isinstance(event, dict) and event["active"] is False and str(event["id"]).endswith(":2")


def test_a_string_true_reactivates() -> None:
    inactive = patched(stored(OKTA_CREATE), patch({"op": "Replace", "path": "active", "value": "False"}))
    active = patched(inactive, patch({"op": "Replace", "path": "active", "value": "True"}))
    assert active.active is True and inactive.active is False


def test_entra_multi_valued_and_single_valued_replaces_change_the_email_and_login() -> None:
    user = patched(stored(ENTRA_CREATE), patch(
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        {"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}))
    event = upsert_event(document(user), 3, ACME)
    assert isinstance(event, dict)
    assert (event["email"], event["username"]) == ("updatedEmail@microsoft.com",
                                                   "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")


def test_add_and_remove_with_paths_and_an_add_without_one() -> None:
    user = patched(stored(OKTA_CREATE), patch(
        {"op": "add", "path": f"{ENTERPRISE}:department", "value": "Sales"},
        {"op": "remove", "path": "emails"},
        {"op": "add", "value": {"displayName": "Tess User"}}))
    kept = document(user)
    assert kept[ENTERPRISE] == {"department": "Sales"}
    event = upsert_event(kept, 2, ACME)
    assert isinstance(event, dict) and event["email"] is None and event["name"] == "Tess User"


def test_a_patch_leaves_the_stored_user_unchanged() -> None:
    user = stored(OKTA_CREATE)
    patched(user, patch({"op": "replace", "value": {"active": False}}))
    assert user.active is True


def test_a_put_without_an_attribute_clears_it_on_the_record() -> None:
    replaced = {key: value for key, value in OKTA_CREATE.items() if key not in ("emails", "displayName", "name")}
    event = upsert_event(document(stored(replaced)), 2, ACME)
    assert isinstance(event, dict) and (event["email"], event["name"]) == (None, None)


def test_a_delete_becomes_a_profile_delete_of_the_next_version() -> None:
    assert delete_event("abc", 4, ACME) == {"type": "profile", "op": "delete", "id": "scim:abc:4",
                                            "subscription": "acme", "provider": "scim", "user_id": "abc"}


@pytest.mark.parametrize("body", [
    [], {"schemas": [CORE]}, {"schemas": [CORE], "userName": 5}, {"schemas": [CORE], "userName": "a", "active": "maybe"},
])
def test_a_user_that_is_not_one_is_refused_with_a_reason(body: Any) -> None:
    with pytest.raises(InvalidValueException) as refused:
        parsed_user(body, Context.RESOURCE_CREATION_REQUEST)
    assert refused.value.detail


@pytest.mark.parametrize("body", [[], patch({"op": "jump", "path": "active", "value": False}),
                                  patch({"op": "replace", "path": "no such thing[", "value": 1})])
def test_a_patch_that_is_not_one_is_refused_with_a_reason(body: Any) -> None:
    with pytest.raises(InvalidValueException):
        patched(stored(OKTA_CREATE), body)


def test_a_login_the_codec_refuses_is_not_published() -> None:
    long = document(stored({**OKTA_CREATE, "userName": "x" * 300}))
    assert isinstance(upsert_event(long, 1, ACME), Unmapped)


def test_the_username_lookup_is_recognised_and_other_filters_are_not() -> None:
    assert username_equals('userName eq "test.user@okta.local"') == "test.user@okta.local"
    assert username_equals('USERNAME eq "Ann"') == "Ann"
    assert username_equals('userName co "ann"') is None
    assert username_equals('userName eq "a" or userName eq "b"') is None
    assert username_equals('externalId eq "00ujl29u0le5T6Aj10h7"') is None
    with pytest.raises(InvalidFilterException):
        username_equals('userName eq')


def test_discovery_declares_users_only_patch_filter_and_etags() -> None:
    config = service_provider_config("http://gw/scim/v2/acme/ServiceProviderConfig")
    assert (config["patch"]["supported"], config["filter"]["supported"], config["bulk"]["supported"],
            config["etag"]["supported"]) == (True, True, False, True)
    assert [t["id"] for t in resource_types("http://gw")] == ["User"]
    assert [s["id"] for s in schemas("http://gw")] == [CORE, ENTERPRISE]


def test_a_sealed_document_opens_only_under_its_key_and_secret() -> None:
    sealer = Sealer(b"s" * 32, b"purpose")
    sealed = sealer.seal_bytes(b"acme\x1fid-1", b'{"userName":"ann"}')
    assert b"ann" not in sealed
    assert sealer.open_bytes(b"acme\x1fid-1", sealed) == b'{"userName":"ann"}'
    assert sealer.open_bytes(b"acme\x1fid-2", sealed) is None
    assert Sealer(b"s" * 32).open_bytes(b"acme\x1fid-1", sealed) is None  # the user-id key is another
