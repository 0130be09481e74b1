"""``trackguard.check.inputs``: where each HAR entry was read."""

from __future__ import annotations

import json
from pathlib import Path

from trackguard.check.inputs import Located, Skipped, Unreadable, iter_requests


def _entry(url: str, body: str | None = '{"name":"x"}') -> dict[str, object]:
    request: dict[str, object] = {"method": "POST", "url": url, "headers": []}
    if body is not None:
        request["postData"] = {"mimeType": "application/json", "text": body}
    return {"startedDateTime": "2026-01-01T00:00:00Z", "request": request}


def test_har_items_carry_their_entry_index(tmp_path: Path) -> None:
    entries = [
        _entry("https://shop.example/", None),
        _entry("https://track.customer.io/api/v1/customers/1/events"),
        {"request": {}},
        _entry("https://track.customer.io/api/v1/customers/2/events", None),
    ]
    path = tmp_path / "capture.har"
    path.write_text(json.dumps({"log": {"entries": entries}}))
    items = list(iter_requests([path]))
    assert [type(i) for i in items] == [Skipped, Located, Unreadable, Unreadable]
    assert [i.line for i in items] == [0, 1, 2, 3]
    located, broken, bodiless = items[1], items[2], items[3]
    assert isinstance(located, Located) and located.where == f"{path}:entry[1]"
    assert isinstance(broken, Unreadable) and broken.where == f"{path}:entry[2]"
    assert bodiless == Unreadable(
        str(path), 3, "HAR entry has no request body (postData)", entry=True
    )
    assert bodiless.position() == {"file": str(path), "entry": 3}


def test_an_unreadable_har_file_is_one_item_without_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "broken.har"
    path.write_text('{"log": {"entries": 3}}')
    (item,) = iter_requests([path])
    assert isinstance(item, Unreadable)
    assert (item.line, item.entry, item.where) == (0, False, f"{path}:0")
    assert item.reason.startswith("not a readable HAR file: ")
