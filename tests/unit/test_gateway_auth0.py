"""Auth0 log stream batches mapped to our events: items shaped as Auth0's custom webhook delivers them
(``{"log_id", "data": {"date", "type", "user_id", "user_name", ...}}``, codes from Auth0's list of log
event type codes), in each content format."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.codec import validate
from streams.gateway.auth0 import LOGINS, map_stream
from streams.gateway.mapping import Malformed, Target

ACME = Target("acme", provider="auth0")


def log(code: str, log_id: str = "90020261201235543477000000000000001223372037485175998376",
        user_id: str | None = "auth0|61a7d5b1c2", user_name: str | None = "ann.lee@example.com",
        **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "date": "2026-12-01T23:55:40.184Z", "type": code, "description": "", "connection":
        "Username-Password-Authentication", "connection_id": "con_9kl2", "client_id": "AaiyAPdpYdesoKnqjj8HJqRn4T5titww",
        "client_name": "My App", "ip": "198.51.100.7", "user_agent": "Chrome 96.0.4664 / Mac OS X 10.15.7",
        "details": {}, "hostname": "acme.eu.auth0.com", "strategy": "auth0", "strategy_type": "database",
        "log_id": log_id, **extra}
    if user_id is not None:
        data["user_id"] = user_id
    if user_name is not None:
        data["user_name"] = user_name
    return {"log_id": log_id, "data": data}


def array(*items: Any) -> bytes:
    return orjson.dumps(list(items))


def lines(*items: Any) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items) + b"\n"


@pytest.mark.parametrize("code", sorted(LOGINS))
def test_an_end_users_successful_login_or_token_exchange_is_a_login(code: str) -> None:
    batch = map_stream(array(log(code)), ACME)
    assert batch.events == [{
        "type": "login", "id": "auth0:90020261201235543477000000000000001223372037485175998376",
        "subscription": "acme", "provider": "auth0", "user_id": "auth0|61a7d5b1c2",
        "username": "ann.lee@example.com", "email": "ann.lee@example.com", "time": "2026-12-01T23:55:40.184Z"}]


def test_the_documented_login_codes_include_s_and_ssa_but_never_client_credentials() -> None:
    assert {"s", "ssa", "seacft", "sertft"} <= LOGINS and "seccft" not in LOGINS


def test_a_client_credentials_exchange_is_a_machine_and_ignored() -> None:
    machine = log("seccft", user_id=None, user_name=None, client_name="billing-service")
    batch = map_stream(array(machine), ACME)
    assert batch.events == [] and batch.ignored == {"machine": 1}


def test_a_signup_is_an_upsert_and_a_user_deletion_a_delete() -> None:
    signup = log("ss", log_id="a", user_name="bob", details={"body": {"email": "bob@example.com"}})
    deletion = log("sdu", log_id="b", user_name=None)
    upsert, delete = map_stream(array(signup, deletion), ACME).events
    assert upsert == {"type": "profile", "op": "upsert", "id": "auth0:a", "subscription": "acme", "provider": "auth0",
                      "user_id": "auth0|61a7d5b1c2", "username": "bob", "email": "bob@example.com",
                      "time": "2026-12-01T23:55:40.184Z"}
    assert delete == {"type": "profile", "op": "delete", "id": "auth0:b", "subscription": "acme", "provider": "auth0",
                      "user_id": "auth0|61a7d5b1c2", "time": "2026-12-01T23:55:40.184Z"}


@pytest.mark.parametrize("code", ["f", "fp", "fu", "fsa", "feacft", "feccft", "fs", "fdu", "ciba_exchange_failed"])
def test_failures_are_ignored_and_counted(code: str) -> None:
    assert map_stream(array(log(code)), ACME).ignored == {"failure": 1}


@pytest.mark.parametrize("code", ["slo", "scp", "sv", "mfar", "gd_send_sms", "limit_wc", "something_new"])
def test_other_and_unknown_codes_are_ignored_and_counted(code: str) -> None:
    batch = map_stream(array(log(code)), ACME)
    assert batch.events == [] and batch.ignored == {"other_type": 1}


def test_json_lines_and_a_single_object_are_read_as_json_arrays_are() -> None:
    expected = map_stream(array(log("s", log_id="1"), log("ssa", log_id="2")), ACME).events
    assert map_stream(lines(log("s", log_id="1"), log("ssa", log_id="2")), ACME).events == expected
    assert map_stream(orjson.dumps(log("s", log_id="1")), ACME).events == expected[:1]


def test_a_redelivered_batch_maps_to_the_same_events_and_duplicates_keep_their_id() -> None:
    body = array(log("s"), log("s"))
    first, second = map_stream(body, ACME).events
    assert first == second and map_stream(body, ACME).events == [first, second]


def test_every_mapped_event_is_valid_by_the_codec() -> None:
    events = map_stream(array(log("s", log_id="1"), log("ss", log_id="2"), log("sdu", log_id="3")), ACME).events
    assert len(events) == 3 and all(not hasattr(validate(e), "reason") for e in events)


def test_items_that_cannot_be_mapped_are_listed_and_the_rest_of_the_batch_is_kept() -> None:
    body = lines(log("s", log_id="1"), {"log_id": "2"}, log("s", log_id="3", user_id=None), log("s", log_id=""),
                 log("s", log_id="5")) + b"{not json\n"
    batch = map_stream(body, ACME)
    assert [e["id"] for e in batch.events] == ["auth0:1", "auth0:5"]
    assert [index for index, _ in batch.unmapped] == [1, 2, 3, 5]
    reasons = [item.reason for _, item in batch.unmapped]
    assert "data object" in reasons[0] and "data.user_id" in reasons[1] and "event id" in reasons[2]
    assert reasons[3].startswith("line 6: not JSON")


@pytest.mark.parametrize("body", [b"", b"not json", b"42", b"\"s\"", b"{bad\n{worse\n"])
def test_a_body_that_holds_no_json_items_is_malformed(body: bytes) -> None:
    with pytest.raises(Malformed):
        map_stream(body, ACME)
