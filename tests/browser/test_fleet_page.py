"""The fleet overview in a real browser with 300 subscriptions: the table appears soon after the first
snapshot, sorts, filters, moves by keyboard, opens a subscription's page by its URL, and fits a
desktop and a phone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from counters.history import Entry
from tests.browser.dashboard_check import chromium_available, open_dashboard, served_dashboard
from tests.browser.test_dashboard_page import ARTIFACTS
from tests.unit.fake_counts import FakeReader, counts, settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("ENDUSERS_REQUIRE_BROWSER"),
        reason="needs /usr/bin/chromium (apt-get install chromium)",
    ),
]

FLEET = 300
LONG = "subscription-with-a-rather-long-name-for-the-european-production-environment"


def fleet_reader() -> FakeReader:
    """300 subscriptions: sub-000 uses 0.3% of its capacity ... sub-299 uses 99.9%; every tenth is
    at a warning level, sub-299 critical, sub-150 unlimited; one has a long name."""
    reader = FakeReader()
    now = datetime.now(timezone.utc)
    for n in range(FLEET):
        name = f"sub-{n:03d}" if n != 7 else LONG
        internal = n + 1
        levels = {"internal": 100 if n == 299 else 80 if n % 10 == 9 else 0, "external": 0}
        capacity = (None, None) if n == 150 else (300, 50)
        reader.put(name, counts(internal, n % 7, levels=levels),
                   settings(*capacity, platform="odc" if n % 2 else "o11"))
        reader.hours[name] = [Entry((now - timedelta(hours=h)).strftime("%Y-%m-%dT%H"), internal - h, internal - h,
                                    internal - h, 1, 1, 1) for h in range(23, -1, -1)]
    reader.shared["sub-042"] = {"threshold": 5, "identifiers": [
        {"digest": "0123456789abcdef", "kind": "email", "records": 7, "runtimes": {"prod": 7}}]}
    return reader


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FakeReader]]:
    reader = fleet_reader()
    async with served_dashboard(reader) as url:
        yield url, reader


async def names(dash: object) -> list[str]:
    return await dash.locator("#fleet-rows tr").evaluate_all(  # type: ignore[attr-defined, no-any-return]
        "rows => rows.map(r => r.dataset.subscription)")


@pytest.mark.parametrize("width", [1400, 390])
async def test_the_fleet_table_shows_every_subscription_sorts_filters_and_opens_one(
        served: tuple[str, FakeReader], width: int) -> None:
    url, reader = served
    async with await open_dashboard(url, width=width, height=900,
                                    ready='[data-testid="fleet-rows"] tr') as dash:
        took = await dash.evaluate("performance.getEntriesByName('fleet')[0].startTime"
                                   " - performance.getEntriesByName('snapshot')[0].startTime")
        assert took < 2000, f"the table took {took:.0f} ms after the snapshot"
        assert await dash.text("fleet-total") == "300 of 300 subscriptions"
        assert await dash.text("page-info") == "1–100 of 300"
        rows = await names(dash)
        assert len(rows) == 100
        assert rows[0] == "sub-299" and rows[1] == "sub-298"  # highest share of capacity first
        assert "sub-150" not in rows  # unlimited: no share of capacity, last
        assert await dash.text("level-count-critical") == "1 critical"
        assert await dash.text("level-count-warning") == "29 warning"
        assert await dash.text("level-count-unlimited") == "1 unlimited"
        overflow = await dash.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the window"
        link = dash.locator(f'[data-testid="row-{LONG}"] a')
        await dash.get_by_test_id("filter").fill("long-name")
        assert await names(dash) == [LONG]
        assert await link.get_attribute("title") == LONG
        box = await link.bounding_box()
        assert box is not None and box["height"] < 30  # one line, cut with an ellipsis
        await dash.save(ARTIFACTS / f"fleet-filtered-{width}.png", full_page=False)
        await dash.get_by_test_id("filter").fill("")

        await dash.locator('th[data-key="name"] button').click()
        assert (await names(dash))[:2] == ["sub-000", "sub-001"]
        await dash.locator('th[data-key="name"] button').click()
        assert (await names(dash))[0] == LONG
        assert await dash.locator('th[data-key="name"]').get_attribute("aria-sort") == "descending"
        await dash.locator('th[data-key="warnings"] button').click()
        assert (await names(dash))[0] == "sub-042"  # the one with shared identifiers
        await dash.get_by_test_id("page-next").click()
        assert await dash.text("page-info") == "101–200 of 300"

        await dash.get_by_test_id("level-count-critical").click()
        assert await names(dash) == ["sub-299"]
        await dash.get_by_test_id("level-count-critical").click()
        await dash.save(ARTIFACTS / f"fleet-{width}.png", full_page=False)

        # keyboard: the first row is in the tab order, arrows move, Enter opens
        await dash.locator('th[data-key="internal"] button').click()  # the highest internal share first
        await dash.locator("#fleet-rows tr").first.focus()
        await dash.keyboard.press("ArrowDown")
        focused = await dash.evaluate("document.activeElement.dataset.subscription")
        assert focused == "sub-298"
        await dash.keyboard.press("Enter")
        await dash.get_by_test_id("card-sub-298").wait_for(timeout=5000)
        assert dash.url.endswith("#/s/sub-298")
        assert await dash.count("sub-298", "internal") == 299

        reader.data["sub-298"] = counts(301, 0, levels={"internal": 100, "external": 0})
        await dash.wait_for_count("sub-298", "internal", 301, timeout=5)
        announce = dash.get_by_test_id("announce")
        await dash.wait_for_function("el => el.textContent.includes('sub-298')",
                                     arg=await announce.element_handle(), timeout=5000)
        assert "internal up to level 100%" in await announce.text_content()
        await dash.save(ARTIFACTS / f"fleet-detail-{width}.png")
        await dash.get_by_test_id("back").click()
        await dash.get_by_test_id("row-sub-298").wait_for(timeout=5000)
        assert dash.errors == []
        assert dash.external_requests == []


async def test_a_subscriptions_page_opens_from_its_url(served: tuple[str, FakeReader]) -> None:
    url, reader = served
    reader.histories["sub-010"] = [[reader.histories["sub-010"][-1][0], 11, 3]]  # a single point
    async with await open_dashboard(url + "#/s/sub-010", ARTIFACTS / "fleet-detail-url.png",
                                    ready='[data-testid="card-sub-010"]') as dash:
        assert await dash.count("sub-010", "internal") == 11
        assert await dash.locator("#fleet-rows tr").count() == 0  # the table is not drawn behind it
        chart = dash.get_by_test_id("chart-sub-010")
        assert await chart.locator("polyline").count() == 2  # the single point held until now
        labels = await chart.locator("text").all_text_contents()
        assert await chart.locator("line.cap").count() == 2
        scale = [int(label.replace(",", "")) for label in labels if label.replace(",", "").isdigit()]
        assert max(scale) >= 300  # the scale holds the capacity lines it draws (300 and 50)
        assert any(":" in label for label in labels)  # times on the axis
        assert dash.errors == []
