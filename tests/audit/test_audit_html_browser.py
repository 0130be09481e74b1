"""The HTML report in a real headless Chromium: renders, charts have size, no console errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit_known_log import T0, write_known_log

from chromium import CHROMIUM, FLAGS, MARKS
from trackguard.audit import audit
from trackguard.audit.report_html import TITLE, render_html

pytestmark = MARKS


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = audit([write_known_log(tmp_path / "requests.jsonl")], now=T0)
    page_path = tmp_path / "report.html"
    page_path.write_text(render_html(report), encoding="utf-8")
    messages: list[Any] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: messages.append((m.type, m.text)))
            page.on("pageerror", lambda e: messages.append(("pageerror", str(e))))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            assert page.title() == TITLE
            for chart in ("chart-volume", "chart-invalid", "chart-types", "chart-timestamps"):
                box = page.locator(f"svg#{chart}").bounding_box()
                assert box is not None, chart
                assert box["width"] > 0 and box["height"] > 0, chart
            assert page.locator("svg#chart-volume polyline").count() == 8
            rows = page.locator("#drift-clusters tbody tr")
            assert rows.count() == 1
            assert rows.locator("td.canonical").inner_text() == "order_completed"
            assert rows.locator(".variant").all_inner_texts() == [
                "Order Completed",
                "orderCompleted",
                "order_complete",
                "order_completed",
            ]
            assert page.locator("#findings tbody tr").count() == len(report.findings)
        finally:
            browser.close()
    assert [m for m in messages if m[0] in ("error", "pageerror")] == []
    assert messages == []
    assert requests == [page_path.as_uri()]  # self-contained: nothing else is fetched
