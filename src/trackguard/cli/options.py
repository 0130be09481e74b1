"""The options every command shares, defined once: ``--db``, ``--plan``, ``--format``,
``--listen``, TLS and output paths (docs/cli.md).

A command that reads a store gets ``db_option()``: a path that names no file is an error
(``Error: no store at PATH``, exit 2) and nothing is created; only ``serve`` passes
``create=True``. Output paths are checked when the command line is read, before any long
work, and written whole or not at all (:func:`write_atomic`).
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from trackguard.durations import DurationError, parse_duration
from trackguard.errors import ListenError, OutputError, StoreError, StoreNotFound, UsageError
from trackguard.http.runner import parse_listen
from trackguard.plan.loader import load_plan
from trackguard.plan.model import Plan
from trackguard.private import PRIVATE
from trackguard.shares import cpu_count
from trackguard.store.urls import sqlite_path

F = TypeVar("F", bound=Callable[..., Any])

#: The store every command uses when ``--db`` is not given.
DEFAULT_DB: Final = "trackguard.db"
#: The environment variable that names the store instead of ``--db``.
DB_ENV: Final = "TRACKGUARD_DB"
#: Every output format; each command offers the ones that fit what it prints.
FORMATS: Final = ("table", "json", "jsonl", "csv")


def existing_store(target: str) -> str:
    """``target`` when it names a store that exists (or is not a file path); else
    :class:`~trackguard.errors.StoreNotFound`. Never creates anything."""
    path = sqlite_path(target)
    if path is None:
        return target  # a URL of another scheme: the store says what it thinks of it
    if not os.path.exists(path):
        raise StoreNotFound(path)
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a store")
    return target


def _must_exist(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return existing_store(value)


def db_option(*, create: bool = False) -> Callable[[F], F]:
    """``--db PATH`` (a SQLite file, ``sqlite:///path`` or ``postgresql://...``;
    ``$TRACKGUARD_DB``).

    Without ``create`` the store must exist: a mistyped path is an error, not a new store.
    """
    help_text = (
        "The store: a SQLite file, sqlite:///path or postgresql://user@host:port/db[?schema=NAME]."
    )
    if create:
        help_text += " Created when it does not exist."
    return click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        envvar=DB_ENV,
        show_envvar=True,
        metavar="PATH",
        callback=None if create else _must_exist,
        help=help_text,
    )


def duration_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback for a duration option (``30d``, ``12h``): its seconds, or exit 2
    with what to write instead."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


class Seconds(click.FloatRange):
    """A number of seconds, fractions allowed (timeouts, gaps, leases).

    ``2ms`` or ``1m`` gets a message that says what to write instead of click's "not a valid
    float range"; a number out of range keeps click's message with the range.
    """

    name = "seconds"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds (2 ms is 0.002)", param, ctx)
        return super().convert(value, param, ctx)


def _plan(ctx: click.Context, param: click.Parameter, value: Path | None) -> Plan | None:
    return None if value is None else load_plan(value)


def plan_option(
    *, required: bool = False, default: str | None = None, load: bool = True, help: str = ""
) -> Callable[[F], F]:
    """``--plan FILE``: the tracking plan. With ``load`` the command receives the loaded
    :class:`~trackguard.plan.model.Plan` (its errors, each with file:line:col, exit 2)."""
    return click.option(
        "--plan",
        "plan",
        type=click.Path(dir_okay=False, path_type=Path),
        required=required,
        default=default,
        show_default=default is not None,
        metavar="FILE",
        callback=_plan if load else None,
        help=help or "Tracking plan YAML.",
    )


def format_option(*formats: str, default: str = "table") -> Callable[[F], F]:
    """``--format``: how results are printed (docs/cli.md, "Output formats")."""
    offered = formats or FORMATS
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(offered),
        default=default,
        show_default=True,
        help="table: for people (piped: one row per line, whole values); json: one document;"
        " jsonl: one object per line; csv: a header and one row per line.",
    )


def _jobs(ctx: click.Context, param: click.Parameter, value: int | None) -> int:
    if value is None:
        return cpu_count()
    if value < 1:
        raise UsageError(f"--jobs must be a number of processes, 1 or more (not {value})")
    return value


def jobs_option() -> Callable[[F], F]:
    """``--jobs N``: worker processes for a batch command (default: every core it may use).

    ``1`` runs in the command's own process; any N gives the same output."""
    return click.option(
        "--jobs",
        "-j",
        "jobs",
        type=int,
        default=None,
        metavar="N",
        callback=_jobs,
        help="Worker processes (default: one per available core); the output is the same "
        "for every N.",
    )


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def listen_option(default: str) -> Callable[[F], F]:
    """``--listen HOST:PORT``: the command receives ``(host, port)``."""
    return click.option(
        "--listen",
        default=default,
        show_default=True,
        metavar="HOST:PORT",
        callback=_listen,
        help="Address to serve on (port 0 picks a free one).",
    )


