"""The dashboard in a real browser (Debian's chromium) against the in-memory reader: it renders the
counts, updates by itself when they change, needs nothing from outside its server, and fits a phone."""

from __future__ import annotations

import os

from datetime import datetime, timezone
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams.http.insights import forecast_sentence, forecasts
from tests.browser.dashboard_check import chromium_available, open_dashboard, served_dashboard
from tests.unit.fake_counts import FakeReader, capacity_event, counts, dormant_state, sample_reader

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("ENDUSERS_REQUIRE_BROWSER"),
        reason="needs /usr/bin/chromium (apt-get install chromium)",
    ),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FakeReader]]:
    reader = sample_reader()
    reader.states["acme"] = dormant_state()  # an admin's page asks for acme's committed state (dormant seats)
    async with served_dashboard(reader) as url:
        yield url, reader


async def test_dashboard_renders_and_updates_by_itself(served: tuple[str, FakeReader]) -> None:
    url, reader = served
    async with await open_dashboard(url, ARTIFACTS / "dashboard-fleet.png") as dash:  # the fleet table
        assert await dash.count("acme", "internal") == 1234
        assert await dash.count("globex", "internal") == 42
        assert await dash.text("capacity-globex-internal") == "/ unlimited"
        assert await dash.text("level-globex") == "unlimited"
        assert await dash.text("level-acme") == "critical"
        await dash.evaluate("location.hash = '#/s/globex'")
        await dash.get_by_test_id("card-globex").wait_for(timeout=5000)
        assert not await dash.get_by_test_id("domains-globex").is_visible()  # no external domains known
        assert not await dash.get_by_test_id("shared-globex").is_visible()
        await dash.get_by_test_id("forecast-globex").filter(has_text="no forecast").wait_for(timeout=5000)
    async with await open_dashboard(url + "#/s/acme", ARTIFACTS / "dashboard.png") as dash:
        assert await dash.count("acme", "internal") == 1234
        assert await dash.count("acme", "external") == 56
        assert await dash.text("capacity-acme-internal") == "/ 1,500"
        assert await dash.text("level-acme-external") == "level 100%"
        assert "critical" in (await dash.get_by_test_id("card-acme").get_attribute("class") or "")
        assert await dash.get_by_test_id("runtimes-acme").locator("tbody tr").count() == 2
        assert await dash.get_by_test_id("events-acme").locator("tbody tr").count() == 2
        assert await dash.get_by_test_id("chart-acme").locator("polyline").count() == 2
        assert await dash.text("excluded-acme") == "12"
        domains = dash.get_by_test_id("domains-acme").locator("tbody tr")
        assert await domains.count() == 4  # three domains and the others folded
        assert (await domains.first.inner_text()).split() == ["partner.example", "31", "55.4%"]
        await dash.get_by_test_id("year-acme").locator("polyline").first.wait_for(timeout=5000)
        assert await dash.get_by_test_id("year-acme").locator("polyline").count() == 2
        assert await dash.get_by_test_id("year-acme").locator("line.cap").count() == 2
        # the page words the API's forecast as the CLI does (streams/http/insights.py)
        today = datetime.now(timezone.utc).date()
        expected = forecasts(reader.days["acme"], reader.settings_by["acme"], today)
        sentences = [forecast_sentence(c, expected[c]) for c in ("internal", "external")]
        assert await dash.text("forecast-acme") == "; ".join(s for s in sentences if s)
        assert sentences[0] is not None and sentences[0].startswith("at this rate, internal reaches 90% around ")

        reader.data["acme"] = {**counts(1501, 56, levels={"internal": 100, "external": 100}, excluded=12),
                               "external_domains": reader.data["acme"]["external_domains"]}
        reader.events["acme"].insert(0, capacity_event("acme", "internal", 90, 100, 1501, 1500,
                                                           "2026-11-01T10:15:00Z"))
        took = await dash.wait_for_count("acme", "internal", 1501, timeout=5)
        assert took < 5
        assert await dash.get_by_test_id("events-acme").locator("tbody tr").count() == 3

        assert not await dash.get_by_test_id("shared-acme").is_visible()
        reader.shared["acme"] = {"threshold": 5, "identifiers": [
            {"digest": "0123456789abcdef", "kind": "email", "records": 7, "runtimes": {"prod": 7}}]}
        warning = dash.get_by_test_id("shared-acme")
        await warning.wait_for(state="visible", timeout=5000)
        assert (await warning.text_content()).startswith("⚠ 1 shared email or login")

        reader.put("initech", counts(5, 1))
        await dash.get_by_test_id("back").click()  # the fleet table lists the newcomer
        await dash.wait_for_count("initech", "internal", 5, timeout=5)
        await dash.save(ARTIFACTS / "dashboard.png")
        assert dash.errors == []
        assert dash.external_requests == []


async def test_dashboard_fits_a_phone(served: tuple[str, FakeReader]) -> None:
    url, _ = served
    async with await open_dashboard(url, ARTIFACTS / "dashboard-phone.png", width=360, height=780) as dash:
        overflow = await dash.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a 360px phone"
        assert await dash.count("acme", "internal") == 1234
        assert dash.errors == []


