"""Naming drift: event names that are one event written differently, clustered by evidence.

Distance alone cannot tell a typo from another event (``Application Installed`` /
``Application Uninstalled`` is one edit of two), so each match carries a confidence:

* **certain**: the same words whatever the case and separators (``Order Completed``,
  ``orderCompleted``), the same letters once separators go (``signup`` / ``sign_up``), or the
  same words in another order;
* **strong**: the same words once US/UK spellings and plurals are set aside
  (``order_canceled`` / ``Order Cancelled``, ``product_viewed`` / ``products_viewed``);
* **possible**: one word a small edit away (one edit under 8 letters, two from 8; a swap of
  neighbours is one edit, so ``Prodcut`` / ``Product``) that passes two checks: the names are
  not opposites (:func:`trackguard.plan.similarity.opposite`), and the traffic looks like a
  typo: the rarer name is at most :data:`RARE_SHARE` of the other, has no property key the
  other lacks, and comes from one of its sources (see :func:`_typo_evidence`). Two frequent
  names are more likely two events.

Certain and strong matches are merged (the report shows them as one event; a plan may alias
them). A possible match is attached to its event's cluster with its evidence, never merged.
Words holding digits are never a small edit apart (``step_1`` is not ``step_2``), nor are
words under 4 letters, except a 3-letter word that is a 4-letter one missing a letter (``mnu``
/ ``menu``; ``sign_in`` is not ``sign_up``, ``tag`` is not ``tab``). Candidates are found
through an index of near words, so clustering stays linear in the number of distinct names.

The suggested canonical name is the plan's name when a variant is in the plan; otherwise the
most frequent variant already written in the naming convention (snake_case by default), ties
broken alphabetically; otherwise the most frequent variant rewritten in the convention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from trackguard.audit.model import Confidence, DriftCluster, DriftMatch, NameCount
from trackguard.audit.variants import singular, spelling, variant_key
from trackguard.plan.model import Plan
from trackguard.plan.naming import follows, name_key, to_convention, words
from trackguard.plan.similarity import edit_distance, opposite

_MIN_WORD: Final = 4
#: The most a typo's volume may be, as a share of the name it is a typo of.
RARE_SHARE: Final = 0.2


class Traffic:
    """What the census saw of one event key: property keys and sources (for typo evidence)."""

    __slots__ = ("keys", "sources")

    def __init__(self, keys: Iterable[str] = (), sources: Iterable[str] = ()) -> None:
        self.keys = frozenset(keys)
        self.sources = frozenset(sources)


_NO_TRAFFIC: Final = Traffic()


def event_key(name: str) -> str:
    """The key names are grouped by while streaming (the census uses the same)."""
    return name_key(name) or name


class _Union:
    def __init__(self, items: Iterable[str]) -> None:
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


def _limit(a: str, b: str) -> int:
    return 2 if min(len(a), len(b)) >= 8 else 1


def _deletions(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def near_words(vocabulary: Iterable[str]) -> dict[str, list[str]]:
    """Each eligible word -> the other words a small edit away (the ``possible`` candidates).

    Words within one edit (a swap included) share a one-letter deletion, within two a
    two-letter one, so only words sharing a deletion are compared. A word under
    :data:`_MIN_WORD` letters only pairs with a longer word it is that word missing a letter of.
    """
    eligible = sorted({w for w in vocabulary if len(w) >= _MIN_WORD - 1 and w.isalpha()})
    index: dict[str, list[str]] = {}
    for w in eligible:
        for d in _deletions(w, 2 if len(w) >= 8 else 1):
            index.setdefault(d, []).append(w)
    near: dict[str, set[str]] = {}
    for bucket in index.values():
        for i, a in enumerate(bucket):
            for b in bucket[i + 1 :]:
                if max(len(a), len(b)) < _MIN_WORD or (
                    min(len(a), len(b)) < _MIN_WORD and len(a) == len(b)
                ):
                    continue
                if b not in near.get(a, ()):
                    limit = _limit(a, b)
                    if edit_distance(a, b, limit) <= limit:
                        near.setdefault(a, set()).add(b)
                        near.setdefault(b, set()).add(a)
    return {w: sorted(n) for w, n in near.items()}


def near_pairs(keys: Iterable[str]) -> Iterator[tuple[str, str, str, str]]:
    """Key pairs (each once) that are the same words but one, a small edit apart."""
    keyset = set(keys)
    split = {k: k.split("_") for k in keyset}
    near = near_words(w for ws in split.values() for w in ws)
    for key in sorted(keyset):
        ws = split[key]
        for i, w in enumerate(ws):
            for other in near.get(w, ()):
                if other > w:
                    candidate = "_".join((*ws[:i], other, *ws[i + 1 :]))
                    if candidate in keyset:
                        yield key, candidate, w, other


def _certain(by_key: Mapping[str, list[str]], planned: _PlanNames | None) -> _Union:
    """Keys with the same letters once separators go, the same words in any order, or names
    the plan gives to one event (its name and aliases)."""
    union = _Union(by_key)
    seen: dict[object, str] = {}
    for key, names in by_key.items():
        ws = key.split("_")
        sigs: list[object] = ["".join(ws), tuple(sorted(ws))]
        if planned is not None:
            for name in names:
                event = planned.event(name)
                if event is not None:
                    sigs.append(("plan", event))
        for sig in sigs:
            first = seen.setdefault(sig, key)
            if first != key:
                union.union(key, first)
    return union


def _strong(keys: list[str], union: _Union) -> None:
    """Add keys with the same words after spelling and plurals, unless they are opposites."""
    buckets: dict[tuple[str, ...], list[str]] = {}
    for key in keys:
        buckets.setdefault(variant_key(tuple(key.split("_"))), []).append(key)
    for bucket in buckets.values():
        for i, key in enumerate(bucket[1:], start=1):
            for other in bucket[:i]:
                if opposite(key, other) is None:
                    union.union(key, other)
                    break


class _Group:
    """Keys merged as one event (certain and strong matches), with their traffic."""

    __slots__ = ("count", "keys", "sources", "tags")

    def __init__(self) -> None:
        self.tags: list[str] = []
        self.count = 0
        self.keys: set[str] = set()
        self.sources: set[str] = set()


def _typo_evidence(rare: _Group, common: _Group, a: str, b: str) -> str | None:
    """Why ``rare`` looks like a typo of ``common`` in traffic; None when it does not.

    A typo is sent by the same code as its event: far rarer, with no property key the event
    lacks, from one of its sources. Distinct events on one object share most keys but not all,
    so a missing key is enough to refuse; two edits (``rejected`` / ``selected``) need the keys.
    """
    if rare.count > RARE_SHARE * common.count:
        return None
    edits = edit_distance(a, b, 1)
    parts = [f"{'1 edit' if edits <= 1 else '2 edits'} ({a} / {b})"]
    parts.append(f"{rare.count} events vs {common.count} ({100 * rare.count / common.count:.1f}%)")
    keys_known = bool(rare.keys and common.keys)
    if keys_known:
        if not rare.keys <= common.keys:
            return None
        same = rare.keys == common.keys
        parts.append(
            "same keys" if same else f"keys a subset ({len(rare.keys)} of {len(common.keys)})"
        )
    elif edits > 1:
        return None
    if rare.sources and common.sources:
        if rare.sources <= common.sources:
            parts.append("same source" if len(rare.sources) == 1 else "same sources")
        elif rare.sources & common.sources:
            parts.append("a shared source")
        elif keys_known:
            parts.append("another source")
        else:
            return None
    return ", ".join(parts)


def _possible(
    groups: dict[str, _Group], root_of: dict[str, str], keys: list[str]
) -> dict[str, tuple[str, str]]:
    """Rare group root -> (common group root, evidence) for typo-like near names.

    A rare name near several events goes with the nearest, then the most frequent.
    """
    best: dict[str, tuple[tuple[int, int, str], str, str]] = {}
    for a, b, wa, wb in near_pairs(keys):
        ra, rb = root_of[a], root_of[b]
        if ra == rb or opposite(a, b) is not None:
            continue
        ga, gb = groups[ra], groups[rb]
        if (ga.count, ra) > (gb.count, rb):
            ra, rb, ga, gb, wa, wb = rb, ra, gb, ga, wb, wa
        evidence = _typo_evidence(ga, gb, wa, wb)
        if evidence is None:
            continue
        rank = (edit_distance(wa, wb, 2), -gb.count, rb)
        held = best.get(ra)
        if held is None or rank < held[0]:
            best[ra] = (rank, rb, evidence)
    return {r: (common, ev) for r, (_, common, ev) in best.items() if common not in best}


class _PlanNames:
    """Which plan event a name is (by name, alias, or the same name key), as plancheck does."""

    __slots__ = ("by_key", "by_name")

    def __init__(self, plan: Plan) -> None:
        self.by_name: dict[str, str] = {}
        self.by_key: dict[str, str] = {}
        for event in plan.events:
            self.by_name.setdefault(event, event)
        for event, spec in plan.events.items():
            for alias in spec.aliases:
                self.by_name.setdefault(alias, event)
        for event, spec in plan.events.items():
            for written in (event, *spec.aliases):
                self.by_key.setdefault(name_key(written), event)

    def event(self, name: str) -> str | None:
        found = self.by_name.get(name)
        return found if found is not None else self.by_key.get(name_key(name))


def _canonical(
    variants: Mapping[str, int], plan: Plan | None, planned: _PlanNames | None = None
) -> tuple[str, bool, str]:
    """The name to keep, whether it came from the plan, and the variant it stands for."""
    ranked = sorted(variants.items(), key=lambda kv: (-kv[1], kv[0]))
    convention = plan.naming.convention if plan is not None else "snake_case"
    if plan is not None:
        planned = planned or _PlanNames(plan)
        for name, _ in ranked:
            event = planned.event(name)
            if event is not None:
                return event, True, name
    for name, _ in ranked:
        if words(name) and follows(name, convention):
            return name, False, name
    return to_convention(ranked[0][0], convention), False, ranked[0][0]


def canonical(variants: Mapping[str, int], plan: Plan | None = None) -> tuple[str, bool]:
    """The name to keep for a cluster, and whether it came from the plan."""
    name, from_plan, _ = _canonical(variants, plan)
    return name, from_plan


def _firm_evidence(name: str, reference: str, same_root: bool) -> tuple[Confidence, str]:
    if same_root:
        a, b = name_key(name), name_key(reference)
        if a == b:
            return "certain", "same words (case or separators)"
        if a.replace("_", "") == b.replace("_", ""):
            return "certain", "same letters (words joined)"
        if sorted(a.split("_")) == sorted(b.split("_")):
            return "certain", "same words (another order)"
        return "certain", "one event in the plan"
    ca, cb = Counter(words(name)), Counter(words(reference))
    only = list((ca - cb).elements()) + list((cb - ca).elements())
    kinds = []
    if any(spelling(w) != w for w in only):
        kinds.append("US/UK spelling")
    if any(singular(spelling(w)) != spelling(w) for w in only):
        kinds.append("plural")
    return "strong", " and ".join(kinds or ["spelling"]) + f" ({', '.join(sorted(only))})"


def _clusters(
    names: Mapping[str, int],
    plan: Plan | None,
    traffic: Mapping[str, Traffic] | None,
    singles: bool,
) -> list[tuple[DriftCluster, list[str]]]:
    """Every event of two names or more (of one too with ``singles``), with its firm keys."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(event_key(name), []).append(name)
    keys = sorted(by_key)
    planned = _PlanNames(plan) if plan is not None else None
    certain = _certain(by_key, planned)
    certain_root = {k: certain.find(k) for k in keys}
    _strong(keys, certain)
    root_of = {k: certain.find(k) for k in keys}
    groups: dict[str, _Group] = {}
    for key in keys:
        g = groups.get(root_of[key])
        if g is None:
            g = groups[root_of[key]] = _Group()
        g.tags.append(key)
        g.count += sum(names[n] for n in by_key[key])
        seen = (traffic or {}).get(key, _NO_TRAFFIC)
        g.keys |= seen.keys
        g.sources |= seen.sources
    links = _possible(groups, root_of, keys)
    attached: dict[str, list[tuple[str, str]]] = {}
    for rare, (common, evidence) in sorted(links.items()):
        attached.setdefault(common, []).append((rare, evidence))
    out = []
    for root, group in groups.items():
        if root in links:
            continue
        firm = {n: names[n] for k in group.tags for n in by_key[k]}
        extra = attached.get(root, [])
        if len(firm) == 1 and not extra and not singles:
            continue
        name, from_plan, reference = _canonical(firm, plan, planned)
        ref_root = certain_root[event_key(reference)]
        matches = [
            DriftMatch(n, *_firm_evidence(n, reference, certain_root[event_key(n)] == ref_root))
            for n in firm
            if n != name
        ]
        variants = dict(firm)
        for rare, evidence in extra:
            for k in groups[rare].tags:
                for n in by_key[k]:
                    variants[n] = names[n]
                    matches.append(DriftMatch(n, "possible", evidence))
        cluster = DriftCluster(
            canonical=name,
            variants=tuple(NameCount(n, variants[n]) for n in sorted(variants)),
            total=sum(variants.values()),
            from_plan=from_plan,
            matches=tuple(sorted(matches, key=lambda m: m.name)),
        )
        out.append((cluster, group.tags))
    out.sort(key=lambda ct: (-ct[0].total, ct[0].canonical))
    return out


def cluster(
    names: Mapping[str, int],
    plan: Plan | None = None,
    traffic: Mapping[str, Traffic] | None = None,
) -> list[DriftCluster]:
    """Drift clusters (two or more distinct names) among ``names`` (name -> count).

    ``traffic`` (event key -> :class:`Traffic`) is the evidence for possible matches; without
    it only volumes count. Sorted by total volume, largest first, then by canonical name.
    """
    return [c for c, _ in _clusters(names, plan, traffic, singles=False)]


def display_names(
    names: Mapping[str, int],
    plan: Plan | None = None,
    traffic: Mapping[str, Traffic] | None = None,
) -> dict[str, str]:
    """Each merged event key -> the name to show for it: its cluster's canonical name.

    Only certain and strong matches are shown as their event; a possible match keeps its own.
    """
    shown: dict[str, str] = {}
    for c, tags in _clusters(names, plan, traffic, singles=True):
        for key in tags:
            shown[key] = c.canonical
    return shown
