"""Log times (ISO-8601) to unix seconds, fast enough to run on every line.

Request logs carry one UTC time per line and consecutive lines share their hour, so the
hour's epoch is cached by the ``YYYY-MM-DDTHH`` prefix and only minutes and seconds are parsed.
Anything off that fast path (offsets other than UTC, odd layouts) goes through
``datetime.fromisoformat``; a value that is not a time gives None, never an exception.
"""

from __future__ import annotations

from typing import Final

from trackguard.core.coerce import parse_iso

_UTC_SUFFIXES: Final = frozenset({"Z", "+00:00", "z"})
_CACHE_LIMIT: Final = 65_536
#: Two ASCII digits to their value, up to a leap second: one lookup checks and converts
#: (``str.isdigit`` also accepts digits ``int`` refuses, such as ``"²"``).
_SIXTY: Final = {f"{n:02d}": n for n in range(61)}
#: The same for the last three characters of a plain UTC time, ``SS`` and ``Z``: one lookup
#: also checks the layout (the cached minute prefix is 17 characters, so the time is 20).
SECONDS_Z: Final = {f"{n:02d}Z": n for n in range(61)}


class LogClock:
    """Parses log times; keeps bounded caches of hour and minute prefixes."""

    __slots__ = ("_hours", "minutes")

    def __init__(self) -> None:
        self._hours: dict[str, int] = {}
        #: "YYYY-MM-DDTHH:MM:" of plain "...:SSZ" times -> the minute's epoch (cleared, never
        #: replaced, when full: the auditor reads it directly).
        self.minutes: dict[str, int] = {}

    def parse(self, text: str) -> int | None:
        """Unix seconds for an ISO-8601 time, or None when it is not one."""
        minute = self.minutes.get(text[:17])  # the common case: a minute seen before
        ss = SECONDS_Z.get(text[17:])
        if ss is not None:
            if minute is not None:
                return minute + ss
            # the next: a new minute of an hour seen before, "YYYY-MM-DDTHH:MM:SSZ"
            hour = self._hours.get(text[:13])
            mm = _SIXTY.get(text[14:16])
            if hour is not None and mm is not None and mm < 60 and text[13] == ":" == text[16]:
                minute = hour + mm * 60
                self._remember(text, minute)
                return minute + ss
        value = self._parse(text)
        if value is not None and len(text) == 20 and text[19] == "Z" and text[16] == ":":
            self._remember(text, value - _SIXTY[text[17:19]])
        return value

    def _remember(self, text: str, minute: int) -> None:
        """Keep the epoch of ``text``'s minute (a plain "...:SSZ" time) for the next lines."""
        minutes = self.minutes
        if len(minutes) >= _CACHE_LIMIT:
            minutes.clear()
        minutes[text[:17]] = minute

    def _parse(self, text: str) -> int | None:
        if _fast_layout(text):
            hour = self._hours.get(text[:13])
            if hour is None:
                hour = parse_iso(text[:13] + ":00:00+00:00")
                if hour is None:
                    return None
                if len(self._hours) >= _CACHE_LIMIT:
                    self._hours.clear()
                self._hours[text[:13]] = hour
            mm, ss = _SIXTY.get(text[14:16]), _SIXTY.get(text[17:19])
            if mm is None or ss is None or mm > 59:
                return None
            return hour + mm * 60 + ss
        return parse_iso(text)


def _fast_layout(text: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS`` then ``Z``/``+00:00``, optionally after a fraction."""
    if len(text) < 20 or text[13] != ":" or text[16] != ":":
        return False
    rest = text[19:]
    if rest in _UTC_SUFFIXES:
        return True
    if rest[0] != ".":
        return False
    i = 1
    while i < len(rest) and rest[i].isdigit():
        i += 1
    return i > 1 and rest[i:] in _UTC_SUFFIXES
