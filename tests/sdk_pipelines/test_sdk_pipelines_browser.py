"""The official Pipelines browser SDK, ``@customerio/cdp-analytics-browser`` (pinned with its
lock file in ``package.json``), unmodified, in a headless Chromium, talks to the emulator.

The page and the SDK's UMD bundle are served by Playwright's router from a loopback origin;
every other request the page makes is refused and must not happen (the SDK fetches no settings:
``cdnSettings`` carries what the settings CDN would serve, including the write key the SDK puts
in each body). ``browser_driver.js`` makes every call type once. What is asserted
(``shared/reference/customerio-pipelines-api.md`` §1.2, §1.4, §1.5): one ``text/plain`` POST
per call to ``/v1/<first letter of the type>``, or one ``/v1/b`` batch with the batching
strategy; the key in the body, not in a header; every call kept with the SDK's messageId and
its page context; the key removed from what is kept and redacted in the request log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser_page import PageRun, driver, install_bundle, run_page
from sdk_env import WRITE_KEY

from chromium import MARKS
from trackguard.emulator.app import Emulator
from trackguard.http.runner import RunningServer

TYPES = ["identify", "track", "page", "screen", "group", "alias"]

pytestmark = MARKS


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return install_bundle()


def drive(server: RunningServer, bundle: bytes, *, batching: bool) -> PageRun:
    """Drive ``browser_driver.js`` against ``server``; its messageIds, console and requests."""
    host = server.url.removeprefix("http://")
    args = [WRITE_KEY, f"{host}/v1", batching]
    return run_page(server.url, bundle, driver("browser_driver.js"), args)


def _check_calls(emulator: Emulator, run: PageRun) -> list[dict[str, Any]]:
    kept = emulator.pipelines.calls_view()
    calls = [c["call"] for c in kept]
    assert [c["type"] for c in calls] == TYPES
    assert [c["messageId"] for c in calls] == run.ids
    assert all("writeKey" not in c for c in calls)
    assert {c["context"]["library"]["name"] for c in calls} == {"analytics.js"}
    assert len({c["anonymousId"] for c in calls}) == 1
    identify, track, page, screen, group, alias = calls
    assert (identify["userId"], identify["traits"]) == (
        "web-1",
        {"email": "wen@example.com", "plan": "pro"},
    )
    assert (track["event"], track["properties"]) == (
        "Order Completed",
        {"order_id": "W-1", "total": 49.9},
    )
    assert (page["name"], page["category"], page["properties"]["url"]) == (
        "Pricing",
        "Shop",
        run.shop,
    )
    assert (screen["name"], screen["properties"]) == ("Home", {"tab": "feed"})
    assert (group["groupId"], group["traits"]) == ("acme", {"objectTypeId": "1", "name": "Acme"})
    assert (alias["userId"], alias["previousId"]) == ("web-1", "web-old")
    assert emulator.pipelines.dropped_view() == []
    assert run.console == []
    return kept


def test_every_call_type_arrives_on_its_letter_path(
    bundle: bytes, served: tuple[Emulator, RunningServer]
) -> None:
    emulator, server = served
    run = drive(server, bundle, batching=False)
    kept = _check_calls(emulator, run)
    letters = [f"/v1/{t[0]}" for t in TYPES]
    assert [c["path"] for c in kept] == letters
    assert run.requests[2:] == [("POST", server.url + path, "text/plain") for path in letters]
    log = emulator.log.snapshot()
    assert [(r["path"], r["status"], "authorization" in r["headers"]) for r in log] == [
        (path, 200, False) for path in letters
    ]
    assert {json.loads(r["body"])["writeKey"] for r in log} == {"[redacted]"}


def test_the_batching_strategy_sends_one_batch(
    bundle: bytes, served: tuple[Emulator, RunningServer]
) -> None:
    emulator, server = served
    run = drive(server, bundle, batching=True)
    kept = _check_calls(emulator, run)
    assert [(c["path"], c["batch_index"]) for c in kept] == [("/v1/b", i) for i in range(6)]
    assert run.requests[2:] == [("POST", server.url + "/v1/b", "text/plain")]
    (record,) = emulator.log.snapshot()
    sent = json.loads(record["body"])
    assert sent["writeKey"] == "[redacted]"
    assert {item["writeKey"] for item in sent["batch"]} == {"[redacted]"}
