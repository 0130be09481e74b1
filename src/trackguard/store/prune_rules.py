"""What each retention rule deletes, as SQL: shared by the retention's batches and the expired
claims a commit sweeps (:mod:`trackguard.store.claims`).

Pure text and no store: the stores import it, so it imports neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from trackguard.store.monitor_schema import MONITOR_SCHEMA

if TYPE_CHECKING:
    from trackguard.store.sql import Dialect


@dataclass(frozen=True)
class Rule:
    """One table's retention: rows whose ``column`` is below the cutoff go, oldest first.

    ``key`` names the row (its primary key columns); ``extra`` narrows the rows that may go;
    ``unit`` converts the cutoff from seconds to the column's unit (60: minutes).
    """

    table: str
    key: str
    column: str
    extra: str = ""
    unit: float = 1.0
    inclusive: bool = False
    #: True for the outbox: each deleted row lowers ``counts`` of its state.
    counted: bool = False

    def _where(self) -> str:
        op = "<=" if self.inclusive else "<"
        return f"{self.extra}{self.column} {op} ?"

    def batch_sql(self, dialect: Dialect) -> str:
        """One batch's ``DELETE``, oldest first; parameters: cutoff, batch size, cutoff.

        The outer condition re-checks each row as it is deleted (on PostgreSQL, a row another
        transaction changed meanwhile is re-read: a renewed claim is no longer below the
        cutoff); ``SKIP LOCKED`` leaves the rows another pruner or a commit holds.
        """
        lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
        returning = "state" if self.counted else "NULL"
        return (
            f"DELETE FROM {self.table} WHERE ({self.key}) IN (SELECT {self.key} FROM {self.table}"
            f" WHERE {self._where()} ORDER BY {self.column} LIMIT ?{lock}) AND {self._where()}"
            f" RETURNING {returning}"
        )

    @property
    def count_sql(self) -> str:
        return f"SELECT count(*) FROM {self.table} WHERE {self._where()}"

    def cutoff(self, seconds: float) -> float:
        return seconds // self.unit if self.unit != 1.0 else seconds


OUTBOX: Final = Rule("outbox", "seq", "finished_at", extra="state != 'pending' AND ", counted=True)
CLAIMS: Final = Rule("claims", "key", "expires_at", inclusive=True)
ANONYMOUS: Final = Rule("anonymous", "anonymous_id", "first_seen")
_MONITOR_KEYS: Final = {t.name: ", ".join(t.key) for t in MONITOR_SCHEMA}
MONITOR_TABLES: Final = (
    Rule("monitor_counts", _MONITOR_KEYS["monitor_counts"], "minute", unit=60.0),
    Rule("monitor_hourly", _MONITOR_KEYS["monitor_hourly"], "hour", unit=3600.0),
    Rule("monitor_health", _MONITOR_KEYS["monitor_health"], "at"),
)
