"""How alike two event names are: edit distance, and whether they are opposites.

A small edit often turns an event into its opposite (``installed`` / ``uninstalled``,
``signed_in`` / ``signed_out``, ``level_start`` / ``level_end``), so distance alone cannot tell a
typo from another event. :func:`opposite` says when two names differ by opposite words, using
the lexicon in ``opposites.txt`` (kept as data; ``tests/plan/test_plan_similarity.py`` checks it).
The audit's drift clustering never merges such names, and ``plan lint`` warns about an alias that
is its event's opposite.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Final

from trackguard.plan.naming import words


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance, or ``limit + 1`` once it must exceed ``limit``.

    A swap of two neighbouring letters counts as one edit (``prodcut`` / ``product``), as do an
    inserted, deleted or replaced letter.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        ca = a[i - 1]
        current = [i]
        best = i
        for j in range(1, len(b) + 1):
            cb = b[j - 1]
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb and ca != cb:
                value = min(value, before[j - 2] + 1)
            current.append(value)
            best = min(best, value)
        if best > limit:
            return limit + 1
        before, previous = previous, current
    return min(previous[-1], limit + 1)  # a row can stay within the limit while its end is not


class Lexicon:
    """Negating prefixes, negation words, and opposite word forms (both directions)."""

    __slots__ = ("negations", "pairs", "prefixes")

    def __init__(self, text: str) -> None:
        self.prefixes: tuple[str, ...] = ()
        self.negations: frozenset[str] = frozenset()
        self.pairs: dict[str, frozenset[str]] = {}
        prefixes: list[str] = []
        negations: set[str] = set()
        pairs: dict[str, set[str]] = {}
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"opposites: expected two words in {line!r}")
            first, second = parts
            if first == "prefix":
                prefixes.append(second)
            elif first == "negation":
                negations.add(second)
            else:
                for x in forms(first):
                    for y in forms(second):
                        if x != y:
                            pairs.setdefault(x, set()).add(y)
                            pairs.setdefault(y, set()).add(x)
        self.prefixes = tuple(sorted(prefixes, key=len, reverse=True))
        self.negations = frozenset(negations)
        self.pairs = {w: frozenset(o) for w, o in pairs.items()}

    def words_opposite(self, x: str, y: str) -> bool:
        """True when words ``x`` and ``y`` are opposites, or one word with other prefixes.

        ``installed`` is the base of ``uninstalled`` and ``reinstalled``: all three differ.
        """
        if x == y:
            return False
        if y in self.pairs.get(x, ()):
            return True
        return not self.bases(x).isdisjoint(self.bases(y))

    def bases(self, word: str) -> set[str]:
        """``word`` and what is left of it without each prefix it starts with."""
        return {word} | {word[len(p) :] for p in self.prefixes if word.startswith(p)}


def forms(word: str) -> set[str]:
    """A base word and its regular forms: -s, -ed, -ing, -er (with -e dropped, -y to -i)."""
    out = {word}
    stems = [word]
    if word.endswith("e"):
        stems.append(word[:-1])
    elif word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        stems.append(word[:-1] + "i")
        out.update({word + "ing", word[:-1] + "ies"})
    elif len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou":
        stems.append(word + word[-1])  # stop -> stopped, plan -> planned
    for stem in stems:
        out.update({stem + "ed", stem + "er", stem + "ers"})
        if not stem.endswith("i"):
            out.add(stem + "ing")
    out.add(word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s"))
    if word.endswith("e"):
        out.add(word + "d")
    return out


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The shipped lexicon (``opposites.txt``)."""
    return Lexicon(resources.files("trackguard.plan").joinpath("opposites.txt").read_text("utf-8"))


def _cores(a: str, b: str) -> tuple[str, str, str]:
    """What differs between ``a`` and ``b`` once their common start and end are dropped."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    tail = a[len(a) - end :] if end else ""
    return a[start : len(a) - end], b[start : len(b) - end], tail


def opposite(a: str, b: str) -> tuple[str, str] | None:
    """The opposite words that make ``a`` and ``b`` two events, or None.

    Checked on the words only one name has (``Add to Cart`` / ``Remove from Cart``), on an extra
    negation word (``Email Not Opened``), and on the letters that differ once the names' common
    start and end are dropped, so joined names count too (``login`` / ``logout``).
    """
    lex = lexicon()
    wa, wb = words(a), words(b)
    ca, cb = Counter(wa), Counter(wb)
    only_a, only_b = list((ca - cb).elements()), list((cb - ca).elements())
    for x in only_a:
        for y in only_b:
            if lex.words_opposite(x, y):
                return x, y
    for extra in only_a if not only_b else only_b if not only_a else []:
        if extra in lex.negations:
            return (extra, "") if only_a else ("", extra)
    x, y, tail = _cores("".join(wa), "".join(wb))
    if lex.words_opposite(x, y):
        return x, y
    if tail and lex.words_opposite(x + tail, y + tail):
        return x + tail, y + tail
    return None


#: An alias this close to its event's name (edits between name keys) and its opposite is flagged.
LINT_DISTANCE: Final = 5
