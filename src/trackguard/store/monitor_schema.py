"""The monitor's tables, declared once for both databases.

The monitor creates them on a SQLite file on first use (``monitor/db.py``); PostgreSQL's
migrations create them with the store (``store/postgres.py``); retention prunes them by their
keys and ``store copy`` copies them. Each of those reads the declaration here, so a column
never differs between the two dialects or between the code and its tests. Statements say
``IF NOT EXISTS``: a SQLite file the monitor opened before keeps its tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["HOURLY_FROM_COUNTS", "MONITOR_SCHEMA", "MonitorTable", "create_statements"]

Kind = Literal["int", "text", "real", "blob"]

_TYPES: Final[dict[str, dict[Kind, str]]] = {
    "sqlite": {"int": "INTEGER", "text": "TEXT", "real": "REAL", "blob": "BLOB"},
    "postgresql": {"int": "bigint", "text": "text", "real": "double precision", "blob": "bytea"},
}


@dataclass(frozen=True)
class MonitorTable:
    """One table: its columns in order (every one ``NOT NULL``) and its primary key."""

    name: str
    columns: tuple[tuple[str, Kind], ...]
    key: tuple[str, ...]

    def create(self, dialect: Literal["sqlite", "postgresql"], *, temp: bool = False) -> str:
        """The ``CREATE TABLE IF NOT EXISTS`` of this table (``temp``: a SQLite temp table)."""
        types = _TYPES[dialect]
        cols = ", ".join(f"{c} {types[k]} NOT NULL" for c, k in self.columns)
        rowid = " WITHOUT ROWID" if dialect == "sqlite" else ""
        kind = "TEMP TABLE" if temp else "TABLE"
        return (
            f"CREATE {kind} IF NOT EXISTS {self.name} ({cols},"
            f" PRIMARY KEY ({', '.join(self.key)})){rowid}"
        )


#: Per-minute counters, the same per hour, data-health snapshots, and the saved state of alert
#: rules and notification channels (docs/monitoring.md).
MONITOR_SCHEMA: Final = (
    MonitorTable(
        "monitor_counts",
        (
            ("minute", "int"),
            ("event", "text"),
            ("route", "text"),
            ("source", "text"),
            ("kind", "text"),
            ("name", "text"),
            ("n", "int"),
        ),
        ("minute", "event", "route", "source", "kind", "name"),
    ),
    MonitorTable(
        "monitor_hourly",
        (("hour", "int"), ("event", "text"), ("kind", "text"), ("name", "text"), ("n", "int")),
        ("hour", "event", "kind", "name"),
    ),
    MonitorTable(
        "monitor_health",
        (("at", "real"), ("metric", "text"), ("value", "int")),
        ("metric", "at"),
    ),
    MonitorTable("monitor_alerts", (("rule", "text"), ("state", "blob")), ("rule",)),
    MonitorTable("monitor_channels", (("channel", "text"), ("status", "blob")), ("channel",)),
)

#: ``monitor_hourly``'s rows rolled up from ``monitor_counts``: for a store whose counts were
#: written before ``monitor_hourly`` existed (by an older trackguard).
HOURLY_FROM_COUNTS: Final = (
    "SELECT minute / 60 AS hour, event, kind, name, sum(n) AS n FROM monitor_counts"
    " GROUP BY minute / 60, event, kind, name"
)


def create_statements(dialect: Literal["sqlite", "postgresql"]) -> tuple[str, ...]:
    """Every monitor table's ``CREATE TABLE IF NOT EXISTS``, in :data:`MONITOR_SCHEMA` order."""
    return tuple(t.create(dialect) for t in MONITOR_SCHEMA)
