"""Every error trackguard raises on purpose derives from one base, :class:`TrackguardError`.

A caller catches ``TrackguardError`` for "trackguard refused this, and the message says why";
anything else escaping a command is a bug. The ``trackguard`` command prints one of these as
one ``Error: ...`` line and exits 2 (see docs/cli.md). The subclasses live next to the code
that raises them; this module holds the base and the categories::

    TrackguardError
    ├── ConfigError                 a file or setting cannot be used; the message says what to fix
    │   ├── YAMLFileError           yamlfile: file:line:col: message, for any YAML file
    │   ├── PlanError               plan.loader: a tracking plan with errors
    │   ├── RuleError               monitor.loader: an alert file
    │   ├── FixError                recovery.fixes: a replay fix file
    │   ├── MappingError            recovery.mapping: a backfill mapping file
    │   ├── FaultConfigError        emulator.faults: an emulator fault setting
    │   └── ConsoleError            console.auth: a console token file that cannot be used
    ├── StoreError                  the store cannot be opened, read or written
    │   ├── StoreNotFound           no store at the path (only serve creates one)
    │   └── StoreClosed             store.base: the store was closed
    ├── InputError                  input the command was given cannot be read or used
    │   ├── DurationError           durations: "7d", "2026-11-01" and the like
    │   ├── audit InputError        audit.readers: a log path or glob that names no file
    │   ├── MapError                audit.readers: a --map specification
    │   ├── SourceError             recovery.sources: a backfill source
    │   └── RowError                recovery.mapping: one backfill row
    ├── UsageError                  what the command was told to do cannot be done
    │   ├── OutputError             an output path that cannot be written
    │   └── ListenError             an address to serve on: in use, unresolvable, bad TLS files
    ├── RequestError                a client's request could not be read (http.asgi)
    │   ├── BodyTooLarge
    │   ├── BodyTimeout
    │   └── ClientDisconnected
    └── UpstreamError               a service trackguard talks to failed
        ├── TransportError          delivery.transport: no HTTP response from Customer.io
        │   ├── ConnectFailed
        │   └── UpstreamTimeout
        └── NotifyError             monitor.notify: an alert channel refused a notification

Classes that were ``ValueError`` before keep that base too, so existing ``except ValueError``
still works.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputError",
    "ListenError",
    "OutputError",
    "RequestError",
    "StoreError",
    "StoreNotFound",
    "TrackguardError",
    "UpstreamError",
    "UsageError",
    "first_line",
]


class TrackguardError(Exception):
    """Base of every error trackguard raises on purpose."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type when it has none), for one-line logs and
    errors: a driver's message may go on with detail lines (PostgreSQL's ``DETAIL``, ``HINT``)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class ConfigError(TrackguardError):
    """A configuration file or setting is missing or malformed; the message says what to fix."""


class StoreError(TrackguardError):
    """Base of every store failure."""


class StoreNotFound(StoreError):
    """No store at the path given: only ``serve`` (and ``store init``) create one, so a
    mistyped ``--db`` is an error rather than a new, empty store."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no store at {path} (trackguard serve creates one)")
        self.path = path


class InputError(TrackguardError):
    """Input the command was given (a file, a value, a row) cannot be read or used."""


class UsageError(TrackguardError):
    """What the command was asked to do cannot be done as asked."""


class OutputError(UsageError):
    """An output path that cannot be written (checked before long work starts)."""


class ListenError(UsageError):
    """An address to serve on: in use, unresolvable, or TLS files that do not match."""


class RequestError(TrackguardError):
    """A client's request could not be read whole."""


class UpstreamError(TrackguardError):
    """A service trackguard talks to (Customer.io, an alert channel) failed."""
