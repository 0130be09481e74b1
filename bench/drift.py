"""Benchmark: naming-drift clustering, its precision and recall per variant kind, and its speed.

A generated corpus (seeded) of distinct events, ``object action`` names written in snake_case or
Title Case, with Zipf-like volumes, property keys per object and action, and one to three
sources each. Variants are injected beside some of them, each with the traffic its kind has:

* **case/separator**: the name in another convention (camelCase, kebab-case, UPPER_SNAKE, ...);
* **spelling**: a word in its other US/UK spelling (cancelled, catalogue, personalised, ...);
* **plural**: the object in the plural;
* **typo**: one slip in one word of four letters or more (a swap of neighbours, a dropped,
  doubled or neighbouring-key letter), rare (0.1% to 5% of its event), same keys, one of its
  sources.

Clustered by trackguard (``trackguard.audit.drift.cluster`` with the traffic evidence) and by
plain edit distance (name keys, case and separators set aside, within Levenshtein distance 2,
1 under 8 letters, merged transitively): recall per kind is the share of injected variants found
in their own event's cluster (at any confidence); precision is the share of the predicted
same-event name pairs that are true; "distinct events merged" counts pairs of the corpus's
distinct events put in one cluster. Then the time to cluster 10,000 distinct names on one core,
median of ``--repeats`` runs, beside the 2 s target.

Run ``.venv/bin/python bench/drift.py --help``; ``bench/README.md`` explains the output.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Mapping
from itertools import combinations
from typing import Final

from _common import fmt_ratio, machine_info, measure, peak_rss_mib, pin_to_one_core, render_table
from trackguard.audit.drift import Traffic, cluster, event_key
from trackguard.audit.variants import spellings
from trackguard.plan.naming import to_convention


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


OBJECTS: Final = _words(
    """
product order cart card checkout payment invoice coupon promotion wishlist review rating account
profile password email message notification push session subscription plan trial video song
playlist podcast episode article post host comment story photo file folder document project task
team member invite friend follower group channel level quest match round item reward achievement
mission tournament ticket booking reservation ride delivery address location device app page
screen button link banner modal menu tab form survey feedback search filter report dashboard
chart widget integration webhook token role permission setting theme language currency wallet
transfer deposit withdrawal loan policy claim quote contract lead deal campaign audience segment
experiment feature tutorial onboarding lesson course quiz exam certificate badge streak goal
habit workout meal recipe ingredient calendar meeting call chat conversation catalog favorite
color center license dialog program label model category bundle gift voucher referral cookie
"""
)
ACTIONS: Final = _words(
    """
viewed clicked added removed created deleted updated edited shared saved opened closed started
ended completed failed cancelled submitted approved rejected accepted declined enabled disabled
installed uninstalled reinstalled subscribed unsubscribed followed unfollowed liked unliked
pinned unpinned archived unarchived locked unlocked muted unmuted uploaded downloaded imported
exported purchased refunded renewed expired paused resumed played stopped skipped searched
filtered sorted selected deselected assigned unassigned published unpublished scheduled
rescheduled confirmed verified activated deactivated connected disconnected synced joined left
invited reported blocked unblocked won lost earned redeemed claimed sent received read dismissed
expanded collapsed shown hidden scrolled tapped personalized customized organized labeled
favorited
"""
)
SOURCES: Final = ("ios", "android", "web", "server")
KEYBOARD: Final = dict(zip("abcdefghijklmnopqrstuvwxyz", "svxsrghjoklknmpowtaybieuzx", strict=True))
TYPOS: Final = ("swap", "dropped", "doubled", "slip")
KINDS: Final = ("case/separator", "spelling", "plural", *(f"typo: {t}" for t in TYPOS))


class Corpus:
    """Names with volumes and traffic, and each name's true event."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.traffic: dict[str, Traffic] = {}
        self.event_of: dict[str, str] = {}
        self.kind_of: dict[str, str] = {}

    def add(self, name: str, count: int, traffic: Traffic, event: str, kind: str) -> bool:
        key = event_key(name)
        if name in self.names or (key in self.traffic and kind != "case/separator"):
            return False
        self.names[name] = count
        self.traffic.setdefault(key, traffic)
        self.event_of[name] = event
        self.kind_of[name] = kind
        return True