async def test_admins_preview_a_change_and_explain_a_person_on_the_dashboard(
        served: tuple[str, FakeReader]) -> None:
    """The what-if and explain forms send the admin API's requests and word its answers; the page's
    figures are the API's own (asked for here the same way)."""
    import aiohttp

    from tests.unit.test_explain import state

    url, reader = served
    reader.states["acme"] = state()
    api = url + "api/v1/subscriptions/acme"
    async with aiohttp.ClientSession() as session:
        async with session.post(api + "/preview", json={"domains": ["partner.io"]}) as response:
            preview = await response.json()
        async with session.post(api + "/explain", json={"email": "adam@example.com"}) as response:
            explained = await response.json()
    assert explained["found"] >= 2  # the fixture's Adam has records in two runtimes

    async with await open_dashboard(url + "#/s/acme", ARTIFACTS / "dashboard-tools.png") as dash:
        tools = dash.get_by_test_id("tools-acme")
        await tools.locator("summary").click()
        whatif = dash.get_by_test_id("whatif-acme")
        await whatif.locator("input[name=domains]").fill("partner.io")
        await whatif.locator("button").click()
        result = dash.get_by_test_id("whatif-result-acme")
        await dash.wait_for_function(
            "el => el.textContent.includes('→')", arg=await result.element_handle(), timeout=5000)
        text = await result.text_content()
        for cls in ("internal", "external"):
            assert (f"{cls} {preview['current'][cls]} → {preview['preview'][cls]}" in text), text

        explain = dash.get_by_test_id("explain-acme")
        await explain.locator("input[name=who]").fill("adam@example.com")
        await explain.locator("button").click()
        answer = dash.get_by_test_id("explain-result-acme")
        await answer.locator("p").first.wait_for(timeout=5000)
        lines = await answer.locator("p").all_text_contents()
        assert lines[0] == f"{explained['found']} record(s) carry it"
        assert len(lines) == explained["found"] + 1
        assert any("joined by" in line for line in lines[1:]), lines
        assert not await dash.get_by_test_id("tools-globex").is_visible()  # a viewer's stream has no report
        await dash.save(ARTIFACTS / "dashboard-tools.png")
        assert dash.errors == []


async def test_the_card_marks_a_silent_source_and_not_a_busy_one(served: tuple[str, FakeReader]) -> None:
    url, reader = served
    now = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
    hour = 3_600 * 1_000_000
    reader.source_last["acme"] = {"okta": now - 30 * hour, "entra": now - hour}
    reader.source_last["globex"] = {"entra": now - hour}
    async with await open_dashboard(url + "#/s/acme", ARTIFACTS / "dashboard-silent.png") as dash:
        mark = dash.get_by_test_id("silent-acme")
        await mark.wait_for(state="visible", timeout=5000)
        text = await mark.text_content() or ""
        assert text.startswith("Silent sources: okta (no event for 30 h") and "entra" not in text
        await dash.evaluate("location.hash = '#/s/globex'")
        await dash.get_by_test_id("card-globex").wait_for(timeout=5000)
        # the forecast is fetched with the sources: once it shows, the mark has been decided
        await dash.get_by_test_id("forecast-globex").filter(has_text="no forecast").wait_for(timeout=5000)
        assert not await dash.get_by_test_id("silent-globex").is_visible()
        assert dash.errors == []


async def test_an_admins_card_names_the_reclaimable_dormant_seats_and_links_their_list(
        served: tuple[str, FakeReader]) -> None:
    """The figures are the dormant report's ``freed`` at the subscription's ``dormant_days`` (60 here)."""
    url, _ = served
    async with await open_dashboard(url + "#/s/acme", ARTIFACTS / "dashboard-dormant.png") as dash:
        line = dash.get_by_test_id("dormant-acme")
        await line.wait_for(state="visible", timeout=5000)
        assert (await line.text_content() or "").startswith(
            "Dormant: 2 internal, 1 external seats reclaimable (not logged in for 60 days)")
        async with dash.expect_download(timeout=5000) as info:
            await line.locator("a").click()
        download = await info.value
        assert download.suggested_filename == "acme-dormant.csv"
        rows = Path(await download.path()).read_text().splitlines()
        assert rows[0].startswith("last_login,") and len(rows) == 4  # the header and three dormant records
        await dash.save(ARTIFACTS / "dashboard-dormant.png")
        assert dash.errors == []


async def test_a_viewers_card_shows_no_dormant_seats_and_logs_nothing(tmp_path: Path) -> None:
    """The dormant report is admin-only (a viewer's token gets 403): the viewer's page never asks."""
    import aiohttp

    from streams.http.auth import Access, TokenFile, create_token

    reader = sample_reader()
    reader.states["acme"] = dormant_state()
    tokens = tmp_path / "tokens"
    viewer = create_token(tokens, "viewer", frozenset({"acme"}))
    async with served_dashboard(reader, Access(TokenFile(tokens))) as url:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {viewer}"}) as session:
            async with session.get(url + "api/v1/subscriptions/acme/dormant") as response:
                assert response.status == 403
        async with await open_dashboard(url + "#/s/acme", ready='[data-testid="login"]:not([hidden])') as dash:
            await dash.get_by_test_id("token-input").fill(viewer)
            await dash.get_by_test_id("token-submit").click()
            await dash.get_by_test_id("card-acme").wait_for(timeout=5000)
            # the forecast is fetched on the same refresh: once it shows, the line has been decided
            await dash.get_by_test_id("forecast-acme").filter(has_text="at this rate").wait_for(timeout=5000)
            assert not await dash.get_by_test_id("dormant-acme").is_visible()
            assert [e for e in dash.errors if "401" not in e] == []  # the stream's ask for a token, only
