"""Operator input: config events (streams/cli/config_builder.py) and the CSV user-table import (streams/cli/user_import.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.codec import Rejection, validate
from schemas.events import ConfigEvent, LoginEvent, ProfileEvent
from streams.cli.config_builder import UNSET, InvalidInput, config_event
from streams.cli.user_import import header_column, import_users, import_users_text


# --- config events ---------------------------------------------------------------------------------

def test_full_config_event_is_normalized_and_valid() -> None:
    event = config_event("acme", domains=["@Example.COM", "*.Eu.Example.com", "example.com"],
                         capacity_internal="1500", capacity_external="unlimited", thresholds=[100, 80, 90, 80],
                         hysteresis=2, platform="ODC", runtimes={"prod": "11.14.0", "dev": {"version": None}})
    assert event == {
        "type": "config", "subscription": "acme", "platform": "odc",
        "domains": ["example.com", "*.eu.example.com"],
        "capacity": {"internal": 1500, "external": None},
        "thresholds": [80, 90, 100], "hysteresis": 2.0,
        "runtimes": {"prod": {"version": "11.14.0"}, "dev": {"version": None}},
    }
    assert isinstance(validate(event), ConfigEvent)


def test_only_given_keys_are_present() -> None:
    assert config_event("acme", capacity_external=0) == {
        "type": "config", "subscription": "acme", "capacity": {"external": 0}}
    assert config_event("acme", capacity_internal=None, capacity_external=UNSET) == {
        "type": "config", "subscription": "acme", "capacity": {"internal": None}}
    assert config_event("acme", domains=[]) == {"type": "config", "subscription": "acme", "domains": []}
    assert config_event("acme", capacity_internal="None")["capacity"] == {"internal": None}
    assert config_event("acme", domains="a.com, b.org")["domains"] == ["a.com", "b.org"]
    assert config_event("acme", shared_identifier_threshold=20) == {
        "type": "config", "subscription": "acme", "shared_identifier_threshold": 20}


@pytest.mark.parametrize("kwargs, message", [
    ({"domains": ["example"]}, "domains.0: 'example' is not a domain name"),
    ({"domains": ["a.com", "exa mple.com"]}, "domains.1: 'exa mple.com' is not a domain name"),
    ({"capacity_internal": "-1"}, "capacity.internal: must be at least 0"),
    ({"capacity_external": -5}, "capacity.external: must be at least 0"),
    ({"capacity_external": "lots"}, "capacity.external: must be an integer or null, not a string"),
    ({"thresholds": [80, 0]}, "thresholds.0: must be at least 1"),
    ({"thresholds": []}, "thresholds: must list at least one percentage"),
    ({"hysteresis": 101}, "hysteresis: must be at most 100"),
    ({"platform": "o12"}, "platform: 'o12' is not one of o11, odc"),
    ({"runtimes": {"prod": "latest"}}, "runtimes.prod.version"),
    ({"shared_identifier_threshold": 0}, "shared_identifier_threshold: must be at least 1"),
    ({"excluded_providers": ["ITUsers", " "]}, "excluded_providers.0: String should have at least 1 character"),
    ({"billing_day": 32}, "billing_day: must be at most 31"),
    ({"statement_grace": -1}, "statement_grace: must be at least 0"),
    ({"source_silence": 8761}, "source_silence: must be at most 8760"),
    ({}, "nothing to change"),
])
def test_invalid_config_is_refused_with_the_codecs_reason(kwargs: dict, message: str) -> None:
    """The builder validates through the codec, so the operator reads the reason the pipeline would give."""
    with pytest.raises(InvalidInput) as caught:
        config_event("acme", **kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_subscription_required() -> None:
    with pytest.raises(ValueError, match="subscription"):
        config_event("  ", platform="odc")


# --- CSV import ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, column", [
    ("UserId", "user_id"), ("user id", "user_id"), ("USER_ID", "user_id"), ("Is_Active", "active"),
    ("E-mail", "email"), ("Email Address", "email"), ("Logged In", "logged_in"), ("HasLoggedIn", "logged_in"),
    ("Default Tenant", "default_tenant"), ("User Provider", "provider"), ("Full Name", "name"),
    ("Username", "username"), ("favourite colour", None),
])
def test_header_spellings(header: str, column: str | None) -> None:
    assert header_column(header) == column


def test_import_rows_become_upserts_and_logins(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "\ufeffRuntime,Tenant,Default_Tenant,Provider,UserId,Username,Email,Phone,Name,Is_Active,Logged_In,Notes\n"
        "prod,,,,17,Ann,ann@example.com,+351 912,Ann A,true,yes,vip\n"
        "prod,t2,false,ldap,18,bob,,,,0,no,\n"
        "\n"
        ",,,,19,,,,,,,\n", encoding="utf-8")
    rows = list(import_users(path, "acme"))
    assert [line for line, _ in rows] == [2, 2, 3, 5]
    upsert, login, second, third = (event for _, event in rows)
    assert upsert == {"type": "profile", "op": "upsert", "subscription": "acme", "runtime": "prod",
                      "user_id": "17", "username": "Ann", "email": "ann@example.com", "phone": "+351 912",
                      "name": "Ann A", "active": True}
    assert login == {"type": "login", "subscription": "acme", "runtime": "prod", "user_id": "17"}
    assert second["tenant"] == "t2" and second["provider"] == "ldap" and second["default_tenant"] is False
    assert second["active"] is False and second["email"] is None  # empty cell: null (the export is the truth)
    assert third == {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "19",
                     "username": None, "email": None, "phone": None, "name": None}
    assert isinstance(validate(upsert), ProfileEvent) and isinstance(validate(login), LoginEvent)


def test_import_errors_name_line_and_field() -> None:
    text = ("user id;email;active;logged in\n"
            "1;a@example.com;yes;true\n"
            ";b@example.com;yes;\n"
            "3;c@example.com;perhaps;\n"
            "4;d@example.com;yes;sometimes\n"
            "5;" + "e" * 250 + "@example.com;yes;\n"
            "6;f@example.com;yes;no;extra\n"
            '"7";"g@example.com";"1";"0"\n')
    rows = list(import_users_text(text, "acme"))
    errors = {line: value for line, value in rows if isinstance(value, str)}
    assert errors == {
        3: "user_id: empty (required)",
        4: "active: 'perhaps' is not a boolean (true/false, yes/no, 1/0)",
        5: "logged_in: 'sometimes' is not a boolean (true/false, yes/no, 1/0)",
        6: "email: String should have at most 254 characters",
        7: "5 cells but the header has 4 (a delimiter inside an unquoted value?)",
    }
    good = [(line, value) for line, value in rows if not isinstance(value, str)]
    assert [(line, value["type"]) for line, value in good] == [(2, "profile"), (2, "login"), (8, "profile")]


def test_line_numbers_follow_multiline_cells() -> None:
    text = 'user_id,name\n1,"two\nlines"\n,x\n'
    rows = list(import_users_text(text, "acme"))
    assert rows[0] == (2, {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "1",
                           "name": "two\nlines"})
    assert rows[1] == (4, "user_id: empty (required)")


def test_header_problems() -> None:
    assert list(import_users_text("email,name\na@b.com,A\n", "acme")) == [
        (1, "header: no user_id column (found 'email', 'name'; recognised: subscription, runtime, tenant, "
            "default_tenant, provider, user_id, username, email, phone, name, active, logged_in, last_login)")]
    assert list(import_users_text("", "acme")) == [
        (1, "header: the file is empty (expected a header row with at least user_id)")]
    assert list(import_users_text("UserId,user_id\n1,1\n", "acme")) == [
        (1, "header: columns 'UserId' and 'user_id' both mean user_id")]
    assert list(import_users_text("user_id\n1\n")) == [(1, "header: no subscription column and no subscription given")]


def test_subscription_column() -> None:
    rows = list(import_users_text("Subscription,UserId\nacme,1\n,2\n", None))
    assert rows[0][1]["subscription"] == "acme"  # type: ignore[index]
    assert rows[1] == (3, "subscription: empty (and no subscription given)")


def test_tenant_column_needs_a_default_tenant() -> None:
    """Without it every tenant would be a default one and users would be deduplicated across tenants."""
    rows = list(import_users_text("tenant,user_id\nt1,1\nt2,2\n", "acme"))
    assert rows == [(1, "header: a tenant column needs a default_tenant column or --default-tenant NAME "
                        "(otherwise every tenant counts as a default one and users are deduplicated across tenants)")]


def test_default_tenant_option_marks_only_that_tenant() -> None:
    text = "tenant,default_tenant,user_id\nmain,,1\nother,,2\nother,true,3\n,,4\n"
    rows = list(import_users_text(text, "acme", default_tenant="main"))
    flags = {event["user_id"]: event["default_tenant"] for _, event in rows if not isinstance(event, str)}
    assert flags == {"1": True, "2": False, "3": True, "4": False}  # a non-empty cell wins over the option
    without_column = list(import_users_text("tenant,user_id\nmain,1\nother,2\n", "acme", default_tenant="main"))
    assert [event["default_tenant"] for _, event in without_column] == [True, False]  # type: ignore[index]


@pytest.mark.parametrize(("cell", "logged_in"), [
    ("2026-11-02 10:31:00", True), ("02/11/2026", True), ("", False), ("1900-01-01 00:00:00", False),
    ("1900-01-01", False), ("never", False), ("NULL", False),
])
def test_last_login_column_means_logged_in(cell: str, logged_in: bool) -> None:
    """O11 exports a Last_Login date; its NullDate (1900-01-01) means never."""
    rows = list(import_users_text(f"UserId,Last_Login\n1,{cell}\n", "acme"))
    assert [event["type"] for _, event in rows] == (["profile", "login"] if logged_in else ["profile"])  # type: ignore[index]


def test_logged_in_cell_wins_over_last_login() -> None:
    rows = list(import_users_text("user_id,logged_in,last_login\n1,no,2026-11-02\n", "acme"))
    assert [event["type"] for _, event in rows] == ["profile"]  # type: ignore[index]


def test_config_set_reports_the_codecs_reason_as_a_usage_error() -> None:
    from click.testing import CliRunner

    from streams.cli.commands import main

    result = CliRunner().invoke(main, ["config", "set", "acme", "--domains", "example.com,localhost", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "domains.1: 'localhost' is not a domain name" in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_config_set_refuses_a_non_finite_hysteresis(value: str) -> None:
    """JSON has no NaN: encoded, it became null, which reset the hysteresis to its default."""
    from click.testing import CliRunner

    from streams.cli.commands import main

    result = CliRunner().invoke(main, ["config", "set", "acme", f"--hysteresis={value}", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "hysteresis: must be a finite number" in result.output
    with pytest.raises(InvalidInput, match=r"runtimes\.prod\.version: must be a finite number"):
        config_event("acme", runtimes={"prod": {"version": float("nan")}})


def test_the_codec_refuses_non_finite_numbers_in_a_config() -> None:
    from schemas.codec import decode

    for text in (b"NaN", b"Infinity", b"1e999"):
        assert isinstance(decode(b'{"type":"config","subscription":"acme","hysteresis":' + text + b"}"), Rejection)
    for number in (float("nan"), float("inf")):
        assert isinstance(validate({"type": "config", "subscription": "acme", "hysteresis": number}), Rejection)


@pytest.mark.parametrize("header", ["Licensee", "SubscriptionId", "subscription"])
def test_with_subscription_given_a_row_naming_another_is_a_bad_row(header: str) -> None:
    """A file meant for acme must not deactivate globex's users, whatever the column is called."""
    rows = list(import_users_text(f"{header},user_id,active\nglobex,1,no\nacme,2,no\n,3,no\n", "acme"))
    assert rows[0] == (2, "subscription: 'globex' is not 'acme', the subscription this import writes")
    assert [(line, event["subscription"]) for line, event in rows[1:]] == [(3, "acme"), (4, "acme")]  # type: ignore[index]


def test_import_summary_names_every_subscription_written(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streams.cli.commands import main

    path = tmp_path / "users.csv"
    path.write_text("Licensee,user_id\nglobex,1\nacme,2\n")
    result = CliRunner().invoke(main, ["import-users", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 event(s) from" in result.output and "for subscription(s) acme, globex; 0 row(s) rejected" in result.output
    result = CliRunner().invoke(main, ["import-users", str(path), "--subscription", "acme", "--dry-run"])
    assert result.exit_code == 1
    assert f"{path}:2: subscription: 'globex' is not 'acme'" in result.output
    assert "for subscription(s) acme; 1 row(s) rejected" in result.output
