"""Turn a rule and the counters into a :class:`Measurement`: a value, and whether it breaches.

``breach`` and ``clear`` are separate so rules have hysteresis: a rate fires above its
threshold and clears only at or below its (lower) ``resolve`` level; in between, the state
stays as it is. Windows end at the current (partial) minute and span ``window`` of buckets.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

from trackguard.delivery.circuit import CircuitState
from trackguard.monitor.db import CountRow, MonitorDB
from trackguard.monitor.rules import ActiveHours, Rule
from trackguard.monitor.tally import DELIVERY, REQUEST_LOG, REQUEST_OUTCOMES, UNKNOWN

_REQUESTS: Final = frozenset(REQUEST_OUTCOMES)
_LANDED: Final = frozenset({"accepted", "fixed", "warned"})
WEEK: Final = 7 * 86400.0


@dataclass(frozen=True)
class Measurement:
    """One evaluation of a rule, with the figures a notification shows."""

    value: float | None
    breach: bool
    clear: bool
    summary: str
    numbers: tuple[tuple[str, str], ...] = ()
    reasons: tuple[tuple[str, int], ...] = ()
    events: tuple[tuple[str, int], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


def percent(value: float) -> str:
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def active(hours: ActiveHours | None, ts: float) -> bool:
    """Whether ``ts`` falls inside the rule's active hours (always, without any)."""
    if hours is None:
        return True
    local = dt.datetime.fromtimestamp(ts, ZoneInfo(hours.timezone))
    minute = local.hour * 60 + local.minute
    return local.weekday() in hours.days and hours.start <= minute < hours.end


def _share(part: int, total: int, rule: Rule) -> tuple[float, bool, bool]:
    """``part / total`` judged against the rule: (value, breach, clear).

    With fewer than ``min_volume`` in the total it neither fires nor clears: an app broken so
    badly it barely sends, or delivery backing off during an outage, must not resolve the
    alert it raised.
    """
    value = part / total if total else 0.0
    enough = total >= rule.min_volume
    return value, enough and value > rule.threshold, enough and value <= rule.resolve


def _top(counter: Counter[str], n: int = 5) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


