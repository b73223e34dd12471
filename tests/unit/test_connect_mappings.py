"""The identity sources' mappings (streams/connect): Keycloak's representations and Entra ID's log
records, from the vendors' documented shapes, become valid events of the contract with bounded,
deterministic ids; failures, machines and other types become reasons, never events."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from schemas.codec import Rejection, validate
from streams.connect import entra_events, keycloak_events
from streams.connect.common import Scope, event_id
from streams.connect.cursor import WINDOW_MS, Cursor
from streams.connect.keycloak import config_warnings

KEYCLOAK = Scope("acme", "keycloak", "prod")
ENTRA = Scope("acme", "entra")


def _valid(events: Any) -> list[dict[str, Any]]:
    assert isinstance(events, list), events
    for event in events:
        assert not isinstance(validate(event), Rejection), (event, validate(event))
    return events


LOGIN = {"id": "25b081f2-2c92-482a-8059-cb83e27dcdca", "time": 1796588556544, "type": "LOGIN",
         "realmId": "a25398ff", "clientId": "app", "userId": "2878d60a-6550-490f-aeb0-be075e8aa4f5",
         "sessionId": "OfqX", "ipAddress": "127.0.0.1",
         "details": {"auth_method": "openid-connect", "grant_type": "password", "username": "ann"}}


def test_a_keycloak_login_is_a_login_with_the_known_email_and_the_event_s_id() -> None:
    [login] = _valid(keycloak_events.user_event(LOGIN, KEYCLOAK, "acme-sso", {LOGIN["userId"]: "ann@example.com"}))
    assert login == {"type": "login", "id": "keycloak:acme-sso:25b081f2-2c92-482a-8059-cb83e27dcdca",
                     "time": "2026-12-06T20:22:36.544Z", "subscription": "acme", "runtime": "prod",
                     "provider": "keycloak", "user_id": LOGIN["userId"], "username": "ann", "email": "ann@example.com"}


def test_a_keycloak_event_without_an_id_gets_one_from_its_time_and_content() -> None:
    event = {k: v for k, v in LOGIN.items() if k != "id"}
    first = _valid(keycloak_events.user_event(event, KEYCLOAK, "r", {}))[0]["id"]
    assert first == _valid(keycloak_events.user_event(copy.deepcopy(event), KEYCLOAK, "r", {}))[0]["id"]
    assert first.startswith("keycloak:r:1796588556544+")
    assert "email" not in keycloak_events.user_event(event, KEYCLOAK, "r", {})[0]  # unknown: kept as it is


@pytest.mark.parametrize("event", [{**LOGIN, "type": "LOGIN_ERROR"}, {**LOGIN, "type": "LOGOUT"},
                                   {**LOGIN, "userId": None}, {**LOGIN, "time": "yesterday"}])
def test_keycloak_errors_other_types_and_incomplete_events_map_to_a_reason(event: dict[str, Any]) -> None:
    assert isinstance(keycloak_events.user_event(event, KEYCLOAK, "r", {}), str)


def _admin(operation: str, representation: dict[str, Any] | None, path: str = "users/u-1",
           resource: str = "USER") -> dict[str, Any]:
    return {"id": f"adm-{operation}", "time": 1796588555991, "realmId": "a253", "operationType": operation,
            "resourceType": resource, "resourcePath": path,
            **({"representation": orjson.dumps(representation).decode()} if representation is not None else {})}


def test_keycloak_admin_events_on_users_are_upserts_activations_and_deletes() -> None:
    created = _valid(keycloak_events.admin_event(_admin("CREATE", {"username": "ann", "email": "ann@example.com",
                                                                   "enabled": True}), KEYCLOAK, "r"))
    assert [(e["op"], e["id"]) for e in created] == [("upsert", "keycloak:r:adm-CREATE"),
                                                    ("activate", "keycloak:r:adm-CREATE:activate")]
    assert created[0]["email"] == "ann@example.com" and created[0]["user_id"] == "u-1"
    disabled = _valid(keycloak_events.admin_event(_admin("UPDATE", {"enabled": False}), KEYCLOAK, "r"))
    assert [e["op"] for e in disabled] == ["upsert", "deactivate"]
    assert [e["op"] for e in _valid(keycloak_events.admin_event(_admin("DELETE", None), KEYCLOAK, "r"))] == ["delete"]


@pytest.mark.parametrize("event", [_admin("UPDATE", None), _admin("ACTION", {}, "users/u-1/reset-password"),
                                   _admin("CREATE", {}, "users/u-1/role-mappings/realm", "REALM_ROLE_MAPPING"),
                                   _admin("CREATE", {"clientId": "x"}, "clients/c-1", "CLIENT")])
def test_keycloak_admin_events_on_anything_but_a_user_or_without_representation_map_to_a_reason(
        event: dict[str, Any]) -> None:
    assert isinstance(keycloak_events.admin_event(event, KEYCLOAK, "r"), str)


def test_keycloak_users_listed_are_upserts_with_their_state_and_service_accounts_are_machines() -> None:
    user = {"id": "u-9", "username": "zoe", "email": "zoe@example.com", "enabled": False}
    [upsert] = _valid(keycloak_events.user_upsert(user, KEYCLOAK, "r", 1796588556544))
    assert upsert["active"] is False and upsert["id"] == "keycloak:r:user:u-9"
    machine = {"id": "u-8", "username": "service-account-app", "enabled": True}
    assert isinstance(keycloak_events.user_upsert(machine, KEYCLOAK, "r", 0), str)


def test_keycloak_realm_settings_that_hide_events_are_explained_with_the_fix() -> None:
    assert config_warnings({"eventsEnabled": True, "adminEventsEnabled": True, "adminEventsDetailsEnabled": True},
                           "r") == []
    warnings = config_warnings({"eventsEnabled": True, "enabledEventTypes": ["LOGOUT"], "adminEventsEnabled": True},
                               "r")
    assert len(warnings) == 2 and "LOGIN" in warnings[0] and "Include representation" in warnings[1]


def test_the_cursor_skips_what_it_took_and_reaches_back_a_window_for_late_events() -> None:
    cursor = Cursor()
    assert cursor.start == 0 and cursor.is_new("a", 1_000)
    cursor.take("a", 100_000)
    cursor.take("b", 100_000)
    assert not cursor.is_new("a", 100_000) and cursor.is_new("c", 100_000)
    assert cursor.start == 100_000 - WINDOW_MS and cursor.is_new("late", 100_000 - 1)
    cursor.take("d", 100_000 + WINDOW_MS + 1)
    assert set(cursor.seen) == {"d"} and not cursor.is_new("old", 100_000)
    assert Cursor.from_json(orjson.loads(orjson.dumps(cursor.to_json()))) == cursor
    assert Cursor.from_json("garbage") == Cursor()


def test_ids_are_bounded_and_deterministic() -> None:
    long = event_id("entra", "x" * 1000)
    assert len(long) == 256 and long == event_id("entra", "x" * 1000) and long != event_id("entra", "x" * 999)


# Entra ID records as Azure Monitor streams them (Microsoft's "sign-in logs schema" and "audit logs
# schema" examples; ids shortened).

SIGN_IN = {
    "time": "2019-03-12T16:02:15.5522137Z", "resourceId": "/tenants/t-1/providers/Microsoft.aadiam",
    "operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs", "tenantId": "t-1",
    "resultType": "0", "resultSignature": "None", "durationMs": 0, "callerIpAddress": "131.107.0.1",
    "correlationId": "c-1", "identity": "Timothy Perkins", "Level": 4, "location": "US",
    "properties": {"id": "566d2a2b-b0f2-4a1c-9aa1-43cf3e9b1a00", "createdDateTime": "2019-03-12T16:02:15.5522137+00:00",
                   "userDisplayName": "Timothy Perkins", "userPrincipalName": "tim@contoso.com",
                   "userId": "1f3a2b4c-0000-4000-8000-000000000001", "appId": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
                   "appDisplayName": "Azure Portal", "ipAddress": "131.107.0.1", "status": {"errorCode": 0},
                   "clientAppUsed": "Browser", "isInteractive": True, "userType": "Member"}}


def _sign_in(category: str = "SignInLogs", **properties: Any) -> dict[str, Any]:
    return {**SIGN_IN, "category": category, "properties": {**SIGN_IN["properties"], **properties}}


def test_a_successful_entra_sign_in_is_a_login_named_by_its_id() -> None:
    for category in ("SignInLogs", "NonInteractiveUserSignInLogs"):
        [login] = _valid(entra_events.record(_sign_in(category), ENTRA))
        assert login == {"type": "login", "id": "entra:566d2a2b-b0f2-4a1c-9aa1-43cf3e9b1a00",
                         "time": "2019-03-12T16:02:15.5522137+00:00", "subscription": "acme", "runtime": "default",
                         "provider": "entra", "user_id": "1f3a2b4c-0000-4000-8000-000000000001",
                         "username": "tim@contoso.com", "email": "tim@contoso.com"}


@pytest.mark.parametrize("item", [
    _sign_in(status={"errorCode": 50140, "failureReason": "Keep me signed in interrupt"}),
    _sign_in("ServicePrincipalSignInLogs"), _sign_in("ManagedIdentitySignInLogs"),
    _sign_in(signInEventTypes=["servicePrincipal"]), _sign_in(userId=None), _sign_in("ProvisioningLogs"),
    {"category": "SignInLogs"}, "not a record"])
def test_entra_failures_machines_and_other_categories_map_to_a_reason(item: Any) -> None:
    assert isinstance(entra_events.record(item, ENTRA), str)


def _audit(activity: str, result: str = "success", **target: Any) -> dict[str, Any]:
    return {"time": "2019-03-12T16:02:15.5522137Z", "resourceId": "/tenants/t-1/providers/Microsoft.aadiam",
            "operationName": activity, "operationVersion": "1.0", "category": "AuditLogs", "tenantId": "t-1",
            "resultSignature": "None", "durationMs": 0, "correlationId": "c-2", "Level": 4,
            "properties": {"id": f"Directory_{activity.replace(' ', '_')}", "category": "UserManagement",
                           "correlationId": "c-2", "result": result, "resultReason": "",
                           "activityDisplayName": activity, "activityDateTime": "2019-03-12T16:02:15.5522137+00:00",
                           "loggedByService": "Core Directory", "operationType": "Add",
                           "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}},
                           "targetResources": [{"id": "2b2c-user", "displayName": None, "type": "User",
                                                "userPrincipalName": "new.user@contoso.com", **target}],
                           "additionalDetails": []}}


@pytest.mark.parametrize("activity, op", [("Add user", "upsert"), ("Delete user", "delete"),
                                          ("Hard delete user", "delete"), ("Disable account", "deactivate")])
def test_entra_user_additions_deletions_and_disabling_are_profile_events(activity: str, op: str) -> None:
    [event] = _valid(entra_events.record(_audit(activity), ENTRA))
    assert (event["type"], event["op"], event["user_id"], event["id"]) == (
        "profile", op, "2b2c-user", f"entra:Directory_{activity.replace(' ', '_')}")
    assert ("email" in event) == (op == "upsert")


def test_an_entra_user_update_that_turns_the_account_off_is_a_deactivate() -> None:
    changed = [{"displayName": "AccountEnabled", "oldValue": "[true]", "newValue": "[false]"}]
    [event] = _valid(entra_events.record(_audit("Update user", modifiedProperties=changed), ENTRA))
    assert event["op"] == "deactivate"
    assert isinstance(entra_events.record(_audit("Update user", modifiedProperties=[]), ENTRA), str)
    assert isinstance(entra_events.record(_audit("Add user", result="failure"), ENTRA), str)
    assert isinstance(entra_events.record(_audit("Add member to group"), ENTRA), str)


def test_an_event_hubs_message_is_a_records_batch_or_a_reason() -> None:
    assert entra_events.records(orjson.dumps({"records": [SIGN_IN]})) == [SIGN_IN]
    assert "not JSON" in str(entra_events.records(b"{"))
    assert "records" in str(entra_events.records(b"[1]"))


def test_an_event_hubs_connection_string_signs_in_with_sasl_plain_over_tls_as_documented() -> None:
    from streams.connect.entra import source_options
    from streams.settings import WorkerSettings

    secret = ("Endpoint=sb://contoso-logs.servicebus.windows.net/;SharedAccessKeyName=listen;"
              "SharedAccessKey=abc=")
    options = source_options(WorkerSettings.from_environment({"ENDUSERS_EVENTHUBS_CONNECTION_STRING": secret}), None)
    assert (options["bootstrap_servers"], options["security_protocol"], options["sasl_mechanism"],
            options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "contoso-logs.servicebus.windows.net:9093", "SASL_SSL", "PLAIN", "$ConnectionString", secret)
    assert options["ssl_context"] is not None
    plain = source_options(WorkerSettings.from_environment({}), "kafka://hub.local:9092")
    assert plain == {"bootstrap_servers": "hub.local:9092", "security_protocol": "PLAINTEXT"}
    own = source_options(WorkerSettings.from_environment({"ENDUSERS_KAFKA": "kafka://a:1;b:2"}), None)
    assert own["bootstrap_servers"] == "a:1,b:2"
