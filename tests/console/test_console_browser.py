"""The console in a real headless Chromium: every page, filters, paging, a replay, safety.

Screenshots of each page are written to the test's folder; with
``TRACKGUARD_UPDATE_SCREENSHOTS=1`` they also replace the ones in ``docs/images/`` that
``docs/console.md`` shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_env import BROKEN, REPO, SHOPPERS, T0, TOKEN, XSS, ConsoleFactory, Filled
from test_console_replay import FIX, _deliver, _order, _store_of

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
DOCS_IMAGES = REPO / "docs" / "images"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium package at /usr/bin/chromium"
    ),
]


class Browser:
    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.messages: list[tuple[str, str]] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.messages.append(("pageerror", str(e))))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None
        return response

    def shot(self, name: str) -> None:
        target = self.shots / f"console-{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        if os.environ.get("TRACKGUARD_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, DOCS_IMAGES / target.name)

    def errors(self) -> list[tuple[str, str]]:
        return [m for m in self.messages if m[0] in ("error", "pageerror")]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield lambda base: Browser(
                chromium.new_context(viewport={"width": 1360, "height": 900}).new_page(),
                base,
                tmp_path,
            )
        finally:
            chromium.close()


def _login(b: Browser) -> None:
    b.go("/login")
    b.page.fill("input[name=token]", TOKEN)
    b.page.click("form.login button")
    b.page.wait_for_url(b.base + "/")


def test_every_page_renders_without_errors(
    console: ConsoleFactory, browser: Any, filled: Filled
) -> None:
    b = browser(console(token=TOKEN, allow_replay=True).url)
    _login(b)
    b.go("/?range=1h")
    b.page.wait_for_selector("#charts[data-drawn='7']")
    orders = b.page.locator("figure.chart[data-event='order_completed']")
    assert orders.get_attribute("data-max-rate") == "1"
    assert orders.get_attribute("data-requests") == str(30 * SHOPPERS + 3)
    views = b.page.locator("figure.chart[data-event='product_viewed']")
    assert views.get_attribute("data-max-rate") == "0"
    assert orders.locator("canvas").count() == 1
    b.shot("overview")
    for path, name, heading in (
        ("/quarantine", "quarantine", "Quarantine"),
        ("/plan", "plan", "Plan"),
        ("/delivery", "delivery", "Delivery"),
        ("/replay", "replay", "Replay"),
    ):
        assert b.go(path).status == 200
        assert b.page.locator("h1").first.inner_text().startswith(heading)
        b.shot(name)
    first = b.page.goto(b.base + "/quarantine?code=property_missing")
    assert first is not None
    b.page.locator("#records a").first.click()
    assert b.page.locator("h1").inner_text().startswith("Record ")
    b.shot("record")
    assert b.errors() == []
    assert b.dialogs == []


def test_filters_and_paging_in_the_browser(console: ConsoleFactory, browser: Any) -> None:
    b = browser(console().url)
    b.go("/quarantine")
    assert b.page.locator("#records tbody tr").count() == 27
    b.page.fill("input[name=code]", "invalid_json")
    b.page.click("#filters button")
    b.page.wait_for_url("**code=invalid_json**")
    assert b.page.locator("#records tbody tr").count() == 3
    b.page.fill("input[name=code]", "")
    b.page.select_option("select[name=kind]", "plan")
    b.page.fill("input[name=since]", str(int(T0 + 20 * 60)))
    b.page.click("#filters button")
    b.page.wait_for_url("**kind=plan**")
    assert b.page.locator("#records tbody tr").count() == len(BROKEN) * SHOPPERS + 1
    assert b.errors() == []


def test_hostile_names_and_bodies_stay_text(console: ConsoleFactory, browser: Any) -> None:
    b = browser(console().url)
    b.go("/quarantine?code=event_name_too_long")
    cells = b.page.locator("#records td.event").all_inner_texts()
    assert cells == [XSS + "x" * 100] * 3
    b.page.locator("#records a").first.click()
    assert XSS in b.page.locator("td.event").inner_text()
    b.go("/quarantine?kind=plan&source=default&code=property_unplanned")
    b.page.locator("#records a").last.click()
    assert XSS in b.page.locator("#body").inner_text()
    assert b.dialogs == []
    assert b.page.locator("script:not([src])").count() == 0
    assert b.errors() == []


def test_an_action_without_the_csrf_token_is_refused_in_the_browser(
    console: ConsoleFactory, browser: Any
) -> None:
    b = browser(console(token=TOKEN, allow_replay=True).url)
    _login(b)
    status = b.page.evaluate(
        """async () => {
            const r = await fetch('/replay', {method: 'POST',
                headers: {'content-type': 'application/x-www-form-urlencoded'},
                body: 'event=order_completed'});
            return [r.status, await r.text()];
        }"""
    )
    assert status == [403, "missing or wrong CSRF token\n"]


def test_a_replay_through_the_ui_delivers_once(
    console: ConsoleFactory, browser: Any, filled: Filled
) -> None:
    server = console(token=TOKEN, allow_replay=True)
    b = browser(server.url)
    _login(b)
    b.go("/replay")
    b.page.fill("#replay-filters input[name=event]", "order_completed")
    b.page.fill("#replay-filters input[name=since]", str(int(T0 + 20 * 60)))
    b.page.fill("#replay-filters textarea[name=fixes]", FIX)
    b.page.click("#replay-filters button")
    b.page.wait_for_selector("#replay-summary")
    assert b.page.locator("#replay-summary").inner_text() == (
        "Would replay: 18 sent, 0 already sent (dropped), 1 still invalid"
    )
    b.shot("replay-preview")
    b.page.click("#confirm button")
    b.page.wait_for_selector("#replay-summary")
    assert b.page.locator("#replay-summary").inner_text().startswith("Replayed: 18 sent")
    broken = set(filled.broken_orders)
    assert _deliver(_store_of(server), filled) == 2 * len(broken)
    b.go("/replay")
    b.page.fill("#replay-filters input[name=event]", "order_completed")
    b.page.fill("#replay-filters textarea[name=fixes]", FIX)
    b.page.click("#replay-filters button")
    b.page.wait_for_selector("#replay-summary")
    b.page.click("#confirm button")
    b.page.wait_for_selector("#replay-summary")
    assert b.page.locator("#replay-summary").inner_text().startswith("Replayed: 0 sent")
    assert _deliver(_store_of(server), filled) == 0
    arrived = [_order(e) for e in filled.events(name="order_completed")]
    assert sorted(o for o in arrived if o in broken) == sorted(broken)
    assert b.errors() == []
