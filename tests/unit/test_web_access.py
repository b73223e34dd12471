"""HTTP access (streams/http/auth.py): tokens, roles and scopes, the Host allow-list, security headers, and
only the documented routes; against the in-memory reader."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from streams.http import auth
from streams.http.auth import Access, TokenFile, create_token, default_allowed_hosts, request_host
from streams.cli.commands import main
from streams.http.views import ROUTES, create_web_app, install_views
from tests.unit.fake_counts import FakeReader, sample_reader
from tests.unit.test_web_views import read_events, ready


class Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.viewer_acme = create_token(path, "viewer", frozenset({"acme"}))
        self.viewer_all = create_token(path, "viewer", None)
        self.admin_globex = create_token(path, "admin", frozenset({"globex"}))
        self.admin_all = create_token(path, "admin", None)


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path / "tokens")


@pytest.fixture
async def secured(tokens: Tokens) -> AsyncIterator[tuple[Any, FakeReader]]:
    reader = sample_reader()
    reader.audits["acme"] = [{"subscription": "acme", "actor": "alice", "changed": ["capacity"]}]
    app = create_web_app(reader, ready(kafka=True, redis=True), interval=0.05, access=Access(TokenFile(tokens.path)))
    async with TestClient(TestServer(app)) as client:
        yield client, reader


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_token_file_holds_only_hashes_and_is_private(tokens: Tokens) -> None:
    text = tokens.path.read_text()
    assert tokens.viewer_acme not in text
    assert f"{hashlib.sha256(tokens.viewer_acme.encode()).hexdigest()} viewer acme\n" in text
    assert f"{hashlib.sha256(tokens.admin_all.encode()).hexdigest()} admin *\n" in text
    assert stat.S_IMODE(os.stat(tokens.path).st_mode) == 0o600


def test_bad_token_lines_are_skipped_and_never_widen_access(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    digest = hashlib.sha256(b"t").hexdigest()
    path.write_text(f"# comment\n\n{digest} root *\n{digest}\nnot-a-hash viewer *\n{digest} viewer acme\n")
    with caplog.at_level(logging.WARNING):
        assert TokenFile(path).lookup("t") == auth.Grant("viewer", frozenset({"acme"}))
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 3
    assert TokenFile(tmp_path / "missing").lookup("t") is None


@pytest.mark.parametrize("path", ["/api/v1/subscriptions", "/api/v1/subscriptions/acme", "/api/v1/stream",
                                  "/metrics", "/openapi.json", "/api/v1/subscriptions/acme/audit",
                                  "/api/v1/subscriptions/acme/domains"])
async def test_data_paths_need_a_valid_token(secured: tuple[Any, FakeReader], path: str) -> None:
    client, _ = secured
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic abc"}):
        response = await client.get(path, headers=headers)
        assert response.status == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in (await response.json())["error"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/", "/static/dashboard.js"])
async def test_probes_and_the_dashboard_shell_need_no_token(secured: tuple[Any, FakeReader], path: str) -> None:
    client, _ = secured
    assert (await client.get(path)).status == 200


async def test_a_viewer_sees_only_its_scope_without_domains_or_runtimes(secured: tuple[Any, FakeReader],
                                                                        tokens: Tokens) -> None:
    client, _ = secured
    headers = bearer(tokens.viewer_acme)
    assert await (await client.get("/api/v1/subscriptions", headers=headers)).json() == {"subscriptions": ["acme"]}
    body = await (await client.get("/api/v1/subscriptions/acme", headers=headers)).json()
    assert body["internal"] == 1234
    assert set(body["settings"]) == {"platform", "capacity", "thresholds", "hysteresis"}
    for other in ("globex", "unknown"):  # 403 whether or not it exists: the scope does not leak names
        response = await client.get(f"/api/v1/subscriptions/{other}", headers=headers)
        assert response.status == 403
        assert "scope" in (await response.json())["error"]


async def test_an_admin_sees_the_settings_and_the_audit_of_its_scope(secured: tuple[Any, FakeReader],
                                                                    tokens: Tokens) -> None:
    client, _ = secured
    body = await (await client.get("/api/v1/subscriptions/acme", headers=bearer(tokens.admin_all))).json()
    assert body["settings"]["domains"] == ["example.com"] and "runtimes" in body["settings"]
    audit = await client.get("/api/v1/subscriptions/acme/audit", headers=bearer(tokens.admin_all))
    assert audit.status == 200
    assert (await audit.json())["changes"][0]["actor"] == "alice"
    assert (await client.get("/api/v1/subscriptions/acme/audit", headers=bearer(tokens.viewer_all))).status == 403
    assert (await client.get("/api/v1/subscriptions/acme/audit", headers=bearer(tokens.admin_globex))).status == 403
    assert (await client.get("/api/v1/subscriptions/acme", headers=bearer(tokens.admin_globex))).status == 403


async def test_metrics_need_a_token_whose_scope_is_everything(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, _ = secured
    assert (await client.get("/metrics", headers=bearer(tokens.viewer_all))).status == 200
    assert (await client.get("/metrics", headers=bearer(tokens.viewer_acme))).status == 403
    assert (await client.get("/metrics", headers=bearer(tokens.admin_globex))).status == 403


async def test_the_stream_carries_only_the_tokens_subscriptions(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, reader = secured
    response = await client.get("/api/v1/stream", headers=bearer(tokens.viewer_acme))
    assert response.status == 200
    (_, first), = await read_events(response, 1)
    reader.data["globex"] = {**reader.data["globex"], "internal": 43}  # outside the scope: not sent
    reader.settings_by["acme"] = {**reader.settings_by["acme"], "domains": ["new.example"]}
    (_, second), = await read_events(response, 1)
    for message in (first, second):
        assert set(message["subscriptions"]) == {"acme"}
        assert "domains" not in message["subscriptions"]["acme"]["settings"]
        assert "external_domains" not in message["subscriptions"]["acme"]
    assert first["subscriptions"]["acme"]["settings"]["capacity"] == {"internal": 1500, "external": 50}
    response.close()
    response = await client.get("/api/v1/stream", headers=bearer(tokens.admin_all))
    ((_, full),) = await read_events(response, 1)
    assert set(full["subscriptions"]) == {"acme", "globex"}
    assert full["subscriptions"]["acme"]["settings"]["domains"] == ["new.example"]
    response.close()


async def test_a_token_created_while_serving_works_at_once(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, _ = secured
    late = create_token(tokens.path, "viewer", frozenset({"globex"}))
    assert await (await client.get("/api/v1/subscriptions", headers=bearer(late))).json() == {"subscriptions": ["globex"]}


async def test_every_response_carries_the_security_headers_and_no_version(secured: tuple[Any, FakeReader],
                                                                          tokens: Tokens) -> None:
    client, _ = secured
    responses = [await client.get("/"), await client.get("/api/v1/subscriptions"),
                 await client.get("/api/v1/subscriptions/globex", headers=bearer(tokens.viewer_acme)),
                 await client.get("/static/nope.js"), await client.get("/no/such/path"),
                 await client.get("/api/v1/stream", headers=bearer(tokens.viewer_acme))]
    for response in responses:
        for name, value in auth.SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
        assert response.headers["Server"] == "endusers"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    responses[-1].close()


async def test_a_host_not_on_the_allow_list_is_refused(secured: tuple[Any, FakeReader]) -> None:
    client, _ = secured
    for path in ("/", "/api/v1/subscriptions", "/static/dashboard.js"):
        assert (await client.get(path, headers={"Host": "attacker.example:6066"})).status == 421, path
    for host in ("localhost:6066", "127.0.0.1", "[::1]:6066"):
        assert (await client.get("/", headers={"Host": host})).status == 200, host
    for path in ("/healthz", "/readyz"):  # probes come by address (a kubelet sends the pod IP as Host)
        assert (await client.get(path, headers={"Host": "10.1.2.3:6066"})).status == 200, path


def test_allowed_hosts_default_to_the_bind_address_and_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_allowed_hosts("10.1.2.3") == {"10.1.2.3", "localhost", "127.0.0.1", "::1"}
    wildcard = default_allowed_hosts("0.0.0.0")
    assert socket.gethostname().lower() in wildcard
    assert {str(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None)} <= wildcard
    assert request_host("Example.COM:6066") == "example.com" and request_host("[::1]:80") == "::1"
    # the names listed add to the defaults: a proxy's name does not lock out the pod's IP or localhost
    listed = Access.configured("0.0.0.0", allowed_hosts=" counts.example.com, 10.1.2.3")  # ENDUSERS_WEB_ALLOWED_HOSTS
    assert listed.allowed_hosts == wildcard | {"counts.example.com", "10.1.2.3"}
    assert Access.configured("0.0.0.0", allowed_hosts="*").allowed_hosts is None


def test_without_tokens_a_warning_is_logged_once_unless_bound_to_loopback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.http.auth"):
        for host in ("127.0.0.1", "localhost", "::1"):
            assert Access.configured(host).tokens is None
        assert not caplog.records
        Access.configured("0.0.0.0")
    (record,) = caplog.records
    assert "ENDUSERS_API_TOKENS_FILE" in record.getMessage() and "0.0.0.0" in record.getMessage()


async def test_without_a_token_file_everything_is_served_as_before() -> None:
    app = create_web_app(sample_reader(), ready(ok=True), access=Access())
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/api/v1/subscriptions/acme")).json()
        assert body["settings"]["domains"] == ["example.com"]
        assert (await client.get("/metrics")).status == 200


async def test_only_the_documented_routes_exist_on_a_worker(tokens: Tokens) -> None:
    app = faust.App("endusers-routes-test", broker="memory://", store="memory://", web_enabled=True)
    install_views(app, FakeReader(), ready(ok=True), access=Access(TokenFile(tokens.path)))
    app.web.init_server()  # applies Faust's blueprints, as the worker does at start
    web_app = app.web.web_app
    assert isinstance(web_app, web.Application)
    served = {route.resource.canonical for route in web_app.router.routes() if route.resource is not None}
    assert served == set(ROUTES)
    page = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text()
    documented = set(re.findall(r"`(?:GET|POST) (/[^`\s]*)`", page.split("\n## Routes\n", 1)[1].split("\n## ", 1)[0]))
    assert documented == set(ROUTES) - {"/static/{file}"}  # the dashboard's assets are not an interface
    async with TestClient(TestServer(web_app)) as client:
        for path in ("/router/", "/table/", "/stats/"):
            assert (await client.get(path, headers=bearer(tokens.admin_all))).status == 404, path


def test_token_create_prints_the_token_once_and_appends_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    result = CliRunner().invoke(main, ["token", "create", "--role", "viewer", "--scope", "acme", "--file", str(path)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert TokenFile(path).lookup(token) == auth.Grant("viewer", frozenset({"acme"}))
    assert token not in path.read_text()
    refused = CliRunner().invoke(main, ["token", "create", "--role", "root", "--scope", "*", "--file", str(path)])
    assert refused.exit_code != 0


def test_a_missing_token_file_accepts_no_token_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    tokens = TokenFile(path)
    with caplog.at_level(logging.WARNING, logger="streams.http.auth"):
        for _ in range(3):
            assert tokens.lookup("anything") is None
    assert len(caplog.records) == 1
    token = create_token(path, "admin", None)
    assert tokens.lookup(token) == auth.Grant("admin", None)


async def test_external_domains_are_for_admins_only(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, reader = secured
    reader.data["acme"]["external_domains"] = {"top": [["partner.io", 3]], "other_domains": 0,
                                               "other_individuals": 0}
    path = "/api/v1/subscriptions/acme/domains"
    assert (await client.get(path, headers=bearer(tokens.viewer_acme))).status == 403
    assert (await client.get(path, headers=bearer(tokens.admin_globex))).status == 403
    assert (await (await client.get(path, headers=bearer(tokens.admin_all))).json())["domains"] == [
        {"domain": "partner.io", "external": 3}]
    viewer = await (await client.get("/api/v1/subscriptions/acme", headers=bearer(tokens.viewer_acme))).json()
    assert "external_domains" not in viewer and viewer["external"] == 56
    admin = await (await client.get("/api/v1/subscriptions/acme", headers=bearer(tokens.admin_all))).json()
    assert admin["external_domains"]["top"] == [["partner.io", 3]]
    assert "external_domains" not in auth.stream_view(auth.Grant("viewer", None),
                                                      {"subscriptions": {"acme": reader.data["acme"]}})["subscriptions"]["acme"]


async def test_a_preview_is_for_admins_only(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, _ = secured
    path = "/api/v1/subscriptions/acme/preview"
    assert (await client.post(path, json={"domains": []})).status == 401
    assert (await client.post(path, json={"domains": []}, headers=bearer(tokens.viewer_acme))).status == 403
    assert (await client.post(path, json={"domains": []}, headers=bearer(tokens.admin_globex))).status == 403
    assert (await client.post(path, json={"domains": []}, headers=bearer(tokens.admin_all))).status == 404  # no state


async def test_explaining_a_person_is_for_admins_only(secured: tuple[Any, FakeReader], tokens: Tokens) -> None:
    client, _ = secured
    path = "/api/v1/subscriptions/acme/explain"
    assert (await client.post(path, json={"email": "a@example.com"})).status == 401
    assert (await client.post(path, json={"email": "a@example.com"}, headers=bearer(tokens.viewer_all))).status == 403
    assert (await client.post(path, json={"email": "a@example.com"}, headers=bearer(tokens.admin_all))).status == 404


async def test_readyz_names_subscriptions_only_to_a_token_of_every_scope(tokens: Tokens) -> None:
    """Up or down and the kind of problem for everyone (a kubelet sends no token); licensees' names and
    sizes only to a token whose scope is '*'."""
    checks = {"kafka": True, "redis": False, "assignment": True, "progress": "stalled: 12 changes waiting",
              "state": "refusing acme: stored digests subscription:1a2b3c4d, configured shared:1a2b3c4d; "
                       "loading globex: 420,000 of 1,000,000 records"}
    app = create_web_app(sample_reader(), ready(**checks), access=Access(TokenFile(tokens.path)))
    async with TestClient(TestServer(app)) as client:
        for headers in ({}, bearer("wrong"), bearer(tokens.viewer_acme), bearer(tokens.admin_globex)):
            response = await client.get("/readyz", headers=headers)
            assert response.status == 503
            body = await response.json()
            assert body == {"kafka": True, "redis": False, "assignment": True, "progress": "stalled",
                            "state": "refusing a subscription",
                            "reason": "redis does not answer; stalled; refusing a subscription"}, headers
        for token in (tokens.viewer_all, tokens.admin_all):
            body = await (await client.get("/readyz", headers=bearer(token))).json()
            assert body["state"] == checks["state"] and "globex: 420,000" in body["reason"]


async def test_a_source_token_reads_nothing_from_a_worker(tokens: Tokens) -> None:
    """A source writes events through the gateway; on a worker its token opens no data path, even with
    scope '*', and on /readyz it counts as no token (no names, no sizes)."""
    source_all = create_token(tokens.path, "source", None)
    checks = {"kafka": True, "redis": True, "assignment": True, "progress": True, "state": "loading globex: 1 of 2"}
    app = create_web_app(sample_reader(), ready(**checks), access=Access(TokenFile(tokens.path)))
    async with TestClient(TestServer(app)) as client:
        for path in ("/api/v1/subscriptions", "/api/v1/subscriptions/acme", "/api/v1/stream", "/metrics",
                     "/api/v1/subscriptions/acme/audit"):
            response = await client.get(path, headers=bearer(source_all))
            assert response.status == 403, path
            assert "source token" in (await response.json())["error"]
        body = await (await client.get("/readyz", headers=bearer(source_all))).json()
        assert body["state"] == "loading"


def test_token_create_makes_source_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    result = CliRunner().invoke(main, ["token", "create", "--role", "source", "--scope", "acme", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert TokenFile(path).lookup(result.stdout.strip()) == auth.Grant("source", frozenset({"acme"}))
