"""Durations and points in time as people type them: ``30d``, ``1h30m``, ``2026-11-01``.

Retention settings, ``--older-than``, ``--since``, the console's filters and alert windows all
read the same syntax here, so a value that works in one place works in every other, with the
same error message. Durations are whole seconds: sub-second precision is never what an
operator means. Times are written one way too (:func:`iso_time`: the request log, quarantine
exports, Pipelines timestamps, the CLI's tables), a form :func:`parse_instant` reads back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from trackguard.errors import InputError

__all__ = [
    "MAX_DURATION",
    "UNITS",
    "DurationError",
    "format_duration",
    "iso_time",
    "parse_duration",
    "parse_instant",
]

#: Seconds per unit, largest first (``format_duration`` relies on the order).
UNITS: Final[dict[str, int]] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}

#: The longest duration accepted (100 years): anything longer is a typo, and would overflow
#: date arithmetic further on.
MAX_DURATION: Final = 36_500 * 86_400

_PART: Final = re.compile(r"([0-9]+)([wdhms])")
_PARTS: Final = re.compile(r"(?:[0-9]+[wdhms])+")
_BARE: Final = re.compile(r"[0-9]+")
_HINT: Final = "write a number with a unit: 30s, 15m, 24h, 7d, 2w, or combined: 1h30m"


class DurationError(InputError, ValueError):
    """A duration or point in time that cannot be read; the message says what to write."""


def parse_duration(text: str) -> int:
    """Seconds in ``text``: ``"90"`` (seconds), ``"30s"``, ``"15m"``, ``"24h"``, ``"7d"``,
    ``"2w"`` or a combination such as ``"1d12h"``.

    Units are lower-case only, so ``M`` cannot be mistaken for months. Surrounding whitespace
    is ignored. Raises :class:`DurationError` for anything else and for more than 100 years.
    """
    value = text.strip()
    if _BARE.fullmatch(value):
        seconds = int(value)
    elif _PARTS.fullmatch(value):
        seconds = sum(int(n) * UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise DurationError(f"{text!r} is not a duration: {_HINT}")
    if seconds > MAX_DURATION:
        raise DurationError(f"{text!r} is longer than 100 years (36500d)")
    return seconds


def format_duration(seconds: int) -> str:
    """Text :func:`parse_duration` reads back as ``seconds``, in days down to seconds:
    ``30d``, ``1d12h``, ``0s``."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    parts: list[str] = []
    rest = seconds
    for unit, size in UNITS.items():
        if unit == "w":
            continue  # "30d" reads better than "4w2d", and retention is set in days
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


def parse_instant(text: str, now: float) -> float:
    """A Unix time from ``text``: a duration ago (``"7d"``: seven days before ``now``) or an
    ISO 8601 date or date-time (``"2026-11-01"``, ``"2026-11-01T12:00:00Z"``, any offset).

    A date-time without an offset, and a bare date (midnight), are UTC: the quarantine and
    the logs are in UTC, so a filter means the same on every machine. A bare number is
    refused rather than guessed at: ``2026`` could be a year or 2026 seconds.
    """
    value = text.strip()
    if _BARE.fullmatch(value):
        raise DurationError(
            f"{text!r} is ambiguous: write a duration with a unit (90s, 7d) for that long ago,"
            " or a date (2026-11-01)"
        )
    if _PARTS.fullmatch(value):
        return now - parse_duration(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DurationError(
            f"{text!r} is neither a duration nor a date: write 7d or 24h (that long ago),"
            " 2026-11-01 or 2026-11-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError) as exc:  # year 1 in a negative offset, and the like
        raise DurationError(f"{text!r} is out of range: {exc}") from None


def iso_time(ts: float) -> str:
    """``ts`` as ISO 8601 UTC with milliseconds (``2026-11-01T12:00:00.000Z``); "" for a time
    no date can hold."""
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
