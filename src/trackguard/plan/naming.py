"""Event-name conventions: split a name into words, and write words in a convention.

``Order Completed``, ``orderCompleted``, ``order-completed`` and ``ORDER_COMPLETED`` all have
the words ``order completed``; their *key* is ``order_completed``. Names with the same key are
the same event written differently (naming drift).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

_WORDS: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


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
