"""Store URLs: which name a SQLite file and which PostgreSQL, trackguard's ``schema``
parameter, the URL as messages show it, and the errors every opener gives for a URL it cannot
serve.

Every command that takes ``--db`` or a store argument reads it through :func:`store_location`
(or :func:`sqlite_path` where only a file will do), so a mistyped URL is refused in the same
words whichever command was given it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from trackguard.errors import StoreError

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore


#: The schemes of a PostgreSQL store's URL.
_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` is a ``postgresql://`` (or ``postgres://``) URL."""
    if not isinstance(target, str):
        return False
    return target.partition("://")[0].lower() in _POSTGRES_SCHEMES


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


#: The ways to write a store target, as messages list them.
SQLITE_FORMS: Final = "a path or sqlite:///path"
STORE_FORMS: Final = "a path, sqlite:///path or postgresql://user@host/db[?schema=NAME]"
#: Schemes whose name, given without ``//``, is a mistyped URL rather than a file name.
_SCHEMES: Final = ("sqlite", *_POSTGRES_SCHEMES)


def unsupported_url(target: object, *, postgres: bool = True) -> StoreError:
    """The error for a store target that is neither a path nor a URL trackguard opens
    (``postgres=False``: where only a SQLite file will do, the hint leaves PostgreSQL out)."""
    shown = display_url(target) if isinstance(target, str) else target
    forms = STORE_FORMS if postgres else SQLITE_FORMS
    return StoreError(f"{shown!r}: unsupported store URL (use {forms})")


def sqlite_path(target: str | os.PathLike[str]) -> str | None:
    """The file a path or ``sqlite:///path`` names; None for a URL of another scheme.

    ``sqlite:///data/tg.db`` is relative, ``sqlite:////var/lib/tg.db`` absolute (the
    SQLAlchemy convention). A ``sqlite:`` URL of any other shape (``sqlite://tg.db``,
    ``sqlite:tg.db``) is refused, not taken for a file of that name (``./sqlite:tg.db`` is
    one); so is ``postgresql:`` without ``//`` (None: not a file).
    """
    if isinstance(target, os.PathLike):
        return os.fspath(target)
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, colon, rest = target.partition(":")
        if not colon or scheme.lower() not in _SCHEMES:
            return target
    if scheme.lower() != "sqlite":
        return None
    if not sep or not rest.startswith("/") or rest == "/":
        raise StoreError(f"{target!r}: write sqlite:///relative/path or sqlite:////abs/path")
    return rest[1:]


def store_location(target: str, *, postgres: bool = True) -> str:
    """The SQLite file ``target`` names (a path or ``sqlite:///path``), or with ``postgres``
    a ``postgresql://`` URL as given; :func:`unsupported_url` for anything else."""
    if postgres and is_postgres_url(target):
        return target
    path = sqlite_path(target)
    if path is None:
        raise unsupported_url(target, postgres=postgres)
    return path


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
