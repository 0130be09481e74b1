"""Replay through the console: the preview, the confirm, delivery to the emulator once."""

from __future__ import annotations

import re
import sqlite3

import httpx
from console_env import API_KEY, BROKEN, SHOPPERS, SITE_ID, T0, TOKEN, ConsoleFactory, Filled

from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.store.sqlite import open_store

FIX = "- move: {from: data.orderId, to: data.order_id}"


def _store_of(server: object) -> str:
    return str(server._server.config.app.config.store)  # type: ignore[attr-defined]


def _deliver(db: str, filled: Filled) -> int:
    store = open_store(db)
    transport = HttpxTransport(filled.upstream.url, SITE_ID, API_KEY)
    try:
        worker = DeliveryWorker(store, transport, rate=1000.0)
        delivered = 0
        while store.outbox_stats().pending:
            delivered += worker.run_once().delivered
        return delivered
    finally:
        transport.close()
        store.close()


def _login(client: httpx.Client) -> str:
    client.post("/login", data={"token": TOKEN})
    page = client.get("/replay").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_a_replay_with_a_fix_rule_delivers_each_order_once(
    console: ConsoleFactory, filled: Filled
) -> None:
    server = console(token=TOKEN, allow_replay=True)
    broken = set(filled.broken_orders)
    assert not [e for e in filled.events(name="order_completed") if _order(e) in broken]
    # From minute 20 on: the broken release's 18 orders, and one order with no id at all.
    query = {"event": "order_completed", "since": str(int(T0 + 20 * 60)), "fixes": FIX}
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as client:
        csrf = _login(client)
        preview = client.get("/replay", params={**query, "preview": "1"}).text
        assert (
            f'id="replay-summary">Would replay: {len(broken)} sent, 0 already sent (dropped),'
            " 1 still invalid</h2>" in preview
        )
        assert preview.count('<tr class="outcome-replayed">') == len(BROKEN) * SHOPPERS
        assert "&#34;order_id&#34;:&#34;A-20-0&#34;" in preview
        until = re.search(r'name="until" value="([^"]+)"', preview)
        assert until is not None
        done = client.post(
            "/replay",
            data={
                "csrf": csrf,
                "event": "order_completed",
                "since": query["since"],
                "until": until.group(1),
                "fixes": FIX,
            },
        ).text
        assert f'id="replay-summary">Replayed: {len(broken)} sent' in done
        again = client.post(
            "/replay",
            data={"csrf": csrf, "event": "order_completed", "since": query["since"], "fixes": FIX},
        ).text
        # The fixed records are replayed now; only the order with no id at all is left.
        assert (
            'id="replay-summary">Replayed: 0 sent, 0 already sent (dropped), 1 still invalid'
            in again
        )
    # Each order, and the profile update its derived attributes (lifetime_value, ...) queue.
    assert _deliver(_store_of(server), filled) == 2 * len(broken)
    arrived = [_order(e) for e in filled.events(name="order_completed")]
    assert sorted(o for o in arrived if o in broken) == sorted(broken)
    conn = sqlite3.connect(_store_of(server))
    states = dict(conn.execute("SELECT state, count(*) FROM quarantine GROUP BY state"))
    conn.close()
    assert states == {"replayed": len(broken), "still_invalid": 1, "quarantined": 8}


def _order(event: dict[str, object]) -> object:
    data = event.get("data")
    return data.get("order_id") if isinstance(data, dict) else None


def test_fix_rules_may_not_read_files_from_the_console(console: ConsoleFactory) -> None:
    server = console(token=TOKEN, allow_replay=True)
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as client:
        _login(client)
        page = client.get(
            "/replay",
            params={"preview": "1", "fixes": "- rekey: {from: email, csv: /etc/passwd}"},
        ).text
    assert (
        'id="replay-error">fix rules: rekey from a CSV file is not available in the console;'
        " use `using: identity_map` or trackguard replay --fixes</p>" in page
    )


def test_a_bad_fix_rule_is_reported_not_raised(console: ConsoleFactory) -> None:
    server = console(token=TOKEN, allow_replay=True)
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as client:
        _login(client)
        page = client.get("/replay", params={"preview": "1", "fixes": "- explode: x"}).text
    error = re.search(r'id="replay-error">([^<]*)</p>', page)
    assert error is not None
    assert error.group(1).startswith("fix rules:1:")
