"""``trackguard stats``, ``trackguard health`` and ``trackguard alerts``: the monitor's figures
and alert state, read from the store's SQLite file (the gateway need not be running)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Final

import click

from trackguard.monitor.db import MonitorDB
from trackguard.monitor.health import DESCRIPTIONS, METRICS, OutboxHealth
from trackguard.monitor.loader import RuleError, load_alerts, parse_duration
from trackguard.monitor.monitor import db_path, saved_channels, saved_states
from trackguard.monitor.notify import ChannelWorker
from trackguard.monitor.payloads import Notification, iso
from trackguard.monitor.rules import AlertConfig

_BY: Final = ("event", "code", "source", "route")
_OUTCOMES: Final = ("accepted", "fixed", "warned", "rejected", "invalid", "refused")


def _open(db: str) -> MonitorDB:
    try:
        return MonitorDB(db_path(db))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _rules(path: str) -> AlertConfig:
    try:
        return load_alerts(path)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None


def _since(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_DB = click.option(
    "--db",
    required=True,
    metavar="PATH",
    help="The gateway's store: a SQLite file or sqlite:///path.",
)


@click.command(name="stats")
@_DB
@click.option("--since", default="1h", show_default=True, help="How far back: 15m, 2h, 7d.")
@click.option(
    "--by", "by", type=click.Choice(_BY), default="event", show_default=True, help="Group rows by."
)
def stats_command(db: str, since: str, by: str) -> None:
    """Counted requests per event, route or source and outcome, or findings per code.

    Example:

    \b
        trackguard stats --db trackguard.db --since 15m --by code
    """
    seconds = _since(since)
    store = _open(db)
    try:
        now = time.time()
        rows = store.counts(now - seconds + 60, now + 60)
    finally:
        store.close()
    if by == "code":
        codes: Counter[str] = Counter()
        for r in rows:
            if r.kind == "code":
                codes[r.name] += r.n
        click.echo(f"{'code':<32} {'count':>8}")
        for code, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"{code:<32} {n:>8}")
        return
    table: dict[str, Counter[str]] = {}
    for r in rows:
        if r.kind == "outcome":
            table.setdefault(getattr(r, by), Counter())[r.name] += r.n
    extra = sorted({o for c in table.values() for o in c} - set(_OUTCOMES))
    columns = [*_OUTCOMES, *extra]
    width = max([len(by), *(len(k) for k in table)]) + 2
    click.echo(f"{by:<{width}}" + "".join(f"{c:>12}" for c in (*columns, "invalid%")))
    for key in sorted(table, key=lambda k: (-sum(table[k].values()), k)):
        counts = table[key]
        total = sum(counts[c] for c in _OUTCOMES)
        share = f"{100 * (counts['invalid'] + counts['rejected']) / total:.2f}" if total else "-"
        cells = "".join(f"{counts[c]:>12}" for c in columns)
        click.echo(f"{key:<{width}}{cells}{share:>12}")


@click.command(name="health")
@_DB
def health_command(db: str) -> None:
    """Data health: people with two identifiers, anonymous carts never linked, lapsed buyers.

    Example:

    \b
        trackguard health --db trackguard.db
    """
    store = _open(db)
    try:
        values = OutboxHealth(store).measure()
    finally:
        store.close()
    for metric in METRICS:
        value = values.get(metric)
        shown = "n/a" if value is None else str(value)
        click.echo(f"{metric:<30} {shown:>8}  {DESCRIPTIONS[metric]}")
    if None in values.values():
        click.echo(
            f"n/a: {db} has no identity tables (not a trackguard store, or one from before"
            " them: trackguard serve adds them when it opens the store)"
        )


@click.group(name="alerts")
def alerts_group() -> None:
    """Check the alert channels and see the state of every rule."""


@alerts_group.command(name="test")
@click.option("--rules", required=True, metavar="FILE", help="The alert file (YAML).")
def alerts_test(rules: str) -> None:
    """Send a test notification to each configured channel; exit 1 if one fails.

    Example:

    \b
        SLACK_WEBHOOK_URL=https://hooks.slack.com/... trackguard alerts test --rules alerts.yaml
    """
    config = _rules(rules)
    if not config.channels:
        raise click.ClickException(f"{rules}: no channels are configured")
    failed = 0
    for name, channel in config.channels.items():
        worker = ChannelWorker(channel, time.time)
        note = Notification(
            rule="test",
            event="test",
            severity="info",
            summary=f"test notification from trackguard to channel {name}",
            at=time.time(),
        )
        ok = worker.deliver(note)
        worker.stop()
        failed += not ok
        result = "ok" if ok else f"FAILED ({worker.status.last_error})"
        click.echo(f"{name:<20} {channel.type:<10} {result}")
    if failed:
        raise SystemExit(1)


@alerts_group.command(name="status")
@click.option("--rules", required=True, metavar="FILE", help="The alert file (YAML).")
@_DB
def alerts_status(rules: str, db: str) -> None:
    """The state of every rule and channel, as the running monitor last saved it.

    Example:

    \b
        trackguard alerts status --rules alerts.yaml --db trackguard.db
    """
    config = _rules(rules)
    store = _open(db)
    try:
        states, channels = saved_states(store), saved_channels(store)
    finally:
        store.close()
    click.echo(f"{'rule':<32} {'severity':<9} {'state':<9} {'since':<21} last value")
    for rule in config.rules:
        st = states.get(rule.name)
        state = st.state if st is not None else "unknown"
        since = iso(st.since) if st is not None and st.since is not None else "-"
        summary = st.summary if st is not None and st.summary else "not evaluated yet"
        click.echo(f"{rule.name:<32} {rule.severity:<9} {state:<9} {since:<21} {summary}")
    click.echo("")
    click.echo(f"{'channel':<20} {'up':<4} {'sent':>6} {'failed':>7} {'retries':>8}  last error")
    for name in config.channels:
        cs = channels.get(name)
        if cs is None:
            click.echo(f"{name:<20} {'-':<4} {0:>6} {0:>7} {0:>8}  -")
            continue
        error = "-"
        if cs.last_error is not None:
            error = cs.last_error + (f" at {iso(cs.last_error_at)}" if cs.last_error_at else "")
        up = "yes" if cs.up else "no"
        click.echo(f"{name:<20} {up:<4} {cs.sent:>6} {cs.failed:>7} {cs.retries:>8}  {error}")
