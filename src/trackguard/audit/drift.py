"""Naming drift: event names that are one event written differently, clustered.

Two names are the same event when they have the same ``naming.name_key`` (``Order Completed``,
``orderCompleted``, ``order-completed``), or when their keys are *near*: the same words once
separators are dropped (``signup`` / ``sign_up``), or the same words but one, where that word
differs by a small edit (``order_complete`` / ``order_completed``, ``user`` / ``users``). Words
shorter than four letters or holding digits never count as near (``sign_in`` is not
``sign_up``; ``step_1`` is not ``step_2``). Candidates are found through word-wildcard
signatures, so clustering stays linear in the number of distinct names.

The suggested canonical name is the plan's name when a variant is in the plan; otherwise the
most frequent variant already written in the naming convention (snake_case by default), ties
broken alphabetically; otherwise the most frequent variant rewritten in the convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from trackguard.audit.model import DriftCluster, NameCount
from trackguard.plan.model import Plan
from trackguard.plan.naming import follows, name_key, to_convention, words

_MIN_WORD: Final = 4


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or ``limit + 1`` once it is certain to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        best = i
        for j, cb in enumerate(b, start=1):
            cost = previous[j - 1] + (ca != cb)
            value = min(previous[j] + 1, current[j - 1] + 1, cost)
            current.append(value)
            best = min(best, value)
        if best > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _near_words(a: str, b: str) -> bool:
    if min(len(a), len(b)) < _MIN_WORD or not (a.isalpha() and b.isalpha()):
        return False
    limit = 2 if min(len(a), len(b)) >= 8 else 1
    return edit_distance(a, b, limit) <= limit


class _Union:
    def __init__(self, items: list[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def event_key(name: str) -> str:
    """The key names are grouped by while streaming (the census uses the same)."""
    return name_key(name) or name


def group_keys(keys: list[str]) -> list[list[str]]:
    """Partition name keys into groups of near keys (each group sorted, groups sorted)."""
    union = _Union(keys)
    joined: dict[str, str] = {}
    signatures: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    for key in keys:
        ws = tuple(key.split("_"))
        flat = "".join(ws)
        if flat in joined:
            union.union(key, joined[flat])
        else:
            joined[flat] = key
        for i in range(len(ws)):
            sig = (i, (*ws[:i], "*", *ws[i + 1 :]))
            signatures.setdefault(sig, []).append(key)
    for (i, _), members in signatures.items():
        if len(members) < 2:
            continue
        for x in range(len(members)):
            wx = members[x].split("_")[i]
            for y in range(x + 1, len(members)):
                if _near_words(wx, members[y].split("_")[i]):
                    union.union(members[x], members[y])
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(union.find(key), []).append(key)
    return sorted(sorted(g) for g in groups.values())


def _plan_event(name: str, plan: Plan) -> str | None:
    """The plan event a name is (by name, alias, or the same name key), as plancheck does."""
    if name in plan.events:
        return name
    key = name_key(name)
    for event, spec in plan.events.items():
        if name in spec.aliases:
            return event
    for event, spec in plan.events.items():
        if name_key(event) == key or any(name_key(a) == key for a in spec.aliases):
            return event
    return None


def canonical(variants: Mapping[str, int], plan: Plan | None = None) -> tuple[str, bool]:
    """The name to keep for a cluster, and whether it came from the plan."""
    ranked = sorted(variants.items(), key=lambda kv: (-kv[1], kv[0]))
    convention = plan.naming.convention if plan is not None else "snake_case"
    if plan is not None:
        for name, _ in ranked:
            event = _plan_event(name, plan)
            if event is not None:
                return event, True
    for name, _ in ranked:
        if words(name) and follows(name, convention):
            return name, False
    return to_convention(ranked[0][0], convention), False


def cluster(names: Mapping[str, int], plan: Plan | None = None) -> list[DriftCluster]:
    """Drift clusters (two or more distinct names) among ``names`` (name -> count).

    Sorted by total volume, largest first, then by canonical name.
    """
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(event_key(name), []).append(name)
    out = []
    for group in group_keys(sorted(by_key)):
        members = [n for k in group for n in by_key[k]]
        if len(members) < 2:
            continue
        variants = {n: names[n] for n in members}
        name, from_plan = canonical(variants, plan)
        out.append(
            DriftCluster(
                canonical=name,
                variants=tuple(NameCount(n, variants[n]) for n in sorted(variants)),
                total=sum(variants.values()),
                from_plan=from_plan,
            )
        )
    out.sort(key=lambda c: (-c.total, c.canonical))
    return out


def display_names(names: Mapping[str, int], plan: Plan | None = None) -> dict[str, str]:
    """Each name key -> the name to show for it: its cluster's canonical name."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(event_key(name), []).append(name)
    shown: dict[str, str] = {}
    for group in group_keys(sorted(by_key)):
        variants = {n: names[n] for k in group for n in by_key[k]}
        name, _ = canonical(variants, plan)
        for k in group:
            shown[k] = name
    return shown
