"""Open the live dashboard in Debian's chromium (Python Playwright), for tests and manual checks.

Uses the SYSTEM browser at ``/usr/bin/chromium`` (``apt-get install chromium``); never run
``playwright install``. Reusable from any test or script::

    async with await open_dashboard("http://127.0.0.1:6066/", "artifacts/dashboard.png") as dash:
        assert await dash.count("acme", "internal") == 1234
        await dash.wait_for_count("acme", "internal", 1300, timeout=5)

The returned :class:`Dashboard` forwards unknown attributes to the Playwright ``Page`` (so it is
"Page-like": ``dash.locator(...)``, ``dash.screenshot(...)``), and records page errors, console
errors and any request that leaves the dashboard's origin (the page must need no CDN).

Run it by hand against a running worker: ``python -m tests.browser.dashboard_check URL [PNG]``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


class Dashboard:
    """A dashboard page in a private browser; close it (or use ``async with``) when done."""

    def __init__(self, playwright: Any, browser: Any, context: Any, page: Any, origin: str) -> None:
        self.playwright = playwright
        self.browser = browser
        self.context = context
        self.page = page
        self.origin = origin
        self.errors: list[str] = []
        self.external_requests: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)

    async def __aenter__(self) -> Dashboard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def text(self, testid: str) -> str:
        return (await self.page.get_by_test_id(testid).first.text_content() or "").strip()

    async def count(self, subscription: str, user_class: str) -> int | None:
        """The number shown for ``count-<subscription>-<class>`` (None if not rendered)."""
        locator = self.page.get_by_test_id(f"count-{subscription}-{user_class}")
        if await locator.count() == 0:
            return None
        text = (await locator.first.text_content() or "").replace(",", "").replace(".", "").replace("\u202f", "")
        text = "".join(ch for ch in text if ch.isdigit())
        return int(text) if text else None

    async def wait_for_count(self, subscription: str, user_class: str, expected: int, timeout: float = 5.0) -> float:
        """Poll until the page shows ``expected``; return the seconds it took (AssertionError on timeout)."""
        start = time.monotonic()
        seen = None
        while time.monotonic() - start < timeout:
            seen = await self.count(subscription, user_class)
            if seen == expected:
                return time.monotonic() - start
            await asyncio.sleep(0.1)
        raise AssertionError(f"count-{subscription}-{user_class}: expected {expected}, still {seen} after {timeout}s")

    async def save(self, path: str | Path, *, full_page: bool = True) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(target), full_page=full_page)
        return target

    async def close(self) -> None:
        for step in (self.context.close, self.browser.close, self.playwright.stop):
            try:
                await step()
            except Exception:
                pass


async def open_dashboard(url: str, screenshot_path: str | Path | None = None, *, width: int = 1280,
                         height: int = 900, timeout: float = 15.0,
                         ready: str | None = '[data-testid^="count-"]') -> Dashboard:
    """Open ``url`` in headless system chromium, wait until ``ready`` (by default a rendered count)
    is on the page, save a screenshot."""
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
    except BaseException:
        await playwright.stop()
        raise
    parts = urlsplit(url)
    dashboard = Dashboard(playwright, browser, context, page, f"{parts.scheme}://{parts.netloc}")

    async def guard(route: Any) -> None:
        if route.request.url.startswith(dashboard.origin):
            await route.continue_()
        else:
            dashboard.external_requests.append(route.request.url)
            await route.abort()

    await page.route("**/*", guard)
    page.on("pageerror", lambda exc: dashboard.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: dashboard.errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    try:
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        if ready is not None:
            await page.wait_for_selector(ready, timeout=timeout * 1000)
        if screenshot_path is not None:
            await page.wait_for_timeout(300)  # let bars and the chart settle
            await dashboard.save(screenshot_path)
    except BaseException:
        await dashboard.close()
        raise
    return dashboard


async def _main(url: str, png: str) -> None:
    async with await open_dashboard(url, png) as dash:
        cards = await dash.page.locator("[data-subscription]").evaluate_all("els => els.map(e => e.dataset.subscription)")
        for subscription in cards:
            print(subscription, await dash.count(subscription, "internal"), await dash.count(subscription, "external"))
        print("screenshot:", png, "errors:", dash.errors or "none", "external requests:", dash.external_requests or "none")


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:6066/",
                      sys.argv[2] if len(sys.argv) > 2 else "artifacts/dashboard.png"))


@asynccontextmanager
async def served_dashboard(reader: Any, access: Any = None) -> AsyncIterator[str]:
    """The web app over ``reader`` (a fake store) on a free loopback port, every check ready; yields
    its URL and stops it after. ``access`` (an ``auth.Access``) turns tokens on; without it every
    request is an admin's."""
    from aiohttp import web

    from streams.http.views import create_web_app
    from tests.fixtures.pipeline import free_port

    async def readiness() -> dict[str, bool]:
        return {"kafka": True, "redis": True}

    runner = web.AppRunner(create_web_app(reader, readiness, interval=0.5, access=access), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()