def _other_spellings() -> dict[str, str]:
    out = {uk: us for uk, us in spellings().items()} | {us: uk for uk, us in spellings().items()}
    for word in ("personalized", "customized", "organized"):
        out[word] = word.replace("ized", "ised")
    return out


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _typo(word: str, kind: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "dropped":
        return word[:i] + word[i + 1 :]
    if kind == "doubled":
        return word[:i] + word[i] + word[i:]
    return word[:i] + KEYBOARD.get(word[i], word[i]) + word[i + 1 :]


def _write(ws: list[str], title: bool) -> str:
    return " ".join(w.capitalize() for w in ws) if title else "_".join(ws)


def distinct_events(n: int, rng: random.Random) -> tuple[list[list[str]], dict[str, int]]:
    """``n`` distinct (object, action) events and Zipf-like volumes by rank."""
    pairs = [[o, a] for o in OBJECTS for a in ACTIONS]
    if n > len(pairs):
        raise SystemExit(f"Error: at most {len(pairs)} distinct events")
    chosen = rng.sample(pairs, n)
    return chosen, {
        "_".join(ws): max(20, int(200_000 / (rank + 1) ** 1.05)) for rank, ws in enumerate(chosen)
    }


def _traffic(ws: list[str], rng: random.Random) -> Traffic:
    obj, action = ws
    keys = {f"{obj}_id", f"{obj}_name", f"{action}_at"}
    return Traffic(keys, rng.sample(SOURCES, rng.randint(1, 3)))


def build(events: int, per_kind: int, seed: int) -> Corpus:
    """Distinct events, then up to ``per_kind`` variants of each kind."""
    rng = random.Random(seed)
    chosen, volumes = distinct_events(events, rng)
    corpus = Corpus()
    base: list[tuple[list[str], str, Traffic]] = []
    for ws in chosen:
        name = _write(ws, rng.random() < 0.5)
        traffic = _traffic(ws, rng)
        corpus.add(name, volumes["_".join(ws)], traffic, name, "event")
        base.append((ws, name, traffic))
    other = _other_spellings()
    for kind in KINDS:
        made = 0
        for ws, name, traffic in rng.sample(base, len(base)):
            if made == per_kind:
                break
            variant = _variant(kind, ws, name, other, rng)
            if variant is None:
                continue
            typo = kind.startswith("typo")
            share = rng.uniform(0.001, 0.05) if typo else rng.uniform(0.01, 0.5)
            count = max(1, int(corpus.names[name] * share))
            seen = Traffic(traffic.keys, [rng.choice(sorted(traffic.sources))])
            made += corpus.add(variant, count, seen, name, kind)
    return corpus


def _variant(
    kind: str, ws: list[str], name: str, other: Mapping[str, str], rng: random.Random
) -> str | None:
    title = rng.random() < 0.5
    if kind == "case/separator":
        convention = rng.choice(("camelCase", "PascalCase", "kebab-case", "snake_case", "upper"))
        variant = "_".join(ws).upper() if convention == "upper" else to_convention(name, convention)
        return variant if variant != name else " ".join(w.capitalize() for w in ws)
    if kind == "spelling":
        swapped = [other.get(w, w) for w in ws]
        return _write(swapped, title) if swapped != ws else None
    if kind == "plural":
        return _write([_plural(ws[0]), *ws[1:]], title)
    fit = [i for i, w in enumerate(ws) if len(w) >= 4]
    if not fit:
        return None
    i = rng.choice(fit)
    typo = _typo(ws[i], kind.removeprefix("typo: "), rng)
    return _write([*ws[:i], typo, *ws[i + 1 :]], title) if typo != ws[i] else None


# --- the baseline: plain edit distance --------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_distance_clusters(names: Mapping[str, int]) -> list[list[str]]:
    """Names whose keys are within Levenshtein 2 (1 under 8 letters), merged transitively."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(event_key(name), []).append(name)
    parent = {k: k for k in by_key}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    index: dict[str, list[str]] = {}
    for key in by_key:
        variants = {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}
        variants |= {v[:i] + v[i + 1 :] for v in list(variants) for i in range(len(v))}
        for v in variants:
            index.setdefault(v, []).append(key)
    for bucket in index.values():
        for a, b in combinations(bucket, 2):
            if find(a) != find(b):
                limit = 2 if min(len(a), len(b)) >= 8 else 1
                if abs(len(a) - len(b)) <= limit and levenshtein(a, b) <= limit:
                    parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for key, members in by_key.items():
        groups.setdefault(find(key), []).extend(members)
    return list(groups.values())


# --- scoring --------------------------------------------------------------------------------


def score(corpus: Corpus, groups: list[list[str]]) -> dict[str, float]:
    """Recall per kind, pair precision, and distinct events merged."""
    where = {n: i for i, g in enumerate(groups) for n in g}
    out: dict[str, float] = {}
    for kind in (*KINDS, "typo"):
        variants = [n for n, k in corpus.kind_of.items() if k.startswith(kind)]
        found = sum(where[v] == where[corpus.event_of[v]] for v in variants)
        out[kind] = found / len(variants) if variants else float("nan")
        out[f"{kind} n"] = len(variants)
    predicted = true = merged = 0
    for g in groups:
        for a, b in combinations(g, 2):
            predicted += 1
            same = corpus.event_of[a] == corpus.event_of[b]
            true += same
            merged += corpus.kind_of[a] == corpus.kind_of[b] == "event"
    out["precision"] = true / predicted if predicted else 1.0
    out["merged"] = merged
    return out


def trackguard_groups(corpus: Corpus) -> list[list[str]]:
    clusters = cluster(corpus.names, traffic=corpus.traffic)
    grouped = {v.name for c in clusters for v in c.variants}
    return [[v.name for v in c.variants] for c in clusters] + [
        [n] for n in corpus.names if n not in grouped
    ]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=3000, help="distinct events in the corpus")
    parser.add_argument("--per-kind", type=int, default=250, help="variants injected per kind")
    parser.add_argument("--timed", type=int, default=10_000, help="distinct names to time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    pinned = pin_to_one_core()
    info = machine_info(pinned)
    print(
        f"machine: {info['cpu_model']}, {info['nproc']} CPUs, pinned to {pinned}; {info['python']}"
    )
    corpus = build(args.events, args.per_kind, args.seed)
    ours = score(corpus, trackguard_groups(corpus))
    plain = score(corpus, edit_distance_clusters(corpus.names))
    print(
        f"corpus: {args.events} distinct events, {len(corpus.names)} names "
        f"(seed {args.seed}); recall = variants found in their own event's cluster"
    )
    rows = [
        [f"recall: {kind}", str(int(ours[f"{kind} n"])), _pct(ours[kind]), _pct(plain[kind])]
        for kind in (*KINDS, "typo")
    ]
    rows.append(["precision (name pairs)", "", _pct(ours["precision"]), _pct(plain["precision"])])
    rows.append(
        ["distinct events merged (pairs)", "", str(int(ours["merged"])), str(int(plain["merged"]))]
    )
    print(render_table(["", "variants", "trackguard", "edit distance"], rows))
    timed = _timed_names(args.timed, args.seed)
    timing = measure(
        lambda: cluster(timed[0], traffic=timed[1]), len(timed[0]), repeats=args.repeats
    )
    print(
        f"clustering {len(timed[0]):,} distinct names: median {timing.median_s:.3f} s "
        f"({min(timing.runs_s):.3f}..{max(timing.runs_s):.3f} s over {args.repeats} runs); "
        f"target 2 s: {fmt_ratio(2.0 / timing.median_s)} under it"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    return 0


def _timed_names(n: int, seed: int) -> tuple[dict[str, int], dict[str, Traffic]]:
    rng = random.Random(seed + 1)
    chosen, volumes = distinct_events(n, rng)
    names = {_write(ws, rng.random() < 0.5): volumes["_".join(ws)] for ws in chosen}
    traffic = {"_".join(ws): _traffic(ws, rng) for ws in chosen}
    return names, traffic


if __name__ == "__main__":
    sys.exit(main())
