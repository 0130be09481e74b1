"""Store URLs: which name PostgreSQL, trackguard's ``schema`` parameter, the URL as messages
show it, and the errors every opener gives for a URL it cannot serve."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from trackguard.errors import StoreError

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` is a ``postgresql://`` (or ``postgres://``) URL."""
    if not isinstance(target, str):
        return False
    return target.partition("://")[0].lower() in ("postgresql", "postgres")


def postgres_store_class(scheme: str = "postgresql") -> type[PostgresStore]:
    """:class:`PostgresStore`, imported only now: psycopg is the ``postgres`` extra, and an
    install without it gets a :class:`StoreError` that says how to add it."""
    try:
        from trackguard.store.postgres import PostgresStore
    except ImportError:
        raise StoreError(
            f"{scheme}:// stores need psycopg: pip install 'trackguard[postgres]'"
        ) from None
    return PostgresStore


def unsupported_url(target: object) -> StoreError:
    """The error for a store target that is neither a path nor a URL trackguard opens."""
    return StoreError(
        f"{target!r}: unsupported store URL (use a path, sqlite:///path or postgresql://...)"
    )


def split_url(url: str) -> tuple[str, str | None]:
    """The libpq URL without trackguard's ``schema`` parameter, and that schema (or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


def display_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
