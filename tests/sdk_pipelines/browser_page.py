"""A shop page in headless Chromium that runs the official browser SDK
(``@customerio/cdp-analytics-browser``, pinned with its lock file in ``package.json``).

The page and the SDK's UMD bundle are served by Playwright's router from
``http://localhost:<port>/shop/``, while the API is reached at ``http://127.0.0.1:<port>``: a
different origin, so every call is a real cross-origin request under the browser's CORS rules.
Every request the page makes is recorded; the API's go through ``on_api`` (by default to the
server, unchanged), extra fixed answers (such as the settings CDN's) come from ``fixed``, and
anything else is refused and shows in ``requests``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromium import CHROMIUM, FLAGS
from npm_pinned import npm_ci

HERE = Path(__file__).resolve().parent
PACKAGE = "@customerio/cdp-analytics-browser"
#: Chromium's Local Network Access checks ask the user before a page may reach a loopback
#: address; a headless test cannot answer, so they are off.
ARGS = [
    *FLAGS,
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
    "PrivateNetworkAccessRespectPreflightResults",
]
#: How long to wait for requests the SDK sends after its calls resolved (its retries).
SETTLE_DEADLINE = 30.0


@dataclass
class PageRun:
    """What a page run returned and saw."""

    ids: Any
    shop: str
    #: (method, url, content type) of every request the page made, in order.
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: (method, url) of every request that ended, answered or failed, in order.
    ended: list[tuple[str, str]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)


def install_bundle() -> bytes:
    """The pinned SDK's UMD bundle (``npm ci`` first if needed)."""
    npm_ci(HERE, PACKAGE)
    return (HERE / "node_modules" / PACKAGE / "dist" / "umd" / "index.js").read_bytes()


def driver(name: str) -> str:
    """A driver file's function expression (what follows its leading comment)."""
    script = (HERE / name).read_text()
    return script[script.index("async (") :]


def run_page(
    api: str,
    bundle: bytes,
    script: str,
    args: list[Any],
    *,
    on_api: Callable[[Any], None] | None = None,
    fixed: dict[str, tuple[str, bytes]] | None = None,
    settled: Callable[[PageRun], bool] | None = None,
) -> PageRun:
    """Load the shop page, evaluate ``script`` with ``args`` in it; with ``settled``, keep the
    page open until the run satisfies it (the SDK retries in the background)."""
    from playwright.sync_api import Route, sync_playwright

    shop = f"http://localhost:{api.rpartition(':')[2]}/shop/"
    html = "<html><head><title>Shop</title><script src='analytics.js'></script></head></html>"
    pages = {shop: ("text/html", html.encode()), shop + "analytics.js": ("text/javascript", bundle)}
    pages |= fixed or {}
    run = PageRun(ids=None, shop=shop)

    def route(r: Route) -> None:
        req = r.request
        run.requests.append((req.method, req.url, req.headers.get("content-type")))
        if req.url.startswith(api + "/v1/"):
            (on_api or Route.continue_)(r)
        elif req.url in pages:
            kind, body = pages[req.url]
            r.fulfill(status=200, content_type=kind, body=body)
        else:
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: run.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: run.console.append(("pageerror", str(e))))
            page.route("**/*", route)
            for done in ("requestfinished", "requestfailed"):
                page.on(done, lambda req: run.ended.append((req.method, req.url)))
            page.goto(shop)
            run.ids = page.evaluate(script, args)
            deadline = time.monotonic() + SETTLE_DEADLINE
            while settled is not None and not settled(run):
                assert time.monotonic() < deadline, f"the SDK did not settle: {run.requests}"
                page.wait_for_timeout(50)
        finally:
            browser.close()
    return run
