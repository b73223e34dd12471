"""Okta event hooks mapped to our events: payloads shaped as Okta's event hook documentation shows them
(``data.events[]`` of System Log events with ``uuid``, ``published``, ``actor``, ``target``, ``outcome``)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.codec import validate
from streams.gateway.mapping import Malformed, Target
from streams.gateway.okta import map_hook

ACME = Target("acme", provider="okta")


def okta_event(kind: str, uuid: str = "4c6ed4b6-9b5e-11ec-8e60-d5f1a6bb2c2a", result: str = "SUCCESS",
               actor: dict[str, Any] | None = None, target: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "uuid": uuid, "published": "2026-03-04T20:36:51.469Z", "eventType": kind, "version": "0",
        "displayMessage": "…", "severity": "INFO",
        "client": {"userAgent": {"rawUserAgent": "Mozilla/5.0"}, "ipAddress": "198.51.100.7"},
        "actor": actor or {"id": "00u1qw1mqitPHM8AJ0g7", "type": "User", "alternateId": "ann.lee@example.com",
                           "displayName": "Ann Lee", "detailEntry": None},
        "outcome": {"result": result, "reason": None if result == "SUCCESS" else "INVALID_CREDENTIALS"},
        "target": target or [],
    }


def hook(*events: dict[str, Any]) -> dict[str, Any]:
    return {"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
            "source": "https://example.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3",
            "eventId": "b5a188b9-5ece-4636-b041-482ffda96311", "eventTime": "2026-03-04T20:36:54.058Z",
            "contentType": "application/json", "data": {"events": list(events)}}


ADMIN = {"id": "00u1admin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"}
BOB = {"id": "00u2bob", "type": "User", "alternateId": "bob", "displayName": "Bob Ray", "detailEntry": None}


@pytest.mark.parametrize("kind", ["user.session.start", "user.authentication.sso"])
def test_a_successful_sign_in_is_a_login_of_the_actor_with_its_login_and_email(kind: str) -> None:
    sso_target = [{"id": "0oa1app", "type": "AppInstance", "alternateId": "Salesforce", "displayName": "Salesforce"}]
    batch = map_hook(hook(okta_event(kind, target=sso_target)), ACME)
    assert batch.events == [{
        "type": "login", "id": "okta:4c6ed4b6-9b5e-11ec-8e60-d5f1a6bb2c2a", "subscription": "acme",
        "provider": "okta", "user_id": "00u1qw1mqitPHM8AJ0g7", "username": "ann.lee@example.com",
        "email": "ann.lee@example.com", "name": "Ann Lee", "time": "2026-03-04T20:36:51.469Z"}]
    assert not batch.ignored and not batch.unmapped


def test_a_login_that_is_not_an_email_is_a_username_without_email() -> None:
    [event] = map_hook(hook(okta_event("user.session.start", actor=BOB)), ACME).events
    assert event["username"] == "bob" and "email" not in event


@pytest.mark.parametrize("result", ["FAILURE", "DENY", "CHALLENGE", "UNKNOWN"])
def test_a_sign_in_that_did_not_succeed_is_ignored_and_counted(result: str) -> None:
    batch = map_hook(hook(okta_event("user.session.start", result=result)), ACME)
    assert batch.events == [] and batch.ignored == {"failure": 1}


@pytest.mark.parametrize(("kind", "op"), [
    ("user.lifecycle.activate", "activate"), ("user.lifecycle.reactivate", "activate"),
    ("user.lifecycle.unsuspend", "activate"), ("user.lifecycle.deactivate", "deactivate"),
    ("user.lifecycle.suspend", "deactivate"), ("user.lifecycle.delete.initiated", "delete"),
    ("user.lifecycle.delete.completed", "delete")])
def test_a_lifecycle_event_changes_its_target_user_not_the_administrator(kind: str, op: str) -> None:
    [event] = map_hook(hook(okta_event(kind, actor=ADMIN, target=[BOB])), ACME).events
    assert event == {"type": "profile", "op": op, "id": "okta:4c6ed4b6-9b5e-11ec-8e60-d5f1a6bb2c2a",
                     "subscription": "acme", "provider": "okta", "user_id": "00u2bob",
                     "time": "2026-03-04T20:36:51.469Z"}


def test_a_created_user_is_an_upsert_with_its_identity() -> None:
    carol = {"id": "00u3carol", "type": "User", "alternateId": "carol@example.com", "displayName": "Carol"}
    [event] = map_hook(hook(okta_event("user.lifecycle.create", actor=ADMIN, target=[carol])), ACME).events
    assert event["op"] == "upsert" and event["user_id"] == "00u3carol"
    assert (event["username"], event["email"], event["name"]) == ("carol@example.com", "carol@example.com", "Carol")


def test_other_event_types_are_ignored_and_counted() -> None:
    batch = map_hook(hook(okta_event("user.account.update_password"), okta_event("group.user_membership.add"),
                          okta_event("user.session.end")), ACME)
    assert batch.events == [] and batch.ignored == {"other_type": 3}


def test_every_mapped_event_is_valid_by_the_codec() -> None:
    batch = map_hook(hook(okta_event("user.session.start", uuid="a"),
                          okta_event("user.lifecycle.create", uuid="b", actor=ADMIN, target=[BOB]),
                          okta_event("user.lifecycle.suspend", uuid="c", actor=ADMIN, target=[BOB])), ACME)
    assert len(batch.events) == 3 and not batch.unmapped
    assert all(not hasattr(validate(e), "reason") for e in batch.events)


def test_a_redelivered_event_maps_to_the_same_event_with_the_same_id() -> None:
    first = map_hook(hook(okta_event("user.session.start")), ACME).events
    assert map_hook(hook(okta_event("user.session.start")), ACME).events == first


def test_the_routes_runtime_and_provider_apply() -> None:
    [event] = map_hook(hook(okta_event("user.session.start")), Target("acme", "prod-eu", "okta-eu")).events
    assert (event["runtime"], event["provider"]) == ("prod-eu", "okta-eu")


def test_items_that_cannot_be_mapped_are_listed_and_the_rest_of_the_batch_is_kept() -> None:
    no_id = okta_event("user.session.start", uuid="")
    no_user_target = okta_event("user.lifecycle.deactivate", uuid="d", actor=ADMIN, target=[])
    long_login = okta_event("user.session.start", uuid="e",
                            actor={**BOB, "id": "x" * 300})
    batch = map_hook(hook(no_id, "not an event", no_user_target, long_login, okta_event("user.session.start")), ACME)
    assert len(batch.events) == 1
    assert [index for index, _ in batch.unmapped] == [0, 1, 2, 3]
    reasons = [item.reason for _, item in batch.unmapped]
    assert "no okta event id" in reasons[0] and "not str" in reasons[1]
    assert "no target of type User" in reasons[2] and "user_id" in reasons[3]


def test_a_sign_in_by_something_else_than_a_user_is_ignored() -> None:
    client = {"id": "0oa1svc", "type": "PublicClientApp", "alternateId": "svc"}
    assert map_hook(hook(okta_event("user.session.start", actor=client)), ACME).ignored == {"not_a_user": 1}


@pytest.mark.parametrize("body", [[], "hook", {"data": {}}, {"data": {"events": {}}}, {"events": []}])
def test_a_payload_without_a_data_events_list_is_malformed(body: Any) -> None:
    with pytest.raises(Malformed):
        map_hook(body, ACME)
