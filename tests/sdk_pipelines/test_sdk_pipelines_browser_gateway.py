"""The official browser SDK (``@customerio/cdp-analytics-browser``, pinned) in headless Chromium
→ the trackguard gateway → the emulator playing Customer.io's Pipelines API, over loopback.

The page loads the SDK with docs/pipelines.md's snippet, run as written (placeholders filled
in): the settings come from Customer.io's settings CDN (answered here with what it serves: the
write key), and ``apiHost`` points at the gateway, another origin than the page's, so every
call is a cross-origin ``text/plain`` POST under the browser's CORS rules. What arrives at the
emulator is asserted call by call; the defects are read back from the quarantine through the
CLI; and the two ways the SDK resends a call (an answer the page cannot read: a 503, or a
connection lost after the gateway kept the call) end with the call delivered once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_page import PageRun, driver, install_bundle, run_page
from click.testing import CliRunner
from sdk_env import WRITE_KEY

from chromium import MARKS
from outbox_wait import drain
from trackguard.cli import main
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.base import StoreError

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "d2c-plan.yaml"
SETTINGS = f"https://cdp.customer.io/v1/projects/{WRITE_KEY}/settings"
#: What Customer.io's settings CDN serves the page: the source's write key for the bodies.
CDN = {"integrations": {"Customer.io Data Pipelines": {"apiKey": WRITE_KEY}}}
ORDER = {"order_id": "W-1", "total": "49.90", "currency": "USD", "item_count": "2"}
#: A D2C storefront's calls, defects included ([method, ...arguments]).
D2C = [
    ["identify", "cust-7", {"email": " Dana@Example.COM ", "first_name": "Dana"}],
    ["track", "Order Completed", ORDER],  # renamed, money and count converted
    ["track", "order_completed", ORDER],  # the same order again: one order_completed:W-1
    ["track", "checkout_started", {"checkout_id": "K-1"}],  # no cart_id: rejected
    ["track", "order_completed", {"order_id": "W-2", "total": "free", "currency": "USD"}],
    ["page", "Shop", "Pricing", {"path": "/pricing"}],
    ["screen", "Home", {"tab": "feed"}],
    ["group", "acme", {"objectTypeId": "1", "name": "Acme"}],
    ["alias", "cust-7", "guest-9"],
]

pytestmark = MARKS


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return install_bundle()


@dataclass
class Path3:
    """Page → gateway → emulator."""

    emulator: Emulator
    app: Gateway
    gateway: RunningServer
    db: Path

    def delivered(self) -> list[dict[str, Any]]:
        drain(self.db)
        return [c["call"] for c in self.emulator.pipelines.calls_view()]

    def requests(self, route: str) -> dict[int, int]:
        """Answers of ``route`` (``POST /v1/t``) by status."""
        counted = self.app.parts.metrics.requests.items()
        return {status: n for (r, status), n in counted if r == route and n}


@pytest.fixture
def through(tmp_path: Path) -> Iterator[Callable[..., Path3]]:
    made: list[tuple[RunningServer, RunningServer, Emulator]] = []

    def make(plan: Path | None = PLAN) -> Path3:
        emulator = create_emulator("site", "key", write_key=WRITE_KEY)
        upstream = start_in_thread(emulator)
        db = tmp_path / "tg.db"
        options = GatewayOptions(
            plan=plan, db=db, upstream=upstream.url, pipelines_upstream=upstream.url
        )
        auth = AuthConfig(upstream=Credentials("site", "key"), pipelines_key=WRITE_KEY)
        app = create_gateway(options, auth)
        gateway = start_in_thread(app)
        made.append((gateway, upstream, emulator))
        return Path3(emulator, app, gateway, db)

    yield make
    for gateway, upstream, emulator in made:
        gateway.stop()
        upstream.stop()
        emulator.close()


def snippet_script(api: str) -> str:
    """The driver with docs/pipelines.md's browser snippet in it, pointed at ``api``."""
    doc = (ROOT / "docs" / "pipelines.md").read_text()
    start = doc.index("```js\n", doc.index("<!-- browser-snippet")) + len("```js\n")
    code = doc[start : doc.index("```", start)]
    fills = {
        "import { AnalyticsBrowser } from '@customerio/cdp-analytics-browser'\n": "",
        "export const analytics": "const analytics",
        "'YOUR_WRITE_KEY'": json.dumps(WRITE_KEY),
        "'gateway.example.com/v1'": json.dumps(api.removeprefix("http://") + "/v1"),
        "protocol: 'https'": "protocol: 'http'",
    }
    for placeholder, value in fills.items():
        assert code.count(placeholder) == 1, placeholder
        code = code.replace(placeholder, value)
    return driver("browser_gateway_driver.js").replace("/* SNIPPET */", code)


def drive(p: Path3, bundle: bytes, calls: list[list[Any]], **kw: Any) -> PageRun:
    cdn = {SETTINGS: ("application/json", json.dumps(CDN).encode())}
    script = snippet_script(p.gateway.url)
    return run_page(p.gateway.url, bundle, script, [calls], fixed=cdn, **kw)


def posts(requests: list[tuple[str, str, str | None]], path: str) -> int:
    return sum(1 for method, url, _ in requests if method == "POST" and url.endswith(path))


def sent_twice(run: PageRun) -> bool:
    """The page sent its one track call a second time, and that request has ended."""
    return sum(1 for method, url in run.ended if method == "POST" and url.endswith("/v1/t")) == 2


