"""The HTTP views (streams/http/views.py) against an in-memory reader: JSON API, health, metrics, files, SSE."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import faust
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.http.files import STATIC_DIR
from streams.http.views import ROUTES, create_web_app, install_views
from streams.observe import metrics
from tests.unit.fake_counts import FakeReader, counts, sample_reader


def ready(**checks: bool | str) -> Any:
    async def probe() -> dict[str, bool | str]:
        return dict(checks)
    return probe


@pytest.fixture
async def reader() -> FakeReader:
    return sample_reader()


@pytest.fixture
async def client(reader: FakeReader) -> Any:
    app = create_web_app(reader, ready(kafka=True, redis=True), interval=0.05)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def read_events(response: Any, count: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
    """Parse ``count`` SSE messages (event name, JSON data) from a streaming response."""
    events: list[tuple[str, Any]] = []
    name, data = None, []

    async def collect() -> None:
        nonlocal name, data
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and name is not None:
                events.append((name, json.loads("\n".join(data))))
                name, data = None, []

    await asyncio.wait_for(collect(), timeout)
    return events


async def test_subscriptions_lists_ids(client: Any) -> None:
    response = await client.get("/api/v1/subscriptions")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"subscriptions": ["acme", "globex"]}


async def test_subscription_object(client: Any, reader: FakeReader) -> None:
    response = await client.get("/api/v1/subscriptions/acme")
    assert response.status == 200
    body = await response.json()
    assert body["subscription"] == "acme"
    assert body["internal"] == 1234 and body["external"] == 56
    assert body["runtimes"]["prod"] == {"internal": 1200, "external": 50, "records": 1300}
    assert body["levels"] == {"internal": 80, "external": 100}
    assert body["settings"]["capacity"] == {"internal": 1500, "external": 50}
    assert set(body) >= {"internal", "external", "records", "runtimes", "providers", "anonymous_sessions", "levels"}


async def test_unknown_subscription_is_404_json(client: Any) -> None:
    response = await client.get("/api/v1/subscriptions/nope")
    assert response.status == 404
    assert "nope" in (await response.json())["error"]


async def test_shared_identifiers_view_lists_the_report_without_plaintext(client: Any, reader: FakeReader) -> None:
    found = {"digest": "0123456789abcdef", "kind": "email", "records": 7, "runtimes": {"prod": 7}}
    reader.shared["acme"] = {"threshold": 5, "identifiers": [found]}
    response = await client.get("/api/v1/subscriptions/acme/shared-identifiers")
    assert response.status == 200
    assert await response.json() == {"subscription": "acme", "threshold": 5, "identifiers": [found]}


async def test_shared_identifiers_view_is_empty_before_a_report_and_404_when_unknown(client: Any) -> None:
    response = await client.get("/api/v1/subscriptions/globex/shared-identifiers")
    assert await response.json() == {"subscription": "globex", "threshold": 5, "identifiers": []}
    assert (await client.get("/api/v1/subscriptions/nope/shared-identifiers")).status == 404


async def test_store_failure_is_503_json_without_the_errors_text(client: Any, reader: FakeReader) -> None:
    """The error's text names internal hosts: it goes to the worker's log, the client gets its kind."""
    reader.fail = ConnectionError("Error 111 connecting to redis-0.internal:6379")
    for path in ("/api/v1/subscriptions", "/api/v1/subscriptions/acme", "/api/v1/subscriptions/acme/shared-identifiers"):
        response = await client.get(path)
        assert response.status == 503
        error = (await response.json())["error"]
        assert error.startswith("store unavailable: ConnectionError") and "redis-0.internal" not in error


async def test_healthz(client: Any) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and await response.json() == {"status": "ok"}


@pytest.mark.parametrize("checks, status, reason", [
    ({"kafka": True, "redis": True}, 200, None),
    ({"kafka": True, "redis": False}, 503, "redis does not answer"),
    ({"kafka": False, "redis": False}, 503, "kafka does not answer; redis does not answer"),
    ({"kafka": True, "state": "loading acme: 420,000 of 1,000,000 records"}, 503,
     "loading acme: 420,000 of 1,000,000 records"),
    ({}, 503, "no check ran"),
])
async def test_readyz_is_200_only_when_every_check_passes_else_says_why(
        checks: dict[str, bool | str], status: int, reason: str | None) -> None:
    app = create_web_app(FakeReader(), ready(**checks))
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.get("/readyz")
        assert response.status == status
        body = await response.json()
        assert body.pop("reason", None) == reason
        assert body == checks


async def test_readyz_probe_that_raises_is_503() -> None:
    async def broken() -> dict[str, bool]:
        raise RuntimeError("no kafka client")
    async with TestClient(TestServer(create_web_app(FakeReader(), broken))) as test_client:
        response = await test_client.get("/readyz")
        assert response.status == 503
        assert "no kafka client" in (await response.json())["error"]


async def test_metrics_text(client: Any) -> None:
    metrics.EVENTS.labels("enduser.logins").inc()
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert "endusers_events_processed_total" in text
    assert 'topic="enduser.logins"' in text


async def test_dashboard_and_static_files(client: Any) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "/static/dashboard.js" in html and "/static/dashboard.css" in html
    assert "http://" not in html and "https://" not in html  # no CDN
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        response = await client.get(f"/static/{name}")
        assert response.status == 200
        assert kind in response.content_type
        assert (await response.read()) == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/..%2Fweb.py", "/static/.hidden", "/static/%00",
                                  "/static/a%00b.js", "/static/" + "x" * 5000])
async def test_static_refuses_unknown_and_escaping_paths(client: Any, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404


async def test_openapi_served(client: Any) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"].startswith("3.1")


async def test_stream_sends_a_snapshot_then_only_what_changed(client: Any, reader: FakeReader) -> None:
    response = await client.get("/api/v1/stream")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    (first_name, first), = await read_events(response, 1)
    assert first_name == "snapshot" and isinstance(first["time"], int)
    acme = first["subscriptions"]["acme"]
    assert acme["internal"] == 1234 and acme["settings"]["capacity"]["external"] == 50
    assert acme["levels"] == {"internal": 80, "external": 100}
    assert len(acme["history"]) == 31 and "point" not in acme
    assert [e["level"] for e in acme["events"]] == [100, 80]

    reader.data["acme"] = {**counts(1300, 56), "levels": reader.data["acme"]["levels"]}
    reader.put("initech", counts(5, 0))
    changed: dict[str, Any] = {}
    while set(changed) != {"acme", "initech"}:  # in one change or two, as the polls fall
        (name, data), = await read_events(response, 1)
        assert name == "change"
        changed.update(data["subscriptions"])
    assert set(changed) == {"acme", "initech"}
    assert changed["acme"]["internal"] == 1300 and changed["acme"]["point"][1:] == [1300, 56]
    assert not {"levels", "settings", "events", "history"} & set(changed["acme"])  # unchanged groups stay home
    assert "history" in changed["initech"] and "settings" in changed["initech"]  # a new one comes whole
    response.close()


async def test_stream_reports_store_problems_and_recovers(client: Any, reader: FakeReader) -> None:
    response = await client.get("/api/v1/stream")
    await read_events(response, 1)
    reader.fail = ConnectionError("redis down")
    names = [name for name, _ in await read_events(response, 1)]
    assert "problem" in names
    reader.fail = None
    for _ in range(5):
        name, data = (await read_events(response, 1))[0]
        if data["error"] is None:
            break
    assert name == "problem" and data["error"] is None  # recovered; nothing changed, so nothing else
    response.close()


async def test_one_poller_serves_many_clients(client: Any, reader: FakeReader) -> None:
    streams = [await client.get("/api/v1/stream") for _ in range(5)]
    for response in streams:
        await read_events(response, 1)
    before = reader.calls
    await asyncio.sleep(0.5)  # about 10 ticks at 50 ms
    per_tick = 1 + 3 * len(reader.data)  # subscriptions() + counts/settings/events per subscription
    assert reader.calls - before <= per_tick * 14  # one poll loop, not five
    for response in streams:
        response.close()


async def test_routes_match_openapi_document() -> None:
    document = json.loads((STATIC_DIR / "openapi.json").read_text())
    assert set(document["paths"]) == set(ROUTES)
    app = create_web_app(FakeReader(), ready(ok=True))
    served = {(route.resource.canonical, route.method.lower()) for route in app.router.routes()
              if route.method != "HEAD"}
    assert {path for path, _ in served} == set(ROUTES)
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served
    for path, item in document["paths"].items():
        assert all(operation["responses"] for operation in item.values()), path


def test_openapi_references_resolve() -> None:
    document = json.loads((STATIC_DIR / "openapi.json").read_text())
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    import re
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([A-Za-z]+)"', text)):
        assert ref in schemas, ref


async def test_install_views_on_a_faust_app(reader: FakeReader) -> None:
    app = faust.App("endusers-web-test", broker="memory://", store="memory://", web_enabled=True)
    install_views(app, reader, ready(kafka=True, redis=True))
    app.web.init_server()  # applies Faust's blueprints, as the worker does at start
    web_app = app.web.web_app
    assert isinstance(web_app, web.Application)
    index_routes = [r for r in web_app.router.routes()
                    if r.method == "GET" and r.resource is not None and r.resource.canonical == "/"]
    assert len(index_routes) == 1  # Faust's own "/" index was dropped in favour of the dashboard
    async with TestClient(TestServer(web_app)) as test_client:
        page = await test_client.get("/")
        assert "End users" in await page.text()
        body = await (await test_client.get("/api/v1/subscriptions")).json()
        assert body == {"subscriptions": ["acme", "globex"]}
        for path in ("/router/", "/table/", "/router", "/table"):  # Faust's own blueprints are not served
            assert (await test_client.get(path)).status == 404, path


async def test_install_views_after_start_is_refused(reader: FakeReader) -> None:
    app = faust.App("endusers-web-test-2", broker="memory://", store="memory://", web_enabled=True)
    app.web.init_server()
    with pytest.raises(RuntimeError):
        install_views(app, reader, ready(ok=True))


async def test_stream_sends_settings_at_connect_and_then_only_when_they_change(client: Any, reader: FakeReader) -> None:
    """Settings with 10,000 owned domains are about 157 KB: once a second to every dashboard was
    about 160 KB/s per client for nothing."""
    from tests.unit.fake_counts import settings as make_settings

    response = await client.get("/api/v1/stream")
    (_, first), = await read_events(response, 1)
    assert "settings" in first["subscriptions"]["acme"]
    reader.settings_by["acme"] = make_settings(internal=7)
    (name, data), = await read_events(response, 1)
    assert name == "change" and set(data["subscriptions"]["acme"]) == {"settings"}
    assert data["subscriptions"]["acme"]["settings"]["capacity"]["internal"] == 7
    response.close()


async def test_streams_beyond_the_cap_get_503_with_retry_after(reader: FakeReader) -> None:
    app = create_web_app(reader, ready(ok=True), interval=0.05, max_streams=1)
    async with TestClient(TestServer(app)) as test_client:
        first = await test_client.get("/api/v1/stream")
        await read_events(first, 1)
        refused = await test_client.get("/api/v1/stream")
        assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
        first.close()


async def test_clients_that_connect_together_share_one_full_snapshot(reader: FakeReader) -> None:
    app = create_web_app(reader, ready(ok=True), interval=5.0)
    async with TestClient(TestServer(app)) as test_client:
        before = reader.calls
        streams = await asyncio.gather(*(test_client.get("/api/v1/stream") for _ in range(20)))
        firsts = [(await read_events(response, 1))[0] for response in streams]
        assert all(name == "snapshot" for name, _ in firsts)
        per_snapshot = 1 + 6 * len(reader.data)  # subscriptions() + counts/settings/events/shared/hourly/history
        assert reader.calls - before <= per_snapshot * 2  # one read for all twenty, not twenty
        for response in streams:
            response.close()


async def test_one_token_holds_at_most_its_share_of_the_streams(reader: FakeReader) -> None:
    app = create_web_app(reader, ready(ok=True), interval=0.05, max_streams=10, max_streams_per_token=1)
    async with TestClient(TestServer(app)) as test_client:
        first = await test_client.get("/api/v1/stream", headers={"Authorization": "Bearer one"})
        await read_events(first, 1)
        refused = await test_client.get("/api/v1/stream", headers={"Authorization": "Bearer one"})
        assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
        assert "for this token" in (await refused.json())["error"]
        other = await test_client.get("/api/v1/stream", headers={"Authorization": "Bearer two"})
        assert other.status == 200
        first.close()
        other.close()
        for _ in range(100):  # the place is given back once the stream has ended
            again = await test_client.get("/api/v1/stream", headers={"Authorization": "Bearer one"})
            if again.status == 200:
                break
            await asyncio.sleep(0.02)
        assert again.status == 200
        again.close()


async def test_a_stream_whose_client_stops_reading_is_closed_after_the_idle_timeout(reader: FakeReader) -> None:
    from streams.http.live import DashboardStream

    class Stuck:
        async def write(self, data: bytes) -> None:
            await asyncio.Event().wait()  # the client takes nothing: the socket buffer stays full

    stream = DashboardStream(reader, idle=0.05)
    with pytest.raises(TimeoutError):
        await stream._write(Stuck(), b"data")  # type: ignore[arg-type]


async def test_sources_and_statements_answer_404_for_an_unknown_subscription_and_503_without_the_store() -> None:
    reader = sample_reader()
    reader.source_last["acme"] = {"okta": 0}
    async with TestClient(TestServer(create_web_app(reader, ready(ok=True)))) as test_client:
        for path in ("sources", "statements"):
            assert (await test_client.get(f"/api/v1/subscriptions/nobody/{path}")).status == 404
        sources = await (await test_client.get("/api/v1/subscriptions/acme/sources")).json()
        assert sources["silent"] == 1 and sources["providers"][0]["last_event"] == "1970-01-01T00:00:00Z"
        statements = await (await test_client.get("/api/v1/subscriptions/acme/statements")).json()
        assert statements["statements"][0]["closed"] is False
        reader.fail = ConnectionError("down")
        assert (await test_client.get("/api/v1/subscriptions/acme/sources")).status == 503
