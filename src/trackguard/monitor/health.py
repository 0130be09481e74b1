"""Data health: counts over the identity and profile state trackguard keeps.

Each metric is one query behind :class:`HealthSource` over the store's tables (the outbox, and
the identity tables: ``identities``, ``anonymous``, ``profiles``). A store from before the
identity tables (opening it for writing adds them) measures ``None`` ("not available") for
the metrics that need them instead of a misleading zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from trackguard.monitor.db import MonitorDB
from trackguard.store.sql import Dialect

#: The people Customer.io would show as two profiles: addressed by id somewhere and by the
#: email that id's profile carries somewhere else.
MULTIPLE_IDENTIFIERS: Final = "people_multiple_identifiers"
#: Anonymous shoppers with cart activity whose anonymous id no identify ever linked to a person
#: (so no abandoned-cart message can reach them).
UNLINKED_CARTS: Final = "anonymous_carts_unlinked"
#: People with an email, no ``order_completed`` in 90 days and an empty ``last_order_date``:
#: emails bound to an id (``identities``) whose profile has no order.
LAPSED_WITHOUT_ORDER_DATE: Final = "emails_without_recent_order"
METRICS: Final = (MULTIPLE_IDENTIFIERS, UNLINKED_CARTS, LAPSED_WITHOUT_ORDER_DATE)
DESCRIPTIONS: Final = {
    MULTIPLE_IDENTIFIERS: "people addressed by more than one identifier (id and email)",
    UNLINKED_CARTS: "anonymous carts never linked to a person",
    LAPSED_WITHOUT_ORDER_DATE: "people with an email, no order in 90 days, no last_order_date",
}
CART_EVENTS: Final = ("added_to_cart", "cart_updated", "checkout_started")

#: Two scans joined on the email, never a lookup per email: the outbox has no index on
#: ``person`` (it would slow every insert), so a correlated ``EXISTS`` scanned the whole
#: outbox once per distinct email, and took seconds at 80,000 rows.
_MULTIPLE: Final = """
WITH emails AS (
    SELECT DISTINCT person, lower({email}) AS email
    FROM outbox
    WHERE person LIKE 'id:%' AND {payload} LIKE '%"email"%'),
keyed AS (
    SELECT DISTINCT substr(person, 7) AS email
    FROM outbox
    WHERE substr(person, 1, 6) = 'email:')
SELECT count(DISTINCT e.person) FROM emails AS e
JOIN keyed AS k ON k.email = e.email
"""
_LAPSED: Final = """
SELECT count(*) FROM identities AS i
LEFT JOIN profiles AS p ON p.person = 'id:' || i.id
WHERE p.last_order_date IS NULL OR p.last_order_date < ?
"""
#: ``anonymous.event`` is only the first event of each id (a shopper usually views a product
#: before the cart), so cart activity after it is read from the outbox.
_UNLINKED_STATE: Final = """
SELECT count(*) FROM anonymous
WHERE person IS NULL AND (event IN ({marks}) OR anonymous_id IN (
    SELECT substr(person, 6) FROM outbox WHERE person LIKE 'anon:%' AND event_name IN ({marks})))
"""
_UNLINKED: Final = """
WITH carts AS (
    SELECT DISTINCT substr(person, 6) AS anon FROM outbox
    WHERE person LIKE 'anon:%' AND event_name IN ({marks})),
linked AS (
    SELECT coalesce({v2_anonymous_id}, {v1_anonymous_id}) AS anon
    FROM outbox
    WHERE person NOT LIKE 'anon:%' AND {payload} LIKE '%"anonymous_id"%')
SELECT count(*) FROM carts WHERE anon NOT IN (SELECT anon FROM linked WHERE anon IS NOT NULL)
"""
#: The outbox payload as text, per dialect (a BLOB in SQLite, ``bytea`` in PostgreSQL).
_PAYLOAD: Final = {"sqlite": "CAST(payload AS TEXT)", "postgresql": "convert_from(payload, 'UTF8')"}


def _field(dialect: Dialect, *path: str) -> str:
    """SQL for the string at ``path`` in the outbox payload's JSON (NULL when absent)."""
    payload = _PAYLOAD[dialect]
    if dialect == "sqlite":
        return f"json_extract({payload}, '$.{'.'.join(path)}')"
    # json, not jsonb: jsonb refuses a \u0000 anywhere in the document.
    return f"CAST({payload} AS json) #>> '{{{','.join(path)}}}'"


class HealthSource(Protocol):
    """Measures every metric of :data:`METRICS`; ``None`` means "cannot be computed here"."""

    def measure(self) -> dict[str, int | None]: ...


class OutboxHealth:
    """Health figures computed from the outbox (full scans: run every ``health_every``)."""

    def __init__(
        self,
        db: MonitorDB,
        cart_events: Iterable[str] = CART_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._carts = tuple(cart_events)
        self._clock = clock

    def measure(self) -> dict[str, int | None]:
        marks = ",".join("?" * len(self._carts))
        dialect = self._db.dialect
        tracked = self._db.has_table("anonymous")  # the store keeps identity state (schema 3+)
        if tracked:
            unlinked = self._one(_UNLINKED_STATE.format(marks=marks), self._carts * 2)
        else:
            query = _UNLINKED.format(
                marks=marks,
                payload=_PAYLOAD[dialect],
                v2_anonymous_id=_field(dialect, "v2", "attributes", "anonymous_id"),
                v1_anonymous_id=_field(dialect, "v1", "body", "anonymous_id"),
            )
            unlinked = self._one(query, self._carts)
        lapsed = self._one(_LAPSED, (self._clock() - 90 * 86_400,)) if tracked else None
        multiple = _MULTIPLE.format(
            email=_field(dialect, "v2", "attributes", "email"), payload=_PAYLOAD[dialect]
        )
        return {
            MULTIPLE_IDENTIFIERS: self._one(multiple, ()),
            UNLINKED_CARTS: unlinked,
            LAPSED_WITHOUT_ORDER_DATE: lapsed,
        }

    def _one(self, sql: str, params: tuple[object, ...]) -> int:
        rows = self._db.query(sql, params)
        value = rows[0][0] if rows else 0
        return value if isinstance(value, int) else 0