def quarantined(db: Path) -> list[dict[str, Any]]:
    """The quarantine as ``trackguard quarantine list --format json`` prints it."""
    result = CliRunner().invoke(main, ["quarantine", "list", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records


def test_the_docs_snippet_sends_every_call_type_through_the_gateway_fixed_per_the_plan(
    bundle: bytes, through: Callable[..., Path3]
) -> None:
    p = through()
    run = drive(p, bundle, D2C)
    api = p.gateway.url
    assert run.requests == [
        ("GET", run.shop, None),
        ("GET", run.shop + "analytics.js", None),
        ("GET", SETTINGS, None),
        *[("POST", f"{api}/v1/{call[0][0]}", "text/plain") for call in D2C],
    ]
    assert run.console == []  # every answer readable: no CORS error, nothing resent
    ids = run.ids
    got = [
        (c["type"], c["messageId"], c["userId"], c.get("event"), c.get("traits"))
        for c in p.delivered()
    ]
    assert got == [
        ("identify", ids[0], "cust-7", None, {"email": "dana@example.com", "first_name": "Dana"}),
        ("track", ids[1], "cust-7", "order_completed", None),
        # ids[2] is the same order (order_completed:W-1); ids[3] and ids[4] are quarantined
        ("page", ids[5], "cust-7", None, None),
        ("screen", ids[6], "cust-7", None, None),
        ("group", ids[7], "cust-7", None, {"objectTypeId": "1", "name": "Acme"}),
        ("alias", ids[8], "cust-7", None, None),
    ]
    _identify, order, page, screen, group, alias = p.delivered()
    assert order["properties"] == {
        "order_id": "W-1",
        "total": 49.9,
        "currency": "USD",
        "item_count": 2,
    }
    assert (page["name"], page["properties"]["url"]) == ("Pricing", run.shop)
    assert (screen["name"], screen["properties"]) == ("Home", {"tab": "feed"})
    assert (group["groupId"], alias["previousId"]) == ("acme", "guest-9")
    assert {c["context"]["library"]["name"] for c in p.delivered()} == {"analytics.js"}
    assert all("writeKey" not in c for c in p.delivered())
    assert p.app.parts.metrics.duplicates == 1
    assert [(r["path"], r["status"]) for r in p.emulator.log.snapshot()] == [("/v1/batch", 200)]
    records = quarantined(p.db)
    assert [(r["kind"], r["event_name"], r["codes"], r["route"], r["status"]) for r in records] == [
        ("plan", "order_completed", ["property_type"], "POST /v1/t", 200),
        ("plan", "checkout_started", ["property_missing"], "POST /v1/t", 200),
    ]  # most recent first
    assert [json.loads(r["body"])["messageId"] for r in records] == [ids[4], ids[3]]
    assert all(WRITE_KEY not in json.dumps(r) for r in records)
    assert p.requests("POST /v1/t") == {200: 4}  # each answered once: the SDK resent nothing


def test_the_batching_strategy_through_the_gateway_delivers_each_call_once(
    bundle: bytes, through: Callable[..., Path3]
) -> None:
    p = through(None)
    host = p.gateway.url.removeprefix("http://")
    script = driver("browser_driver.js")
    run = run_page(p.gateway.url, bundle, script, [WRITE_KEY, f"{host}/v1", True])
    assert (posts(run.requests, "/v1/b"), run.console) == (1, [])
    delivered = p.delivered()
    assert [c["messageId"] for c in delivered] == run.ids
    assert [c["type"] for c in delivered] == [
        "identify",
        "track",
        "page",
        "screen",
        "group",
        "alias",
    ]
    assert p.requests("POST /v1/b") == {200: 1}


def test_a_503_the_page_cannot_read_is_resent_by_the_sdk_and_delivered_once(
    bundle: bytes, through: Callable[..., Path3], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = through()
    store = p.app.parts.store
    healthy = store.commit

    def full(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, "commit", healthy)  # the first commit fails, then all pass
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "commit", full)
    run = drive(p, bundle, [D2C[1]], settled=sent_twice)
    (order,) = p.delivered()  # waits for delivery, so the gateway has counted both answers
    assert (order["messageId"], order["event"]) == (run.ids[0], "order_completed")
    assert p.requests("POST /v1/t") == {503: 1, 200: 1}
    api = p.gateway.url
    assert run.console == [
        ("error", f"Access to fetch at '{api}/v1/t' from origin '{run.shop[:-6]}' has been "
                  "blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present "
                  "on the requested resource."),
        ("error", "Failed to load resource: net::ERR_FAILED"),
    ]  # fmt: skip


def test_an_answer_lost_after_the_gateway_kept_the_call_is_resent_and_delivered_once(
    bundle: bytes, through: Callable[..., Path3]
) -> None:
    p = through()
    lost: list[int] = []

    def lose_the_first_answer(route: Any) -> None:
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().status)  # the gateway answers (and keeps the call) ...
        route.abort("connectionreset")  # ... but the page never gets the answer

    run = drive(p, bundle, [D2C[1]], on_api=lose_the_first_answer, settled=sent_twice)
    assert run.console == [("error", "Failed to load resource: net::ERR_CONNECTION_RESET")]
    assert lost == [200]
    (order,) = p.delivered()  # waits for delivery, so the gateway has counted both answers
    assert order["messageId"] == run.ids[0]
    assert p.requests("POST /v1/t") == {200: 2}
    assert p.app.parts.metrics.duplicates == 1
    assert p.emulator.pipelines.counts()["pipelines_duplicates"] == 0
