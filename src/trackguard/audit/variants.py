"""Word variants that are one word: US/UK spellings and plurals (strong drift matches).

``spelling`` maps a word to one spelling: the UK form of a pair in ``spellings.txt`` (kept as
data; ``tests/audit/test_audit_variants.py`` checks it) to its US form, and ``-ise``/``-yse``
verb forms to ``-ize``/``-yze`` by rule. ``singular`` undoes a regular English plural. Names
whose words are equal after both are the same event written differently.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Final

#: -ise / -isation / -yse forms and their -ize / -yze spelling (organise, analysed, ...).
_ISE: Final = re.compile(r"^(.{3,}[^aeiou][iy])s(e|ed|es|er|ers|ing|ation|ations)$")
_MIN_PLURAL: Final = 4
#: Words that end like a plural but are not one.
_NOT_PLURAL: Final = frozenset(
    {"news", "series", "species", "analytics", "always", "perhaps", "status", "bonus", "campus"}
)


@lru_cache(maxsize=1)
def spellings() -> dict[str, str]:
    """UK spelling -> US spelling, from ``spellings.txt``."""
    text = resources.files("trackguard.audit").joinpath("spellings.txt").read_text("utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] == parts[1]:
            raise ValueError(f"spellings: expected two different words in {line!r}")
        us, uk = parts
        out[uk] = us
    return out


@lru_cache(maxsize=65536)
def spelling(word: str) -> str:
    """The one spelling of ``word`` used for comparison (US; -ize, -yze)."""
    us = spellings().get(word)
    if us is not None:
        return us
    m = _ISE.match(word)
    return f"{m.group(1)}z{m.group(2)}" if m else word


@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    """``word`` without a regular plural ending (``categories`` -> ``category``).

    Words ending in ``-ie`` take ``-y`` too, so ``cookie`` and ``cookies`` meet at ``cooky``.
    """
    if len(word) < _MIN_PLURAL or word in _NOT_PLURAL:
        return word
    if word.endswith("ie") and len(word) > _MIN_PLURAL:
        return word[:-2] + "y"
    if not word.endswith("s") or word.endswith("ss"):
        return word
    if word.endswith("ies") and len(word) > _MIN_PLURAL:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    return word[:-1]


def variant_key(ws: tuple[str, ...]) -> tuple[str, ...]:
    """Words in one spelling, singular, in sorted order: equal keys are one event."""
    return tuple(sorted(singular(spelling(w)) for w in ws))
