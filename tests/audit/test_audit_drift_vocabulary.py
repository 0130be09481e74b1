"""Drift clustering over public vocabularies of distinct event names, and injected variants.

``data/event_names.txt`` holds 423 distinct names (Segment's spec events, Customer.io's semantic
events and message metrics, GA4's recommended events, common app and game names). No two are
one event, and many are opposites one edit apart: clustering must never merge any two, in the
findings or in the plan drafted from them. Variants injected beside them (case and separators,
spelling, plurals, typos with swaps) must each land in their own event's cluster.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.audit import run_audit
from trackguard.audit.drift import Traffic, cluster, event_key
from trackguard.plan.loader import parse_plan
from trackguard.plan.naming import to_convention, words

T0 = 1_764_000_000
NAMES: list[str] = [
    line
    for line in (Path(__file__).parent / "data" / "event_names.txt").read_text().splitlines()
    if line and not line.startswith("#")
]


def test_the_vocabulary_is_distinct_names() -> None:
    assert len(NAMES) == 423
    assert len({event_key(n) for n in NAMES}) == 423


@settings(max_examples=20)
@given(st.lists(st.integers(1, 1_000_000), min_size=len(NAMES), max_size=len(NAMES)))
def test_distinct_names_are_never_merged_whatever_their_volumes(counts: list[int]) -> None:
    # names only, no traffic evidence: the worst case for a rare opposite
    assert cluster(dict(zip(NAMES, counts, strict=True))) == []


def _log(path: Path, events: list[tuple[str, dict[str, object], str]]) -> Path:
    lines = []
    for name, data, source in events:
        body = {"name": name, "data": data, "timestamp": T0}
        lines.append(
            json.dumps(
                {
                    "time": "2025-11-24T16:00:00Z",
                    "method": "POST",
                    "path": "/api/v1/customers/c1/events",
                    "body": json.dumps(body),
                    "status": 200,
                    "source": source,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _data(name: str) -> dict[str, object]:
    return {"item_id": "x1", "value": 3, "note": name}


def test_an_audit_of_distinct_names_finds_no_drift_and_drafts_no_alias(tmp_path: Path) -> None:
    rng = random.Random(16)
    events = []
    for name in NAMES:
        # an uninstall is rarer than an install: volumes from 1 to 40, one source
        events += [(name, _data(name), "app")] * rng.randint(1, 40)
    run = run_audit([_log(tmp_path / "log.jsonl", events)], now=T0)
    assert run.report.drift == ()
    assert [f.id for f in run.report.findings if f.kind == "naming_drift"] == []
    text = run.infer_plan()
    assert "possibly" not in text
    plan = parse_plan(text)
    assert len(plan.events) == 423
    assert [(e, s.aliases) for e, s in plan.events.items() if s.aliases] == []


# --- injected variants ----------------------------------------------------------------------

_UK = {"canceled": "cancelled", "cancelled": "canceled", "favorite": "favourite"}
#: A key beside each letter on a QWERTY keyboard.
_NEIGHBOURS = dict(zip("abcdefghijklmnopqrstuvwxyz", "svxsrghjoklknmpowtaybieuzx", strict=True))


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _typo_word(ws: tuple[str, ...]) -> int | None:
    """The position of the longest word a typo can go in (four letters or more)."""
    fit = [i for i, w in enumerate(ws) if len(w) >= 5 and w.isalpha()]
    return max(fit, key=lambda i: len(ws[i])) if fit else None


def _typos(word: str) -> dict[str, str]:
    """One typo of each kind, inside the word (its first letter kept)."""
    mid = len(word) // 2
    return {
        "swap": word[:mid] + word[mid + 1] + word[mid] + word[mid + 2 :],
        "dropped": word[:mid] + word[mid + 1 :],
        "doubled": word[:mid] + word[mid] + word[mid:],
        "slip": word[:mid] + _NEIGHBOURS[word[mid]] + word[mid + 1 :],
    }


def injected() -> dict[str, tuple[str, str]]:
    """variant -> (its event, kind)."""
    out: dict[str, tuple[str, str]] = {}
    for name in NAMES:
        ws = words(name)
        for convention in ("camelCase", "kebab-case", "PascalCase"):
            out.setdefault(to_convention(name, convention), (name, "case"))
        out.setdefault(name.upper(), (name, "case"))
        spelled = [_UK.get(w, w) for w in ws]
        if spelled != list(ws):
            out.setdefault("_".join(spelled), (name, "spelling"))
        if len(ws[0]) >= 4 and ws[0].isalpha() and not ws[0].endswith("s"):
            out.setdefault(" ".join((_plural(ws[0]), *ws[1:])).title(), (name, "plural"))
        at = _typo_word(ws)
        if at is not None:
            for kind, typo in _typos(ws[at]).items():
                if typo != ws[at]:
                    variant = " ".join((*ws[:at], typo, *ws[at + 1 :])).title()
                    out.setdefault(variant, (name, kind))
    return {v: e for v, e in out.items() if v != e[0] and v not in NAMES}


_TYPOS = ("swap", "dropped", "doubled", "slip")


def test_injected_variants_are_clustered_with_their_own_event() -> None:
    variants = injected()
    kinds: dict[str, int] = {}
    for _, kind in variants.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {
        "case": 1678,
        "spelling": 4,
        "plural": 376,
        "swap": 394,
        "dropped": 413,
        "doubled": 413,
        "slip": 413,
    }
    names = dict.fromkeys(NAMES, 1000)
    traffic = {event_key(n): Traffic({"item_id", "value"}, {"ios", "web"}) for n in NAMES}
    for variant, (_, kind) in variants.items():
        names[variant] = 3 if kind in _TYPOS else 200
        traffic.setdefault(event_key(variant), Traffic({"item_id", "value"}, {"ios"}))
    vocabulary = set(NAMES)
    where: dict[str, tuple[str, str]] = {}
    for c in cluster(names, traffic=traffic):
        (own,) = [v.name for v in c.variants if v.name in vocabulary]
        for v in c.variants:
            where[v.name] = (own, "possible" if c.confidence_of(v.name) == "possible" else "firm")
    assert {v: where.get(v) for v in variants} == {
        v: (event, "possible" if kind in _TYPOS else "firm")
        for v, (event, kind) in variants.items()
    }
    # every vocabulary name is in a cluster of its own variants
    assert {n: where[n][0] for n in NAMES} == {n: n for n in NAMES}


@pytest.mark.parametrize(
    ("variant", "event"),
    [("Prodcut Viewed", "Product Viewed"), ("Emial Opened", "Email Opened")],
)
def test_the_typos_that_were_missed(variant: str, event: str) -> None:
    names = dict.fromkeys(NAMES, 500)
    names[variant] = 4
    (found,) = cluster(names)
    assert [v.name for v in found.variants] == sorted([variant, event])
    assert found.confidence_of(variant) == "possible"
