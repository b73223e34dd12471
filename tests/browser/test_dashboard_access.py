"""The dashboard in a real browser when tokens are on: it asks for a token, keeps it for the tab, and
shows only the subscriptions of the token's scope (the server filters the stream)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from streams.http.auth import Access, TokenFile, create_token
from streams.http.views import create_web_app
from tests.browser.dashboard_check import chromium_available, open_dashboard
from tests.unit.fake_counts import FakeReader, counts, sample_reader
from tests.browser.test_dashboard_page import ARTIFACTS
from tests.fixtures.pipeline import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("ENDUSERS_REQUIRE_BROWSER"),
        reason="needs /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[str, FakeReader, str]]:
    reader = sample_reader()
    path = tmp_path / "tokens"
    token = create_token(path, "viewer", frozenset({"acme"}))

    async def readiness() -> dict[str, bool]:
        return {"kafka": True, "redis": True}

    app = create_web_app(reader, readiness, interval=0.5, access=Access(TokenFile(path)))
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/", reader, token
    finally:
        await runner.cleanup()


async def test_the_dashboard_asks_for_a_token_and_then_shows_only_its_scope(
        secured: tuple[str, FakeReader, str]) -> None:
    url, reader, token = secured
    async with await open_dashboard(url, ready='[data-testid="login"]:not([hidden])') as dash:
        await dash.save(ARTIFACTS / "dashboard-token.png")
        assert await dash.locator('[data-testid^="card-"]').count() == 0

        await dash.get_by_test_id("token-input").fill("not-a-token")
        await dash.get_by_test_id("token-submit").click()
        await dash.wait_for_selector('[data-testid="login-error"]:has-text("not accepted")', timeout=5000)

        await dash.get_by_test_id("token-input").fill(token)
        await dash.get_by_test_id("token-submit").click()
        await dash.wait_for_count("acme", "internal", 1234, timeout=5)
        assert await dash.get_by_test_id("login").is_hidden()
        assert await dash.count("globex", "internal") is None
        assert await dash.text("capacity-acme-internal") == "/ 1,500"

        reader.put("initech", counts(5, 1))
        reader.data["acme"] = counts(1300, 56, levels={"internal": 80, "external": 100})
        await dash.wait_for_count("acme", "internal", 1300, timeout=5)
        cards = await dash.locator("[data-subscription]").evaluate_all("els => els.map(e => e.dataset.subscription)")
        assert cards == ["acme"]
        await dash.save(ARTIFACTS / "dashboard-scoped.png")

        assert await dash.evaluate("sessionStorage.getItem('endusers.token')") == token
        await dash.reload()  # the tab keeps its token: no second prompt
        await dash.wait_for_count("acme", "internal", 1300, timeout=5)
        assert await dash.get_by_test_id("login").is_hidden()

        await dash.get_by_test_id("signout").click()
        await dash.wait_for_selector('[data-testid="login"]:not([hidden])', timeout=5000)
        assert await dash.evaluate("sessionStorage.getItem('endusers.token')") is None
        assert await dash.count("acme", "internal") is None

        unexpected = [e for e in dash.errors if "401" not in e]  # the browser logs each refused request
        assert unexpected == []
        assert dash.external_requests == []