class Evaluator:
    """Evaluates rules against the counter tables; one instance per monitor thread."""

    def __init__(
        self,
        db: MonitorDB,
        backlog: Callable[[], tuple[int, float | None]],
        watching_since: float | None = None,
        request_log_error: Callable[[], str | None] = lambda: None,
        circuit: Callable[[], CircuitState | None] = lambda: None,
    ) -> None:
        self._db = db
        self._backlog = backlog
        self._request_log_error = request_log_error
        self._circuit = circuit
        #: When this monitor started counting: a volume rule judges only whole windows it saw,
        #: so a restart does not read "no orders for 30 minutes" from minutes nobody counted.
        self._since = watching_since
        self._cache: dict[tuple[float, float], list[CountRow]] = {}

    def reset(self) -> None:
        """Forget cached window reads (call once per evaluation round)."""
        self._cache.clear()

    def _rows(self, since: float, until: float) -> list[CountRow]:
        key = (since // 60, until // 60)
        if key not in self._cache:
            self._cache[key] = self._db.counts(since, until)
        return self._cache[key]

    def _window(self, rule: Rule, now: float, shift: float = 0.0) -> list[CountRow]:
        return self._rows(now - shift - rule.window + 60, now - shift + 60)

    def evaluate(self, rule: Rule, now: float) -> Measurement:
        kind = rule.kind
        if kind == "rate":
            return self._rate(rule, now)
        if kind == "count":
            return self._count(rule, now)
        if kind == "volume":
            return self._volume(rule, now)
        if kind == "backlog":
            return self._backlog_rule(rule, now)
        if kind == "upstream_errors":
            return self._upstream(rule, now)
        if kind == "request_log":
            return self._request_log(rule, now)
        if kind == "delivery_circuit":
            return self._circuit_rule(now)
        return self._health(rule, now)

    def _matching(self, rule: Rule, rows: list[CountRow]) -> list[CountRow]:
        scope = rule.scope
        return [r for r in rows if scope.matches(r.event, r.route, r.source, unknown=UNKNOWN)]

    def _bad(self, rule: Rule, rows: list[CountRow]) -> tuple[int, int, Counter[str], Counter[str]]:
        total = bad = 0
        reasons: Counter[str] = Counter()
        events: Counter[str] = Counter()
        for r in self._matching(rule, rows):
            if r.kind == "outcome":
                if r.name in _REQUESTS:
                    total += r.n
                if r.name in rule.outcomes:
                    bad += r.n
                    events[r.event] += r.n
            else:
                if r.name in rule.codes:
                    bad += r.n
                    events[r.event] += r.n
                if not rule.codes or r.name in rule.codes:
                    reasons[r.name] += r.n
        return total, bad, reasons, events

    def _rate(self, rule: Rule, now: float) -> Measurement:
        total, bad, reasons, events = self._bad(rule, self._window(rule, now))
        value, breach, clear = _share(bad, total, rule)
        return Measurement(
            value=value,
            breach=breach,
            clear=clear,
            summary=(
                f"{percent(value)} of {total} requests over {duration(rule.window)} "
                f"(threshold {percent(rule.threshold)})"
            ),
            numbers=(
                ("rate", percent(value)),
                ("matching", str(bad)),
                ("requests", str(total)),
                ("threshold", percent(rule.threshold)),
                ("window", duration(rule.window)),
            ),
            reasons=_top(reasons),
            events=_top(events),
        )

    def _count(self, rule: Rule, now: float) -> Measurement:
        _, bad, reasons, events = self._bad(rule, self._window(rule, now))
        return Measurement(
            value=float(bad),
            breach=bad >= rule.threshold,
            clear=bad < rule.resolve,
            summary=f"{bad} over {duration(rule.window)} (threshold {rule.threshold:g})",
            numbers=(
                ("count", str(bad)),
                ("threshold", f"{rule.threshold:g}"),
                ("window", duration(rule.window)),
            ),
            reasons=_top(reasons),
            events=_top(events, 10),
        )

    def _landed(self, rule: Rule, rows: list[CountRow]) -> int:
        return sum(
            r.n for r in self._matching(rule, rows) if r.kind == "outcome" and r.name in _LANDED
        )

    def _volume(self, rule: Rule, now: float) -> Measurement:
        current = self._landed(rule, self._window(rule, now))
        baseline: float | None = None
        if rule.baseline == "week_ago":
            baseline = float(self._landed(rule, self._window(rule, now, WEEK)))
        elif rule.baseline == "trailing":
            rows = self._rows(now - rule.window - rule.trailing + 60, now - rule.window + 60)
            baseline = self._landed(rule, rows) * rule.window / rule.trailing
        on = active(rule.active_hours, now) and active(rule.active_hours, now - rule.window)
        floor = rule.below if rule.below is not None else 0.0
        if baseline is not None and baseline >= rule.min_volume and rule.threshold > 0:
            floor = max(floor, baseline * (1 - rule.threshold))
        seen = self._since is None or now - self._since >= rule.window
        breach = on and seen and current < floor
        # Outside active hours (and while warming up) nothing is known: a firing alert stays
        # firing rather than resolving at closing time with the orders still missing.
        clear = on and seen and not breach
        numbers = [("events", str(current)), ("window", duration(rule.window))]
        if baseline is not None:
            numbers.append((f"baseline ({rule.baseline})", f"{baseline:g}"))
        text = f"{current} events over {duration(rule.window)}"
        if baseline is not None:
            text += f" against a baseline of {baseline:g}"
        if rule.below is not None:
            text += f" (alert below {rule.below:g})"
        return Measurement(
            value=float(current),
            breach=breach,
            clear=clear,
            summary=text,
            numbers=tuple(numbers),
            extra={"baseline": baseline, "active": on},
        )

    def _backlog_rule(self, rule: Rule, now: float) -> Measurement:
        pending, oldest = self._backlog()
        numbers: tuple[tuple[str, str], ...] = (("pending", str(pending)),)
        if rule.metric == "pending":
            value = float(pending)
            text = f"{pending} operations waiting for delivery (threshold {rule.threshold:g})"
        else:
            value = 0.0 if oldest is None else max(0.0, now - oldest)
            text = (
                f"oldest undelivered operation is {duration(round(value))} old "
                f"(threshold {duration(rule.threshold)})"
            )
            numbers += (("age", f"{value:g}"),)
        return Measurement(
            value=value,
            breach=value > rule.threshold,
            clear=value <= rule.resolve,
            summary=text,
            numbers=numbers,
        )

    def _upstream(self, rule: Rule, now: float) -> Measurement:
        sent = errors = 0
        for r in self._window(rule, now):
            if r.event == DELIVERY and r.name == "upstream_request":
                sent += r.n
            elif r.event == DELIVERY and r.name == "upstream_error":
                errors += r.n
        value, breach, clear = _share(errors, sent, rule)
        return Measurement(
            value=value,
            breach=breach,
            clear=clear,
            summary=(
                f"{percent(value)} of {sent} upstream requests failed over "
                f"{duration(rule.window)} (threshold {percent(rule.threshold)})"
            ),
            numbers=(("error rate", percent(value)), ("errors", str(errors)), ("sent", str(sent))),
        )

    def _request_log(self, rule: Rule, now: float) -> Measurement:
        """Fires while the writer fails, or when it dropped ``threshold`` lines in the window."""
        dropped = sum(
            r.n
            for r in self._window(rule, now)
            if r.event == REQUEST_LOG and r.name == "request_log_dropped"
        )
        error = self._request_log_error()
        text = f"{dropped} request-log lines dropped over {duration(rule.window)}"
        if error is not None:
            text = f"request log cannot write ({error}); " + text
        return Measurement(
            value=float(dropped),
            breach=error is not None or dropped >= rule.threshold,
            clear=error is None and dropped < rule.resolve,
            summary=text,
            numbers=(("dropped", str(dropped)), ("failing", "yes" if error else "no")),
        )

    def _circuit_rule(self, now: float) -> Measurement:
        state = self._circuit()
        if state is None or state.state != "open" or state.opened_at is None:
            return Measurement(0.0, False, True, "delivery circuit closed: delivery runs")
        probe = "-" if state.probe_at is None else duration(max(0, round(state.probe_at - now)))
        return Measurement(
            value=max(0.0, now - state.opened_at),
            breach=True,
            clear=False,
            summary=(
                f"delivery paused for {duration(round(max(0.0, now - state.opened_at)))}:"
                f" Customer.io refuses nearly every item ({state.reason}); pending rows are"
                f" kept, {state.probes} probes refused, next probe in {probe}"
            ),
            numbers=(("probes refused", str(state.probes)), ("trips", str(state.trips))),
        )

    def _health(self, rule: Rule, now: float) -> Measurement:
        latest = self._db.health_at(rule.metric, now)
        past = self._db.health_at(rule.metric, now - rule.window)
        if latest is None or past is None:
            return Measurement(None, False, True, f"{rule.metric}: not enough history yet")
        growth = (latest - past) / max(past, 1)
        return Measurement(
            value=growth,
            breach=latest - past >= rule.min_volume and growth > rule.threshold,
            clear=growth <= rule.resolve,
            summary=(
                f"{rule.metric} grew {percent(growth)} in {duration(rule.window)}: "
                f"{past} → {latest} (threshold {percent(rule.threshold)})"
            ),
            numbers=(("now", str(latest)), ("before", str(past)), ("growth", percent(growth))),
        )
