"""Keeping credentials out of everything trackguard writes down (quarantine, logs, records)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[redacted]"
SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Header pairs with names lower-cased and credentials replaced by ``[redacted]``."""
    return tuple(
        (name.lower(), REDACTED if name.lower() in SECRET_HEADERS else value)
        for name, value in headers
    )
