"""Load an alert file (YAML) into :class:`AlertConfig`, failing at start-up with clear errors.

Every problem names the file, the line and column, and the place in it
(``alerts.yaml:14:13: rules[2] (cart-invalid).window: ...``) and says what was expected.
``${NAME}`` in a channel's ``url`` or ``routing_key`` is read from the environment, so
secrets stay out of the file; a missing variable is an error, and its value is never echoed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, Final, cast

from trackguard import durations, yamlfile
from trackguard.errors import ConfigError
from trackguard.monitor.health import METRICS as HEALTH_METRICS
from trackguard.monitor.rules import (
    CHANNEL_TYPES,
    PAGERDUTY_URL,
    RULE_KINDS,
    SEVERITIES,
    ActiveHours,
    AlertConfig,
    Channel,
    ChannelType,
    Rule,
    RuleKind,
    Scope,
    Severity,
)
from trackguard.monitor.tally import DELIVERY_OUTCOMES, REQUEST_OUTCOMES


class RuleError(ConfigError, ValueError):
    """The alert file is invalid; the message says where and why."""


_ENV: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK: Final = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_TOP_KEYS: Final = frozenset({"version", "settings", "groups", "channels", "rules"})
_SETTINGS_KEYS: Final = frozenset({"evaluate_every", "retention", "health_every"})
_CHANNEL_KEYS: Final = frozenset(
    {"type", "url", "routing_key", "timeout", "max_attempts", "backoff"}
)
_COMMON_KEYS: Final = frozenset(
    {"name", "kind", "severity", "channels", "description", "for", "resolve_after", "renotify"}
)
_KIND_KEYS: Final[dict[str, frozenset[str]]] = {
    "rate": frozenset(
        {"events", "routes", "sources", "outcomes", "codes", "window", "threshold", "resolve"}
        | {"min_volume"}
    ),
    "count": frozenset(
        {"events", "routes", "sources", "outcomes", "codes", "window", "threshold", "resolve"}
    ),
    "volume": frozenset(
        {"events", "sources", "window", "drop", "below", "baseline", "trailing", "min_baseline"}
        | {"active_hours"}
    ),
    "backlog": frozenset({"metric", "threshold", "resolve"}),
    "upstream_errors": frozenset({"window", "threshold", "resolve", "min_volume"}),
    "health_growth": frozenset({"metric", "window", "threshold", "resolve", "min_volume"}),
    "request_log": frozenset({"window", "threshold"}),
    "delivery_circuit": frozenset(),
}
_KNOWN_OUTCOMES: Final = frozenset(REQUEST_OUTCOMES) | frozenset(DELIVERY_OUTCOMES)
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def parse_duration(value: object) -> float:
    """``"15m"``, ``"2h"``, ``"30s"``, ``"7d"`` (the syntax of :mod:`trackguard.durations`) or a
    number of seconds, as seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like 15m, 2h, 30s or 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = float(durations.parse_duration(value))
    else:
        raise ValueError(f"{value!r} is not a duration like 15m, 2h, 30s or 7d")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} must be a positive duration")
    return seconds


def parse_window(value: object) -> float:
    """A rule's window: a duration of at least a minute, since counters are kept per minute
    (a 30s window would read an empty bucket for half of every minute)."""
    seconds = parse_duration(value)
    if seconds < 60:
        raise ValueError(
            f"{value!r} is shorter than a minute: counters are per minute, use 1m or more"
        )
    return seconds


def parse_fraction(value: object) -> float:
    """``"1%"`` or a number from 0 to 1, as a fraction."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage like 1% or 0.5%") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"{value!r} is not a percentage like 1% or a fraction like 0.01")
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"{value!r} must be between 0% and 100%")
    return number


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """``${NAME}`` replaced by the environment's value, ``${NAME:-default}`` with a default;
    KeyError(NAME) when it is not set and has no default."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) in env:
            return env[m.group(1)]
        if m.group(2) is not None:
            return m.group(2)
        raise KeyError(m.group(1))

    return _ENV.sub(sub, value)


