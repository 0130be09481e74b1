"""The monitor's tables as ``monitor/db.py`` makes them on SQLite, for tests that fill them in a
PostgreSQL store directly (``IF NOT EXISTS``: a schema whose migrations made them keeps its own).
"""

from __future__ import annotations

MONITOR_DDL = (
    """CREATE TABLE IF NOT EXISTS monitor_counts (
        minute bigint NOT NULL, event text NOT NULL, route text NOT NULL, source text NOT NULL,
        kind text NOT NULL, name text NOT NULL, n bigint NOT NULL,
        PRIMARY KEY (minute, event, route, source, kind, name))""",
    """CREATE TABLE IF NOT EXISTS monitor_hourly (
        hour bigint NOT NULL, event text NOT NULL, kind text NOT NULL, name text NOT NULL,
        n bigint NOT NULL, PRIMARY KEY (hour, event, kind, name))""",
    """CREATE TABLE IF NOT EXISTS monitor_health (
        at double precision NOT NULL, metric text NOT NULL, value bigint NOT NULL,
        PRIMARY KEY (metric, at))""",
    "CREATE TABLE IF NOT EXISTS monitor_alerts (rule text PRIMARY KEY, state bytea NOT NULL)",
)
