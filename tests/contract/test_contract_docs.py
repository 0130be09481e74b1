"""The docs cannot drift from the code.

``docs/violations.md`` must list exactly the codes the source can emit, each with the right
kind and, for contract codes, the exact message; ``docs/contract.md`` must quote every message
of ``contract/messages.py`` verbatim. Codes are found in the source by regex, and the test also
fails when a call passes its code in a way the regexes cannot see.
"""

from __future__ import annotations

import re
from pathlib import Path

from trackguard.contract import messages

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "src" / "trackguard" / "contract" / "check.py"
PLANCHECK = ROOT / "src" / "trackguard" / "core" / "plancheck.py"
VIOLATIONS = ROOT / "docs" / "violations.md"
CONTRACT = ROOT / "docs" / "contract.md"

CODE = r'"([a-z0-9_]+)"'


def _only_code_variables(text: str, call: str) -> None:
    """Every call passes its code as a string literal or as the variable ``code``."""
    others = set(re.findall(call + r'\(\s*([^\s"][^,)]*)', text))
    assert others <= {"code"}, f"{call}: codes passed in a form this test cannot read: {others}"


def contract_codes() -> dict[str, tuple[str, set[str]]]:
    """code -> (kind, messages) for contract/check.py."""
    text = CHECK.read_text()
    _only_code_variables(text, r"errs\.(?:error|warn)")
    found: dict[str, tuple[str, set[str]]] = {}

    def add(code: str, kind: str, message: str) -> None:
        assert found.get(code, (kind, set()))[0] == kind, f"{code} is both kinds"
        found.setdefault(code, (kind, set()))[1].add(message)

    for code, name in re.findall(r"errs\.error\(\s*" + CODE + r",\s*m\.(\w+)", text):
        value = getattr(messages, name)
        add(code, "contract error", value if isinstance(value, str) else value("plan"))
    # evaluate(): code, message = ("not_found", m.NOT_FOUND) if ... else ("method_not_allowed", …)
    routed = re.findall(
        r"code, message = \(?\s*\(\s*" + CODE + r",\s*m\.(\w+)\s*\).*?else\s*\(\s*"
        + CODE + r",\s*m\.(\w+)",
        text,
        re.S,
    )  # fmt: skip
    assert ("code" in re.findall(r"errs\.error\(\s*(\w+)", text)) == bool(routed)
    for first, first_msg, second, second_msg in routed:
        add(first, "contract error", getattr(messages, first_msg))
        add(second, "contract error", getattr(messages, second_msg))
    for code, message in re.findall(r"errs\.warn\(\s*" + CODE + r',\s*"([^"]+)"', text):
        add(code, "contract warning", message)
    assert len(re.findall(r"errs\.error\(", text)) == len(
        re.findall(r"errs\.error\(\s*(?:" + CODE + r",\s*m\.|code,)", text)
    ), "an errs.error( call whose message is not an m.<NAME> constant"
    assert len(re.findall(r"errs\.warn\(", text)) == len(
        re.findall(r"errs\.warn\(\s*" + CODE + r',\s*"', text)
    ), "an errs.warn( call whose message is not a literal"
    return found


def plan_codes() -> set[str]:
    text = PLANCHECK.read_text()
    _only_code_variables(text, r"work\.flag")
    codes = set(re.findall(r"work\.flag\(\s*" + CODE, text))
    # _rename(work, raw, fixed, "event_alias", rule, message) passes its code on to flag().
    renames = re.findall(r"_rename\(\s*\w+,\s*\w+,\s*[\w.]+,\s*" + CODE, text)
    assert len(renames) == len(re.findall(r"self\._rename\(", text))
    codes |= set(renames)
    # code = "timestamp_format" if kind == "timestamp" else "property_type"
    for pair in re.findall(r"\bcode = " + CODE + r" if [^\n]+ else " + CODE, text):
        codes |= set(pair)
    return codes


def kept_codes() -> set[str]:
    """Codes of requests answered as usual but kept, never sent: ``CODE_<NAME>: Final = "…"``
    constants anywhere in the source (the store's dedupe conflicts, the core's path check)."""
    codes: set[str] = set()
    for path in (ROOT / "src" / "trackguard").rglob("*.py"):
        codes |= set(re.findall(r"^CODE_\w+: Final = " + CODE, path.read_text(), re.M))
    return codes


def table_rows() -> list[list[str]]:
    """The cells of the one table whose first header cell is ``Code``."""
    rows: list[list[str]] = []
    in_table = False
    for line in VIOLATIONS.read_text().splitlines():
        if line.startswith("| Code |"):
            assert not in_table and not rows, "more than one code table"
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                in_table = False
                continue
            if set(line) <= set("|- "):
                continue
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _unquote(cell: str) -> str:
    return cell.strip("`").strip()


def test_violations_table_lists_exactly_the_codes_in_the_source() -> None:
    rows = table_rows()
    codes = [_unquote(row[0]) for row in rows]
    assert len(codes) == len(set(codes)), "a code is listed twice"
    contract = contract_codes()
    plan = plan_codes()
    kept = kept_codes()
    assert not set(contract) & plan and not (set(contract) | plan) & kept
    assert set(codes) == set(contract) | plan | kept
    assert kept == {"dedupe_key_conflict", "path_not_utf8"}
    assert len(codes) == 79


def test_violations_table_kinds_and_contract_messages_match_the_source() -> None:
    contract = contract_codes()
    plan = plan_codes()
    kept = kept_codes()
    for row in table_rows():
        assert len(row) == 5, row
        code, kind, _when, example, actions = row
        code = _unquote(code)
        if code in plan:
            assert kind == "plan", code
            continue
        if code in kept:
            assert (kind, actions) == ("kept", "keep: answered 2xx, quarantined, not sent"), code
            continue
        expected_kind, expected_messages = contract[code]
        assert kind == expected_kind, code
        assert _unquote(example) in expected_messages, code
        assert actions == "warn" if kind == "contract warning" else actions.startswith("refuse")


def test_contract_doc_quotes_every_message_verbatim() -> None:
    text = CONTRACT.read_text()
    constants = {
        name: value
        for name, value in vars(messages).items()
        if name.isupper() and isinstance(value, str)
    }
    assert len(constants) == 48
    missing = {name for name, value in constants.items() if value not in text}
    assert missing == set()
    assert messages.attribute_value_too_long("NAME") in text
    assert "value for attribute 'NAME' cannot be longer than 1000 bytes" in text


def test_contract_doc_states_every_limit() -> None:
    text = CONTRACT.read_text()
    for number in ("100 bytes", "500 characters", "100000 bytes", "| 300 |", "150 bytes",
                   "1000 bytes", "1 to 1000", "32768", "512000", "1048576"):  # fmt: skip
        assert number in text, number
    assert messages.MAX_ENTITY_BYTES == 32768
    assert messages.MAX_BATCH_BYTES == 512000
    assert messages.MAX_BODY_BYTES == 1048576