def load_alerts(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> AlertConfig:
    """Read and validate an alert file; :class:`RuleError` names the file and the place."""
    where = os.fspath(path)
    try:
        root = yamlfile.load(where, "alert file")
    except yamlfile.YAMLFileError as exc:
        raise RuleError(str(exc)) from None
    doc = None if root is None else yamlfile.plain(root)
    try:
        return parse_alerts(doc, os.environ if env is None else env)
    except RuleError as exc:
        raise RuleError(str(yamlfile.issue_for(where, root, str(exc)))) from None


def parse_alerts(doc: object, env: Mapping[str, str]) -> AlertConfig:
    """Validate an already parsed alert document."""
    top = _mapping(doc, "the file")
    _keys(top, _TOP_KEYS, "the file")
    if top.get("version", 1) != 1:
        raise RuleError(f"version: {top.get('version')!r} is not supported (only 1)")
    settings = _mapping(top.get("settings", {}), "settings")
    _keys(settings, _SETTINGS_KEYS, "settings")
    groups = _groups(top.get("groups", {}))
    channels = _channels(top.get("channels", {}), env)
    raw_rules = top.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RuleError("rules: expected a list of rules")
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        label = f"rules[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        try:
            rules.append(_rule(_mapping(raw, "a rule"), groups, channels))
        except RuleError as exc:
            raise RuleError(f"{label}.{exc}" if _is_field(exc) else f"{label}: {exc}") from None
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise RuleError(f"rules: the name {name!r} is used by more than one rule")
    return AlertConfig(
        rules=tuple(rules),
        channels=channels,
        evaluate_every=_field(settings, "evaluate_every", parse_duration, 30.0),
        retention=_field(settings, "retention", parse_duration, 8 * 86400.0),
        health_every=_field(settings, "health_every", parse_duration, 900.0),
    )


class _FieldError(RuleError):
    """A problem with one field: rendered as ``place.field: reason``."""


def _is_field(exc: RuleError) -> bool:
    return isinstance(exc, _FieldError)


def _field(raw: Mapping[str, Any], key: str, parse: Any, default: Any) -> Any:
    if key not in raw:
        return default
    try:
        return parse(raw[key])
    except ValueError as exc:
        raise _FieldError(f"{key}: {exc}") from None


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise RuleError(f"{what}: expected a mapping, got {type(value).__name__}")
    return cast(dict[str, Any], value)


def _keys(raw: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RuleError(yamlfile.unknown_key(unknown[0], allowed, what))


def _strings(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise ValueError("expected a name or a non-empty list of names")
    return cast(list[str], items)


def _groups(raw: object) -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    for name, members in _mapping(raw, "groups").items():
        try:
            groups[name] = frozenset(_strings(members))
        except ValueError as exc:
            raise RuleError(f"groups.{name}: {exc}") from None
    return groups


def _channels(raw: object, env: Mapping[str, str]) -> dict[str, Channel]:
    out: dict[str, Channel] = {}
    for name, spec in _mapping(raw, "channels").items():
        place = f"channels.{name}"
        body = _mapping(spec, place)
        _keys(body, _CHANNEL_KEYS, place)
        kind = body.get("type")
        if kind not in CHANNEL_TYPES:
            raise RuleError(f"{place}.type: {kind!r} is not one of {', '.join(CHANNEL_TYPES)}")
        secrets: dict[str, str] = {}
        for key in ("url", "routing_key"):
            value = body.get(key, "")
            if not isinstance(value, str):
                raise RuleError(f"{place}.{key}: expected a string")
            try:
                secrets[key] = expand_env(value, env)
            except KeyError as missing:
                raise RuleError(
                    f"{place}.{key}: the environment variable {missing.args[0]} is not set"
                ) from None
        if kind == "pagerduty":
            secrets["url"] = secrets["url"] or PAGERDUTY_URL
            if not secrets["routing_key"]:
                raise RuleError(f"{place}.routing_key: a PagerDuty channel needs a routing key")
        if kind in ("slack", "pagerduty", "webhook") and not secrets["url"].startswith(
            ("https://", "http://")
        ):
            raise RuleError(f"{place}.url: a {kind} channel needs an http(s) URL")
        try:
            attempts = int(body.get("max_attempts", 5))
        except (TypeError, ValueError):
            raise RuleError(f"{place}.max_attempts: expected a whole number") from None
        if attempts < 1:
            raise RuleError(f"{place}.max_attempts: must be at least 1")
        out[name] = Channel(
            name=name,
            type=cast(ChannelType, kind),
            url=secrets["url"],
            routing_key=secrets["routing_key"],
            timeout=_field(body, "timeout", parse_duration, 5.0),
            max_attempts=attempts,
            backoff=_field(body, "backoff", parse_duration, 1.0),
        )
    return out


def _names(raw: Mapping[str, Any], key: str, groups: Mapping[str, frozenset[str]]) -> Any:
    if key not in raw:
        return None
    try:
        names: set[str] = set()
        for item in _strings(raw[key]):
            names |= groups.get(item, {item})
        return frozenset(names)
    except ValueError as exc:
        raise _FieldError(f"{key}: {exc}") from None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number >= 0")
    return value


def _rule(
    raw: dict[str, Any], groups: Mapping[str, frozenset[str]], channels: Mapping[str, Channel]
) -> Rule:
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _FieldError("name: a rule needs a name of letters, digits, '_', '-' or '.'")
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        raise _FieldError(f"kind: {kind!r} is not one of {', '.join(RULE_KINDS)}")
    _keys(raw, _COMMON_KEYS | _KIND_KEYS[kind], f"a {kind} rule")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise _FieldError(f"severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    wanted = _names(raw, "channels", {}) or frozenset()
    for channel in sorted(wanted):
        if channel not in channels:
            raise _FieldError(f"channels: {channel!r} is not defined under channels")
    outcomes = _names(raw, "outcomes", {})
    codes = _names(raw, "codes", {}) or frozenset()
    for outcome in sorted(outcomes or ()):
        if outcome not in _KNOWN_OUTCOMES:
            raise _FieldError(
                f"outcomes: {outcome!r} is not one of {', '.join(sorted(_KNOWN_OUTCOMES))}"
            )
    common: dict[str, Any] = {
        "name": name,
        "kind": cast(RuleKind, kind),
        "severity": cast(Severity, severity),
        "channels": tuple(c for c in _strings(raw["channels"]) if c) if wanted else (),
        "description": str(raw.get("description", "")),
        "pending_for": _field(raw, "for", _duration_or_zero, 0.0),
        "resolve_after": _field(raw, "resolve_after", _duration_or_zero, 0.0),
        "renotify": _field(raw, "renotify", parse_duration, None),
        "scope": Scope(
            events=_names(raw, "events", groups),
            routes=_names(raw, "routes", {}),
            sources=_names(raw, "sources", {}),
        ),
    }
    if kind in ("rate", "count"):
        if outcomes is None and not codes:
            outcomes = frozenset({"invalid", "rejected"}) if kind == "rate" else None
        if outcomes is None and not codes:
            raise _FieldError("codes: a count rule needs codes or outcomes to count")
    if kind == "rate":
        threshold = _required(raw, "threshold", parse_fraction)
        return Rule(
            **common,
            window=_required(raw, "window", parse_window),
            threshold=threshold,
            resolve=_field(raw, "resolve", parse_fraction, threshold * 0.8),
            min_volume=_field(raw, "min_volume", _count, 100),
            outcomes=outcomes or frozenset(),
            codes=codes,
        )
    if kind == "count":
        threshold = float(_field(raw, "threshold", _count, 1))
        return Rule(
            **common,
            window=_required(raw, "window", parse_window),
            threshold=threshold,
            resolve=float(_field(raw, "resolve", _count, threshold)),
            outcomes=outcomes or frozenset(),
            codes=codes,
        )
    if kind == "volume":
        return _volume_rule(raw, common)
    if kind == "backlog":
        metric = raw.get("metric")
        if metric not in ("pending", "age"):
            raise _FieldError(f"metric: {metric!r} is not 'pending' or 'age'")
        parse = parse_duration if metric == "age" else (lambda v: float(_count(v)))
        threshold = _required(raw, "threshold", parse)
        return Rule(
            **common,
            window=60.0,
            metric=metric,
            threshold=threshold,
            resolve=_field(raw, "resolve", parse, threshold * 0.8),
        )
    if kind == "upstream_errors":
        threshold = _required(raw, "threshold", parse_fraction)
        return Rule(
            **common,
            window=_required(raw, "window", parse_window),
            threshold=threshold,
            resolve=_field(raw, "resolve", parse_fraction, threshold * 0.8),
            min_volume=_field(raw, "min_volume", _count, 20),
        )
    if kind == "delivery_circuit":
        return Rule(**common, window=60.0, threshold=0.0, resolve=0.0)
    if kind == "request_log":
        threshold = float(_field(raw, "threshold", _count, 1))
        return Rule(
            **common,
            window=_field(raw, "window", parse_duration, 300.0),
            threshold=threshold,
            resolve=threshold,
        )
    metric = raw.get("metric")
    if metric not in HEALTH_METRICS:
        raise _FieldError(f"metric: {metric!r} is not one of {', '.join(HEALTH_METRICS)}")
    threshold = _required(raw, "threshold", parse_fraction)
    return Rule(
        **common,
        window=_required(raw, "window", parse_window),
        metric=metric,
        threshold=threshold,
        resolve=_field(raw, "resolve", parse_fraction, threshold * 0.8),
        min_volume=_field(raw, "min_volume", _count, 10),
    )


def _volume_rule(raw: dict[str, Any], common: dict[str, Any]) -> Rule:
    if common["scope"].events is None:
        raise _FieldError("events: a volume rule needs the events it watches")
    if "drop" not in raw and "below" not in raw:
        raise _FieldError("drop: a volume rule needs drop (against a baseline) or below")
    baseline = raw.get("baseline", "week_ago" if "drop" in raw else None)
    if baseline not in (None, "week_ago", "trailing"):
        raise _FieldError(f"baseline: {baseline!r} is not 'week_ago' or 'trailing'")
    below = _field(raw, "below", _count, None)
    return Rule(
        **common,
        window=_required(raw, "window", parse_window),
        threshold=_field(raw, "drop", parse_fraction, 0.0),
        resolve=0.0,
        min_volume=_field(raw, "min_baseline", _count, 20),
        baseline=baseline,
        trailing=_field(raw, "trailing", parse_duration, 7 * 86400.0),
        below=None if below is None else float(below),
        active_hours=_field(raw, "active_hours", _active_hours, None),
    )


def _duration_or_zero(value: object) -> float:
    return 0.0 if value in (0, "0", "0s", "0m") else parse_duration(value)


def _required(raw: Mapping[str, Any], key: str, parse: Any) -> Any:
    if key not in raw:
        raise _FieldError(f"{key}: required for this kind of rule")
    return _field(raw, key, parse, None)


def _active_hours(value: object) -> ActiveHours:
    if not isinstance(value, dict):
        raise ValueError("expected {days: mon-fri, from: '09:00', to: '18:00', timezone: UTC}")
    unknown = set(value) - {"days", "from", "to", "timezone"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} (expected days, from, to, timezone)")
    days = _days(value.get("days", "mon-sun"))
    start, end = _clock(value.get("from", "00:00")), _clock(value.get("to", "24:00"))
    if end <= start:
        raise ValueError("'to' must be later than 'from'")
    tz = value.get("timezone", "UTC")
    if not isinstance(tz, str):
        raise ValueError("timezone: expected a name like Europe/Berlin")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except (ValueError, KeyError, OSError):
        raise ValueError(f"timezone {tz!r} is not known") from None
    return ActiveHours(days=days, start=start, end=end, timezone=tz)


def _days(value: object) -> frozenset[int]:
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts:
        raise ValueError("days: expected e.g. mon-fri or [mon, wed, fri]")
    days: set[int] = set()
    for part in parts:
        text = str(part).strip().lower()
        first, _, last = text.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"days: {part!r} is not a day like mon or a range like mon-fri")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


def _clock(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1440:
        return value  # YAML 1.1 reads an unquoted 18:00 as the base-60 number 1080
    m = _CLOCK.match(str(value))
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"{value!r} is not a time of day like 09:00")
    return int(m.group(1)) * 60 + int(m.group(2))
