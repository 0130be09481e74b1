"""Fix rules: parsing with file/line errors, and each operation on v1 bodies and v2 items."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackguard.recovery.fixes import FixError, apply_fixes, load_fixes, parse_fixes


def test_each_operation_on_a_v1_event() -> None:
    fixes = parse_fixes(
        """
- rename: {from: "Order Completed", to: order_completed}
- move: {from: data.price_str, to: data.price}
- coerce: {field: data.price, to: number}
- map: {field: data.currency, values: {usd: USD}}
- drop: data.debug
- default: {field: data.coupon, value: NONE}
- coerce: {field: data.total, to: integer}
  event: other_event
"""
    )
    body = {
        "name": "Order Completed",
        "data": {"price_str": "9.5", "currency": "usd", "debug": 1, "total": "3"},
    }
    out = apply_fixes(body, "/api/v1/customers/1/events", fixes)
    assert out.body == {
        "name": "order_completed",
        "data": {"price": 9.5, "currency": "USD", "total": "3", "coupon": "NONE"},
    }
    assert len(out.applied) == 6
    assert body["name"] == "Order Completed"  # the input is not changed


def test_rekey_from_csv_rewrites_v1_paths_and_v2_identifiers(tmp_path: Path) -> None:
    (tmp_path / "ids.csv").write_text("email,id\nJane@Example.com,cus_9\n")
    rules = tmp_path / "fixes.yaml"
    rules.write_text("fixes:\n  - rekey: {from: email, csv: ids.csv}\n")
    fixes = load_fixes(rules)
    v1 = apply_fixes({"name": "x"}, "/api/v1/customers/jane%40example.com/events", fixes)
    assert v1.path == "/api/v1/customers/cus_9/events"
    item = {"type": "person", "action": "event", "identifiers": {"email": "jane@example.com"}}
    v2 = apply_fixes(item, "/api/v2/entity", fixes)
    assert v2.body["identifiers"] == {"id": "cus_9"}
    moved = apply_fixes(
        {"action": "event", "attributes": {"a": 1}},
        "/api/v2/entity",
        parse_fixes("- move: {from: data.a, to: data.b}"),
    )
    assert moved.body["attributes"] == {"b": 1}


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("fixes:\n  - explode: 1\n", ":2:5:", "unknown key"),
        ("- coerce: {field: data.x, to: money}\n", ":1:3:", "coerce to"),
        ("- drop: data.x\n  rename: {from: a, to: b}\n", ":1:3:", "exactly one"),
        ("- rekey: {from: email, csv: missing.csv}\n", ":1:3:", "cannot read"),
        ("fixes: [\n", ":2:1:", "invalid YAML"),
        ("other: 1\n", ":1:1:", "fixes"),
    ],
)
def test_malformed_files_report_file_and_line(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(FixError) as info:
        load_fixes(path)
    assert info.value.issues[0].startswith(f"{path}{where}"), info.value.issues
    assert words in info.value.issues[0]
