"""The console's pages over a store the gateway filled: what each shows, exactly, and safely."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest
from console_env import BROKEN, MINUTES, SHOPPERS, T0, TOKEN, XSS, ConsoleFactory, Filled

from trackguard.console.data import series


def _get(url: str, path: str, **kw: object) -> httpx.Response:
    return httpx.get(url + path, timeout=10, **kw)  # type: ignore[arg-type]


def _rows(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", body, flags=re.S)[1:]  # without the header row


def test_the_store_holds_what_the_traffic_should_leave(filled: Filled) -> None:
    conn = sqlite3.connect(filled.db)
    kinds = dict(conn.execute("SELECT kind, count(*) FROM quarantine GROUP BY kind").fetchall())
    conn.close()
    # 3 broken minutes x 6 orders and 3 orders with a hostile id, rejected by the plan; 3
    # bodies that are not JSON and 3 names over 100 bytes, refused by the contract.
    assert kinds == {"plan": len(BROKEN) * SHOPPERS + 3, "contract": 6}
    assert len(filled.broken_orders) == len(BROKEN) * SHOPPERS


def test_overview_shows_backlog_alerts_and_every_planned_event(
    any_console: ConsoleFactory,
) -> None:
    server = any_console()
    page = _get(server.url, "/")
    assert page.status_code == 200
    html = page.text
    assert '<div class="label">outbox backlog</div><div class="value">0</div>' in html
    assert '<div class="label">quarantined</div><div class="value">27</div>' in html
    alerts = _rows(html, "alerts")
    assert len(alerts) == 1
    assert alerts[0].startswith('<tr class="state-resolved"><td>orders-invalid-rate</td>')
    assert "<td>0.2</td>" in alerts[0]
    charted = re.findall(r'<figure class="chart" data-event="([^"]*)">', html)
    assert charted == [
        "product_viewed",
        "added_to_cart",
        "cart_updated",
        "checkout_started",
        "order_completed",
        "wishlist_added",
        "(unknown)",
    ]
    assert "<script>alert" not in html


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_invalid_rate_series_shows_the_broken_release(
    filled: Filled, kind: str, request: pytest.FixtureRequest
) -> None:
    store = str(filled.db) if kind == "sqlite" else request.getfixturevalue("filled_pg")
    data = series(store, "1h", filled.end, ["order_completed", "product_viewed"])
    xs = data["x"]
    rates = data["events"]["order_completed"]["invalid_rate"]
    by_minute = {(xs[i] - int(T0)) // 60: r for i, r in enumerate(rates) if r}
    # Every order of the broken release is rejected; minutes 0, 10 and 20 also carry one
    # order with a hostile id that the plan rejects (1 of 7 orders).
    assert by_minute == {0: 0.1429, 10: 0.1429, **dict.fromkeys(BROKEN, 1.0)}
    assert sum(data["events"]["order_completed"]["requests"]) == MINUTES * SHOPPERS + 3
    assert not any(data["events"]["product_viewed"]["invalid_rate"])


def test_series_endpoint_answers_json_with_thresholds(any_console: ConsoleFactory) -> None:
    server = any_console()
    answer = _get(server.url, "/api/series?range=1h").json()
    assert answer["bucket"] == 60
    assert len(answer["x"]) == 60
    assert answer["thresholds"] == {"order_completed": [["orders-invalid-rate", 0.2]]}


def test_quarantine_list_filters_and_pages_by_keyset(
    any_console: ConsoleFactory, filled: Filled
) -> None:
    server = any_console()
    assert len(_rows(_get(server.url, "/quarantine").text, "records")) == 27
    assert len(_rows(_get(server.url, "/quarantine?kind=plan").text, "records")) == 21
    coded = _get(server.url, "/quarantine?code=invalid_json").text
    assert len(_rows(coded, "records")) == 3
    assert 'id="next-page"' not in coded
    long_names = _get(server.url, "/quarantine?code=event_name_too_long").text
    assert len(_rows(long_names, "records")) == 3
    assert long_names.count("&lt;script&gt;alert(1)&lt;/script&gt;xxx") == 3
    assert "<script>alert" not in long_names
    since = _get(server.url, f"/quarantine?kind=plan&since={T0 + 21 * 60:.0f}").text
    assert len(_rows(since, "records")) == 12  # minutes 21 and 22
    # The CLI's --since forms: a UTC date-time, one with an offset, and a time ago.
    ago = f"{filled.end - (T0 + 21 * 60):.0f}s"
    for form in ("2026-11-04T12:21", "2026-11-04T13:21:00%2B01:00", ago):
        page = _get(server.url, f"/quarantine?kind=plan&since={form}").text
        assert len(_rows(page, "records")) == 12, form
    unread = _get(server.url, "/quarantine?kind=plan&since=yesterday").text
    assert len(_rows(unread, "records")) == 21  # a time it cannot read filters nothing


def test_quarantine_pages_past_fifty_records(console: ConsoleFactory, filled: Filled) -> None:
    server = console()
    # Double the console's copy twice (27 -> 108 records) so the list needs three pages.
    path = _console_db(server)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
        " plan_version, status, findings, event_name, codes, batch_index, upstream_error,"
        " state, outbox_seq, route) SELECT received_at + 1, kind, method, path, headers, body,"
        " source, plan_version, status, findings, event_name, codes, batch_index,"
        " upstream_error, state, outbox_seq, route FROM quarantine"
    )
    conn.execute(
        "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
        " plan_version, status, findings, event_name, codes, batch_index, upstream_error,"
        " state, outbox_seq, route) SELECT received_at + 2, kind, method, path, headers, body,"
        " source, plan_version, status, findings, event_name, codes, batch_index,"
        " upstream_error, state, outbox_seq, route FROM quarantine"
    )
    conn.commit()
    total = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    conn.close()
    assert total == 108
    first = _get(server.url, "/quarantine").text
    ids_1 = [int(i) for i in re.findall(r'<a href="/quarantine/(\d+)">', first)]
    assert len(ids_1) == 50
    following = re.search(r'<a href="/quarantine\?([^"]*)" id="next-page">', first)
    assert following is not None
    second = _get(server.url, "/quarantine?" + following.group(1).replace("&amp;", "&")).text
    ids_2 = [int(i) for i in re.findall(r'<a href="/quarantine/(\d+)">', second)]
    assert len(ids_2) == 50
    third_link = re.search(r'<a href="/quarantine\?([^"]*)" id="next-page">', second)
    assert third_link is not None
    third = _get(server.url, "/quarantine?" + third_link.group(1).replace("&amp;", "&")).text
    ids_3 = [int(i) for i in re.findall(r'<a href="/quarantine/(\d+)">', third)]
    assert len(ids_3) == 8
    assert 'id="next-page"' not in third
    assert ids_1 + ids_2 + ids_3 == sorted(range(1, 109), reverse=True)


def _console_db(server: object) -> str:
    app = server._server.config.app  # type: ignore[attr-defined]
    return str(app.config.store)


def test_record_page_shows_body_findings_and_todays_verdict(console: ConsoleFactory) -> None:
    server = console()
    path = _console_db(server)
    conn = sqlite3.connect(path)
    plan_id = conn.execute(
        "SELECT min(id) FROM quarantine WHERE kind = 'plan' AND CAST(body AS TEXT) LIKE '%orderId%'"
    ).fetchone()[0]
    bad_json = conn.execute("SELECT min(id) FROM quarantine WHERE kind = 'contract'").fetchone()[0]
    conn.close()
    html = _get(server.url, f"/quarantine/{plan_id}").text
    assert "<code>property_missing</code>" in html
    assert "orderId" in html
    assert "[redacted]" in html
    assert "Basic " not in html
    assert 'id="today">Outcome <strong>rejected</strong>' in html
    contract = _get(server.url, f"/quarantine/{bad_json}").text
    assert "<code>invalid_json</code>" in contract
    assert "contract error." in contract
    assert "{&#34;name&#34;: &#34;order_completed&#34;, &#34;data&#34;: " in contract


def test_pages_escape_what_clients_sent(console: ConsoleFactory) -> None:
    server = console()
    conn = sqlite3.connect(_console_db(server))
    hostile = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM quarantine WHERE CAST(body AS TEXT) LIKE '%<script>%'"
        )
    ]
    conn.close()
    assert len(hostile) == 6
    pages = ["/", "/quarantine", "/plan", "/delivery", "/quarantine?event=" + XSS]
    pages += [f"/quarantine/{i}" for i in hostile]
    for path in pages:
        html = _get(server.url, path).text
        assert "<script>alert" not in html, path
    record = _get(server.url, f"/quarantine/{hostile[0]}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in record
    csp = _get(server.url, "/").headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_plan_page_counts_traffic_against_each_event(any_console: ConsoleFactory) -> None:
    server = any_console()
    html = _get(server.url, "/plan").text
    rows = {}
    for row in _rows(html, "plan-events"):
        name = re.search(r'<td class="event">([^<]*)', row)
        assert name is not None
        rows[name.group(1)] = row
    assert list(rows) == [
        "product_viewed",
        "added_to_cart",
        "cart_updated",
        "checkout_started",
        "order_completed",
        "wishlist_added",
    ]
    orders = rows["order_completed"]
    cells = re.findall(r"<td>([^<]*)</td>", orders)
    assert cells[:4] == ["yes", "183", "2026-11-04 12:29:00 UTC", "21"]
    assert "<td>30</td>" in orders  # "Order Completed" renamed by the naming fix
    assert "<code>property_missing</code> (21)" in orders
    assert 'class="never-seen"' in rows["cart_updated"]
    assert rows["wishlist_added"].startswith('<tr class="unplanned">')


def test_delivery_page_shows_nothing_waiting_after_the_drain(
    any_console: ConsoleFactory,
) -> None:
    server = any_console()
    html = _get(server.url, "/delivery").text
    assert '<div class="value" id="pending">0</div>' in html
    assert "Nothing waiting." in html


def test_a_token_console_asks_for_a_login(console: ConsoleFactory) -> None:
    server = console(token=TOKEN)
    first = _get(server.url, "/quarantine", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/quarantine"
    wrong = httpx.post(server.url + "/login", data={"token": "nope"}, timeout=10)
    assert wrong.status_code == 401
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=True) as client:
        ok = client.post("/login", data={"token": TOKEN, "next": "/quarantine"})
        assert ok.status_code == 200
        assert str(ok.url).endswith("/quarantine")
        cookie = ok.history[0].headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/plan").status_code == 200


def test_login_never_redirects_off_site(console: ConsoleFactory) -> None:
    server = console(token=TOKEN)
    answer = httpx.post(
        server.url + "/login",
        data={"token": TOKEN, "next": "//evil.example/"},
        timeout=10,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_an_action_without_the_csrf_token_is_refused(console: ConsoleFactory) -> None:
    server = console(token=TOKEN, allow_replay=True)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/login", data={"token": TOKEN})
        missing = client.post("/replay", data={"event": "order_completed"})
        assert missing.status_code == 403
        assert missing.text == "missing or wrong CSRF token\n"
        forged = client.post("/replay", data={"csrf": "forged", "event": "order_completed"})
        assert forged.status_code == 403
        page = client.get("/replay").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        cross = client.post(
            "/replay",
            data={"csrf": csrf, "event": "nothing-matches"},
            headers={"origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        assert cross.text == "cross-site request refused\n"


def test_a_read_only_console_refuses_replay(console: ConsoleFactory) -> None:
    server = console(token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/login", data={"token": TOKEN})
        page = client.get("/replay").text
        assert 'id="read-only"' in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        refused = client.post("/replay", data={"csrf": csrf, "event": "order_completed"})
        assert refused.status_code == 403
        assert refused.text == "replay is off: start the console with --allow-replay\n"


def test_static_assets_ship_in_the_package(any_console: ConsoleFactory) -> None:
    server = any_console()
    js = _get(server.url, "/static/uplot.min.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert len(js.content) > 40_000
    assert _get(server.url, "/static/../../etc/passwd").status_code == 404
    assert _get(server.url, "/nope").status_code == 404
    assert _get(server.url, "/quarantine/999999").status_code == 404
    assert _get(server.url, "/quarantine/abc").status_code == 404


def test_a_sparse_filter_stops_at_its_scan_budget_and_goes_on(
    console: ConsoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackguard.console import data

    monkeypatch.setattr(data, "SCAN_IDS", 8)  # scan 8 ids per page, 2 at a time
    server = console()
    found: list[int] = []
    query = "code=invalid_json"
    pages = 0
    while True:
        html = _get(server.url, "/quarantine?" + query).text
        pages += 1
        found += [int(i) for i in re.findall(r'<a href="/quarantine/(\d+)">', html)]
        following = re.search(r'<a href="/quarantine\?([^"]*)" id="next-page">', html)
        if following is None:
            break
        assert 'id="scan-budget"' in html
        query = following.group(1).replace("&amp;", "&")
    conn = sqlite3.connect(_console_db(server))
    expected = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM quarantine WHERE codes LIKE '%invalid_json%' ORDER BY id DESC"
        )
    ]
    conn.close()
    assert found == expected
    assert len(found) == 3
    assert pages == 4  # 27 ids, 8 per page


def test_the_overview_refreshes_by_itself(any_console: ConsoleFactory) -> None:
    server = any_console()
    html = _get(server.url, "/").text
    assert '<meta http-equiv="refresh" content="60">' in html
    assert 'data-refresh="30"' in html
    assert '<meta http-equiv="refresh"' not in _get(server.url, "/quarantine").text
