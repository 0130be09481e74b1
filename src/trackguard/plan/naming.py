"""Event-name conventions: split a name into words, and write words in a convention.

``Order Completed``, ``orderCompleted``, ``order-completed`` and ``ORDER_COMPLETED`` all have
the words ``order completed``; their *key* is ``order_completed``. Names with the same key are
the same event written differently (naming drift).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

_UP: Final = "A-Z\u00c0-\u00d6\u00d8-\u00de"
_LO: Final = "a-z\u00df-\u00f6\u00f8-\u00ff\u0100-\uffff"  # other scripts: as lower case
#: A word: an acronym before a capitalized word, a (capitalized) lower-case run, an upper-case
#: run, or a number; digits stay with the word they follow (``v2``, ``step1``).
_WORDS: Final = re.compile(
    rf"[{_UP}]+(?=[{_UP}][{_LO}])|[{_UP}]?[{_LO}]+[0-9]*|[{_UP}]+[0-9]*|[0-9]+[{_LO}]*"
)


@lru_cache(maxsize=4096)
def words(name: str) -> tuple[str, ...]:
    """The lower-case words of a name, whatever its case and separators."""
    return tuple(w.lower() for w in _WORDS.findall(name))


@lru_cache(maxsize=4096)
def name_key(name: str) -> str:
    """The convention-free key of a name: its words joined by ``_``."""
    return "_".join(words(name))


def to_convention(name: str, convention: str) -> str:
    """Write ``name`` in ``convention``; ``none`` only trims surrounding spaces."""
    ws = words(name)
    if convention == "none" or not ws:
        return name.strip()
    if convention == "snake_case":
        return "_".join(ws)
    if convention == "kebab-case":
        return "-".join(ws)
    if convention == "camelCase":
        return ws[0] + "".join(w.capitalize() for w in ws[1:])
    if convention == "PascalCase":
        return "".join(w.capitalize() for w in ws)
    raise ValueError(f"unknown naming convention: {convention}")


def follows(name: str, convention: str) -> bool:
    """True when ``name`` is already written in ``convention``."""
    return convention == "none" or to_convention(name, convention) == name
