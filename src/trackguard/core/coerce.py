"""Pure value coercions for ``fix`` rules, and the timestamp classifier.

Each coercion returns ``(True, value)`` with the coerced value, or ``(False, None)`` when the
input cannot be turned into the type without guessing. Nothing here raises on any JSON value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final

from trackguard.contract.identifiers import is_email

_INT: Final = re.compile(r"[+-]?\d+")
_NUMBER: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})
_NO: Final = (False, None)

#: Unix seconds above this are milliseconds (1e11 s is the year 5138).
MS_THRESHOLD: Final = 100_000_000_000
US_THRESHOLD: Final = 100_000_000_000_000
NS_THRESHOLD: Final = 100_000_000_000_000_000


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def to_number(v: Any) -> tuple[bool, Any]:
    if is_number(v):
        return (True, v) if not isinstance(v, float) or math.isfinite(v) else _NO
    if isinstance(v, str):
        s = v.strip()
        if _INT.fullmatch(s):
            try:
                return True, int(s)
            except ValueError:  # over Python's digit limit for int()
                return _NO
        if _NUMBER.fullmatch(s):
            f = float(s)
            return (True, f) if math.isfinite(f) else _NO
    return _NO


def to_integer(v: Any) -> tuple[bool, Any]:
    ok, n = to_number(v)
    if not ok:
        return _NO
    if isinstance(n, float):
        return (True, int(n)) if n.is_integer() else _NO
    return True, n


def to_boolean(v: Any) -> tuple[bool, Any]:
    if isinstance(v, bool):
        return True, v
    if isinstance(v, int) and v in (0, 1):
        return True, bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True, True
        if s in _FALSE:
            return True, False
    return _NO


def to_string(v: Any) -> tuple[bool, Any]:
    if isinstance(v, str):
        return True, v
    if is_number(v):
        return True, str(v)
    return _NO


def to_email(v: Any) -> tuple[bool, Any]:
    if not isinstance(v, str):
        return _NO
    s = v.strip().lower()
    return (True, s) if is_email(s) else _NO


def timestamp_kind(v: Any) -> str:
    """How a timestamp is written: ``seconds``, ``milliseconds``, ``microseconds``,
    ``nanoseconds``, ``float_seconds``, ``numeric_string``, ``iso8601``, ``negative`` or
    ``invalid``. Only ``seconds`` is what Customer.io expects."""
    if isinstance(v, bool):
        return "invalid"
    if isinstance(v, int):
        if v < 0:
            return "negative"
        if v >= NS_THRESHOLD:
            return "nanoseconds"
        if v >= US_THRESHOLD:
            return "microseconds"
        if v >= MS_THRESHOLD:
            return "milliseconds"
        return "seconds"
    if isinstance(v, float):
        return "float_seconds" if math.isfinite(v) and v >= 0 else "invalid"
    if isinstance(v, str):
        s = v.strip()
        if _NUMBER.fullmatch(s):
            return "numeric_string"
        if parse_iso(s) is not None:
            return "iso8601"
    return "invalid"


def parse_iso(s: str) -> int | None:
    """Unix seconds of an ISO-8601 date-time (UTC when it has no offset), or None."""
    if len(s) < 10 or len(s) > 40 or not s[:4].isdigit():
        return None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return int(dt.timestamp())
    except (OverflowError, OSError, ValueError):  # pragma: no cover - extreme years
        return None


def to_timestamp(v: Any) -> tuple[bool, Any]:
    """Unix seconds from seconds, ms, µs, ns, float seconds, numeric strings or ISO-8601.

    Only results below :data:`MS_THRESHOLD` count: anything later is no time a store means,
    and converting it again would change it again (a fix must be idempotent).
    """
    ok, value = _to_timestamp(v)
    if ok and value >= MS_THRESHOLD:
        return _NO
    return ok, value


def _to_timestamp(v: Any) -> tuple[bool, Any]:
    if isinstance(v, bool):
        return _NO
    if isinstance(v, str):
        s = v.strip()
        if _NUMBER.fullmatch(s):
            ok, n = to_number(s)
            return _to_timestamp(n) if ok else _NO
        iso = parse_iso(s)
        return _NO if iso is None or iso < 0 else (True, iso)
    if isinstance(v, float):
        if not math.isfinite(v) or v < 0:
            return _NO
        return _to_timestamp(int(v))
    if isinstance(v, int):
        if v < 0:
            return _NO
        if v >= NS_THRESHOLD:
            return True, v // 1_000_000_000
        if v >= US_THRESHOLD:
            return True, v // 1_000_000
        if v >= MS_THRESHOLD:
            return True, v // 1000
        return True, v
    return _NO