def tls_options(f: F) -> F:
    """``--tls-cert`` and ``--tls-key``: serve HTTPS; they go together (:func:`tls_pair`)."""
    f = click.option(
        "--tls-key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="PEM private key for --tls-cert.",
    )(f)
    return click.option(
        "--tls-cert",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="PEM certificate chain; serves HTTPS.",
    )(f)


def tls_pair(cert: Path | None, key: Path | None) -> None:
    """Check ``--tls-cert`` and ``--tls-key`` before anything starts: both or neither, and a
    key that matches the certificate (:class:`~trackguard.errors.ListenError` otherwise)."""
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ListenError(
            f"cannot use --tls-cert {cert} with --tls-key {key}: {_ssl_reason(exc)}"
        ) from None
    except OSError as exc:
        raise ListenError(f"cannot read the TLS files: {exc.strerror or exc}") from None


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = str(exc.reason or "").replace("_", " ").lower()
    if "key values mismatch" in reason:
        return "the key does not match the certificate"
    return reason or str(exc)


def resolve(host: str, port: int) -> None:
    """A :class:`~trackguard.errors.ListenError` when ``host`` does not resolve."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        message = f"cannot listen on {host}:{port}: {host!r} does not resolve ({reason})"
        raise ListenError(message) from None


@contextmanager
def listen_errors(host: str, port: int, also: str | None = None) -> Iterator[None]:
    """What binding ``host:port`` (and ``also``, a second listener's address) can raise (in
    use, not local, no permission) as one :class:`~trackguard.errors.ListenError` line."""
    try:
        yield
    except ssl.SSLError as exc:
        raise ListenError(f"cannot use the TLS certificate and key: {_ssl_reason(exc)}") from None
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {_where(host, port, also)}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is already in use (is another server running?)"
        else:
            reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {_where(host, port, also)}: {reason}") from None


def _where(host: str, port: int, also: str | None) -> str:
    return f"{host}:{port}" if also is None else f"{host}:{port} or {also}"


def writable(target: str | os.PathLike[str]) -> Path:
    """``target`` when a file can be written there: its directory exists and is writable,
    and it is not a directory. :class:`~trackguard.errors.OutputError` otherwise."""
    path = Path(target)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a directory")
    if not parent.is_dir():
        raise OutputError(f"{path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: the file is not writable")
    return path


def _output(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    return None if value is None else writable(value)


def _output_or_dash(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Path | str | None:
    return value if value == "-" else _output(ctx, param, value)


def output_option(*names: str, help: str, dash: bool = False) -> Callable[[F], F]:
    """An output file option (``-o/--output``, ``--html``): checked for writability when the
    command line is read; ``-`` is stdout when ``dash``. Write it with :func:`write_atomic`."""
    return click.option(
        *(names or ("-o", "--output")),
        metavar="FILE",
        callback=_output_or_dash if dash else _output,
        help=help + (" '-' is stdout." if dash else ""),
    )


def write_atomic(
    target: str | os.PathLike[str], data: bytes | str, *, private: bool = False
) -> None:
    """Write ``data`` to ``target`` whole or not at all: a temporary file in the same
    directory, then a rename over ``target``. :class:`~trackguard.errors.OutputError` when
    it cannot be written. With ``private`` (request data: samples, audit reports, drafted
    plans) the file is readable by its owner only (0600), whatever the umask and whatever
    mode a file it replaces had."""
    path = Path(target)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, PRIVATE if private else 0o644 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
