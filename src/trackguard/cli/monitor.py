"""``trackguard stats``, ``trackguard health`` and ``trackguard alerts``: the monitor's figures
and alert state, read from the store's database, a SQLite file or PostgreSQL (the gateway need
not be running)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Final

import click

from trackguard.cli.base import TrackguardCommand, TrackguardGroup
from trackguard.cli.options import db_option, format_option
from trackguard.cli.output import (
    emit_csv,
    emit_json,
    emit_jsonl,
    emit_rows,
    print_table,
    rows_table,
)
from trackguard.errors import ConfigError
from trackguard.monitor.db import MonitorDB
from trackguard.monitor.health import DESCRIPTIONS, METRICS, OutboxHealth
from trackguard.monitor.loader import load_alerts, parse_duration
from trackguard.monitor.monitor import saved_channels, saved_states
from trackguard.monitor.notify import ChannelWorker
from trackguard.monitor.payloads import Notification, iso

_BY: Final = ("event", "code", "source", "route")
_OUTCOMES: Final = ("accepted", "fixed", "warned", "rejected", "invalid", "refused")


def _open(db: str) -> MonitorDB:
    return MonitorDB(db, readonly=True)


def _since(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(name="stats", cls=TrackguardCommand)
@db_option()
@click.option("--since", default="1h", show_default=True, help="How far back: 15m, 2h, 7d.")
@click.option(
    "--by", "by", type=click.Choice(_BY), default="event", show_default=True, help="Group rows by."
)
@format_option()
def stats_command(db: str, since: str, by: str, fmt: str) -> None:
    """Counted requests per event, route or source and outcome, or findings per code.

    JSON: an array of {BY, "accepted", "fixed", "warned", "rejected", "invalid", "refused",
    any other outcome counted, "invalid_share"} (invalid and rejected per 100 requests, null
    with no requests), busiest first; with --by code, of {"code", "count"}.

    Example:

    \b
        trackguard stats --db trackguard.db --since 15m --by code
        trackguard stats --format json | jq '.[] | select(.invalid > 0)'
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
        ordered = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
        found = [{"code": code, "count": n} for code, n in ordered]
        emit_rows(fmt, found, (("code", "code"), ("count", "count")))
        return
    table: dict[str, Counter[str]] = {}
    for r in rows:
        if r.kind == "outcome":
            table.setdefault(getattr(r, by), Counter())[r.name] += r.n
    extra = sorted({o for c in table.values() for o in c} - set(_OUTCOMES))
    columns = [*_OUTCOMES, *extra]
    out: list[dict[str, Any]] = []
    for key in sorted(table, key=lambda k: (-sum(table[k].values()), k)):
        counts = table[key]
        total = sum(counts[c] for c in _OUTCOMES)
        bad = counts["invalid"] + counts["rejected"]
        share = round(100 * bad / total, 2) if total else None
        out.append({by: key, **{c: counts[c] for c in columns}, "invalid_share": share})
    headers = [(by, by), *((c, c) for c in columns), ("invalid_share", "invalid%")]
    if fmt == "table":
        for row in out:
            share = row["invalid_share"]
            row["invalid_share"] = "-" if share is None else f"{share:.2f}"
    emit_rows(fmt, out, headers)


@click.command(name="health", cls=TrackguardCommand)
@db_option()
@format_option()
def health_command(db: str, fmt: str) -> None:
    """Data health: people with two identifiers, anonymous carts never linked, lapsed buyers.

    JSON: an array of {"metric", "value", "description"}; value is null when the store
    cannot measure it.

    Example:

    \b
        trackguard health --db trackguard.db
    """
    store = _open(db)
    try:
        values = OutboxHealth(store).measure()
    finally:
        store.close()
    missing = "n/a" if fmt == "table" else None  # JSON and CSV keep null / empty
    rows = [
        {
            "metric": metric,
            "value": missing if values.get(metric) is None else values.get(metric),
            "description": DESCRIPTIONS[metric],
        }
        for metric in METRICS
    ]
    columns = (("metric", "metric"), ("value", "value"), ("description", "description"))
    emit_rows(fmt, rows, columns)
    if None in values.values() and fmt == "table":
        click.echo(
            f"n/a: {db} has no identity tables (a store from before them: trackguard serve"
            " adds them when it opens the store)",
            err=True,
        )


@click.group(name="alerts", cls=TrackguardGroup)
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
    config = load_alerts(rules)
    if not config.channels:
        raise ConfigError(f"{rules}: no channels are configured")
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
@db_option()
@format_option()
def alerts_status(rules: str, db: str, fmt: str) -> None:
    """The state of every rule and channel, as the running monitor last saved it.

    JSON: {"rules": [{"rule", "severity", "state", "since", "summary"}], "channels":
    [{"channel", "up", "sent", "failed", "retries", "last_error", "last_error_at"}]};
    jsonl and csv: the same rows, each with "kind" (rule or channel) first.

    Example:

    \b
        trackguard alerts status --rules alerts.yaml --db trackguard.db
    """
    config = load_alerts(rules)
    store = _open(db)
    try:
        states, channels = saved_states(store), saved_channels(store)
    finally:
        store.close()
    rule_rows: list[dict[str, Any]] = []
    for rule in config.rules:
        st = states.get(rule.name)
        rule_rows.append(
            {
                "rule": rule.name,
                "severity": rule.severity,
                "state": st.state if st is not None else "unknown",
                "since": iso(st.since) if st is not None and st.since is not None else None,
                "summary": st.summary if st is not None and st.summary else None,
            }
        )
    channel_rows: list[dict[str, Any]] = []
    for name in config.channels:
        cs = channels.get(name)
        channel_rows.append(
            {
                "channel": name,
                "up": None if cs is None else cs.up,
                "sent": 0 if cs is None else cs.sent,
                "failed": 0 if cs is None else cs.failed,
                "retries": 0 if cs is None else cs.retries,
                "last_error": None if cs is None else cs.last_error,
                "last_error_at": None
                if cs is None or cs.last_error_at is None
                else iso(cs.last_error_at),
            }
        )
    if fmt == "json":
        emit_json({"rules": rule_rows, "channels": channel_rows})
        return
    if fmt in ("jsonl", "csv"):
        both = [{"kind": "rule", **r} for r in rule_rows]
        both += [{"kind": "channel", **c} for c in channel_rows]
        keys = list(dict.fromkeys(k for row in both for k in row))
        rows = [{k: row.get(k) for k in keys} for row in both]
        emit_jsonl(rows) if fmt == "jsonl" else emit_csv(rows, keys)
        return
    for r in rule_rows:
        r["summary"] = r["summary"] or "not evaluated yet"
    rule_columns = ("rule", "severity", "state", "since")
    print_table(rows_table(rule_rows, [*((c, c) for c in rule_columns), ("summary", "last value")]))
    click.echo("")
    for c in channel_rows:
        c["up"] = "-" if c["up"] is None else "yes" if c["up"] else "no"
        if c["last_error"] is not None and c["last_error_at"] is not None:
            c["last_error"] += f" at {c['last_error_at']}"
    channel_columns = ("channel", "up", "sent", "failed", "retries")
    print_table(
        rows_table(channel_rows, [*((c, c) for c in channel_columns), ("last_error", "last error")])
    )
