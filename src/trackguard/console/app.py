"""The console's ASGI app: a few server-rendered pages over a store, and one JSON endpoint.

Raw ASGI like the gateway (``trackguard.http.asgi``): the console is nine routes, so a router
is a dict. Pages are Jinja2 templates with autoescaping on, because every event name, id and
body shown comes from untrusted clients. Every answer carries a Content-Security-Policy that
allows only the console's own scripts and styles (no inline script), so a ``<script>`` that
slipped through escaping still could not run.

Safety, in order: a login (when a token file is set) before any page; read-only unless the
console was started with ``--allow-replay``; every POST needs the session's CSRF token and, when
the browser sends one, an ``Origin`` equal to the console's own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from jinja2 import Environment, PackageLoader, select_autoescape

from trackguard.console import data
from trackguard.console.auth import (
    COOKIE,
    Session,
    Sessions,
    cookie_header,
    cookie_value,
    csrf_ok,
)
from trackguard.console.replaying import ReplayRequest, ReplayService, ReplayView
from trackguard.core.pipeline import Checker
from trackguard.http.asgi import Receive, Scope, Send, header, lifespan, send_response
from trackguard.monitor.rules import AlertConfig
from trackguard.plan.model import Plan
from trackguard.store import quarantine as q
from trackguard.store import reads
from trackguard.store.base import StoreError
from trackguard.store.sql import is_postgres_url

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

HTML: Final = "text/html; charset=utf-8"
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: Final = (
    ("content-security-policy", _CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
)
_STATIC: Final = {
    "uplot.min.js": "text/javascript; charset=utf-8",
    "uplot.min.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
#: The most a form body may be (replay fix rules included).
MAX_FORM_BYTES: Final = 64 * 1024
#: Seconds between the overview charts' refreshes, and the whole page's (figures, alerts).
REFRESH_SECONDS: Final = 30
PAGE_REFRESH_SECONDS: Final = 60
#: Connections the console keeps to a PostgreSQL store (pages read in parallel threads).
_READ_POOL: Final = 4


@dataclass
class ConsoleConfig:
    #: A SQLite path, ``sqlite:///path`` or ``postgresql://…`` URL.
    store: str
    plan: Plan | None = None
    alerts: AlertConfig | None = None
    token: str | None = None
    allow_replay: bool = False
    #: Whether the console is reached over HTTPS (the cookie then gets ``Secure``).
    secure: bool = False
    clock: Callable[[], float] = field(default=time.time)


class _Request:
    def __init__(self, scope: Scope, body: bytes, session: Session | None) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self.form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        self.session = session


class _Answer(Exception):
    """Raised by a view to answer at once (redirects, errors)."""

    def __init__(
        self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def _redirect(location: str, extra: tuple[tuple[str, str], ...] = ()) -> _Answer:
    return _Answer(303, b"", (("location", location), *extra))


View = Callable[[_Request], Awaitable[tuple[int, bytes, str]]]


class Console:
    """The ASGI application."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        #: What the pages' aggregates read: the path, or one PostgreSQL store (a small pool)
        #: opened here, so a page borrows connections instead of connecting for each query.
        self.source = _source(config.store)
        self.sessions = Sessions(config.token, clock=config.clock)
        self.checker = Checker(config.plan)
        self.replay = ReplayService(config.store, config.plan, clock=config.clock)
        self.env = Environment(
            loader=PackageLoader("trackguard.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["iso"] = data.iso
        self.env.filters["duration"] = data.duration
        self.env.filters["tojson_attr"] = lambda v: json.dumps(v, ensure_ascii=True)
        self.env.globals["allow_replay"] = config.allow_replay
        self._views: dict[tuple[str, str], View] = {
            ("GET", "/"): self._overview,
            ("GET", "/api/series"): self._series,
            ("GET", "/quarantine"): self._quarantine,
            ("GET", "/replay"): self._replay_form,
            ("POST", "/replay"): self._replay_post,
            ("GET", "/plan"): self._plan,
            ("GET", "/delivery"): self._delivery,
        }

    def close(self) -> None:
        """Close the PostgreSQL store's connections (nothing to do for a SQLite path)."""
        if not isinstance(self.source, str):
            self.source.close()

    async def _shutdown(self) -> None:
        self.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, shutdown=self._shutdown)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, ctype, headers = await self._dispatch(scope, receive)
        except _Answer as answer:
            status, body, ctype, headers = answer.status, answer.body, HTML, answer.headers
        except StoreError as exc:
            body = self._render("error.html", None, status=503, message=str(exc))
            status, ctype, headers = 503, HTML, ()
        await send_response(
            send, status, body, content_type=ctype, headers=(*_SECURITY_HEADERS, *headers)
        )

    async def _dispatch(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        method, path = scope["method"], scope["path"]
        if method == "GET" and path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        body = await _read_form(receive) if method == "POST" else b""
        session = self.sessions.get(cookie_value(header(scope, b"cookie")))
        if path == "/login":
            return await self._login(scope, method, body, session)
        if path == "/logout" and method == "POST":
            request = _Request(scope, body, session)
            self._require_csrf(request)
            self.sessions.logout(session.id if session else None)
            raise _redirect("/login", (("set-cookie", cookie_header(None, secure=False)),))
        if self.sessions.required and session is None:
            target = urllib.parse.quote(path, safe="/")
            raise _redirect(f"/login?next={target}")
        request = _Request(scope, body, session)
        if method == "POST":
            self._require_csrf(request)
        view = self._views.get((method, path))
        if view is None and method == "GET" and path.startswith("/quarantine/"):
            view = self._record
        if view is None:
            allowed = sorted(m for m, p in self._views if p == path)
            if allowed:
                raise _Answer(405, b"method not allowed\n", (("allow", ", ".join(allowed)),))
            page = self._render("error.html", request, status=404, message="No such page.")
            return 404, page, HTML, ()
        status, page, ctype = await view(request)
        return status, page, ctype, ()

    def _require_csrf(self, request: _Request) -> None:
        _require_same_origin(request.scope)
        if self.sessions.required and not csrf_ok(request.session, request.form.get("csrf", "")):
            raise _Answer(403, b"missing or wrong CSRF token\n")
        if not self.sessions.required:
            # Without a token there is no session to bind a CSRF token to; the console then
            # only binds to loopback and is read-only (``--allow-replay`` needs a token).
            raise _Answer(403, b"actions need a console started with --token-file\n")

    # -- pages ---------------------------------------------------------------------------

    def _render(self, name: str, request: _Request | None, **context: Any) -> bytes:
        template = self.env.get_template(name)
        session = request.session if request is not None else None
        return template.render(
            csrf=session.csrf if session else "",
            logged_in=session is not None,
            login_required=self.sessions.required,
            path=request.path if request is not None else "",
            store=data.store_label(self.config.store),
            **context,
        ).encode("utf-8")

    async def _overview(self, request: _Request) -> tuple[int, bytes, str]:
        now = self.config.clock()
        range_name = request.query.get("range", data.DEFAULT_RANGE)
        view = await asyncio.to_thread(
            data.overview, self.source, self.config.plan, self.config.alerts, range_name, now
        )
        thresholds = data.rate_thresholds(self.config.alerts)
        page = self._render(
            "overview.html",
            request,
            view=view,
            ranges=list(data.RANGES),
            thresholds=thresholds,
            refresh=REFRESH_SECONDS,
            page_refresh=PAGE_REFRESH_SECONDS,
            now=now,
        )
        return 200, page, HTML

    async def _series(self, request: _Request) -> tuple[int, bytes, str]:
        now = self.config.clock()
        range_name = request.query.get("range", data.DEFAULT_RANGE)
        if range_name not in data.RANGES:
            range_name = data.DEFAULT_RANGE
        events = await asyncio.to_thread(data.charted_events, self.source, self.config.plan, now)
        body = await asyncio.to_thread(data.series, self.source, range_name, now, events)
        body["thresholds"] = data.rate_thresholds(self.config.alerts)
        return 200, json.dumps(body).encode(), "application/json"

    async def _quarantine(self, request: _Request) -> tuple[int, bytes, str]:
        now = self.config.clock()
        flt = data.quarantine_filter(request.query, now)
        before = _int(request.query.get("before"))
        records, next_before, budget = await asyncio.to_thread(
            data.quarantine_page, self.source, flt, before
        )
        # Filter hints: the events and codes counted in the last hour or two (cheap: hourly rows).
        usage = await asyncio.to_thread(reads.event_usage, self.source, now - 3600)
        codes = await asyncio.to_thread(reads.code_counts, self.source, now - 3600)
        kept = {k: v for k, v in request.query.items() if k != "before" and v}
        page = self._render(
            "quarantine.html",
            request,
            records=records,
            query=request.query,
            next_query=urllib.parse.urlencode({**kept, "before": next_before})
            if next_before
            else None,
            first_query=urllib.parse.urlencode(kept),
            replay_query=urllib.parse.urlencode(kept),
            paged=before is not None,
            scanned_to=next_before if budget else None,
            known_events=sorted(usage),
            known_codes=sorted({c for _, c, _ in codes}),
        )
        return 200, page, HTML

    async def _record(self, request: _Request) -> tuple[int, bytes, str]:
        record_id = _int(request.path.removeprefix("/quarantine/"))
        record = None
        if record_id is not None:
            record = await asyncio.to_thread(q.get, self.source, record_id)
        if record is None:
            page = self._render("error.html", request, status=404, message="No such record.")
            return 404, page, HTML
        now = self.config.clock()
        body, utf8 = data.body_view(record.body)
        page = self._render(
            "record.html",
            request,
            r=record,
            body=_pretty(body) if utf8 else body,
            utf8=utf8,
            findings=data.findings(record),
            today=data.recheck(record, self.checker, now),
            late=now - record.received_at > data.LATE_SECONDS,
            has_plan=self.config.plan is not None,
        )
        return 200, page, HTML

    async def _replay_form(self, request: _Request) -> tuple[int, bytes, str]:
        flt = data.quarantine_filter(request.query, self.config.clock())
        preview = None
        error = None
        fixes = request.query.get("fixes", "")
        if request.query.get("preview") and self.config.allow_replay:
            try:
                preview = await asyncio.to_thread(
                    self.replay.run, ReplayRequest(flt, fixes, dry_run=True)
                )
            except ValueError as exc:
                error = str(exc)
        page = self._render_replay(request, request.query, fixes, preview, None, error)
        return 200, page, HTML

    async def _replay_post(self, request: _Request) -> tuple[int, bytes, str]:
        if not self.config.allow_replay:
            raise _Answer(403, b"replay is off: start the console with --allow-replay\n")
        form = request.form
        flt = data.quarantine_filter(form, self.config.clock())
        fixes = form.get("fixes", "")
        error = None
        result = None
        try:
            result = await asyncio.to_thread(
                self.replay.run, ReplayRequest(flt, fixes, dry_run=False)
            )
        except ValueError as exc:
            error = str(exc)
        page = self._render_replay(request, form, fixes, None, result, error)
        return 200 if error is None else 400, page, HTML

    def _render_replay(
        self,
        request: _Request,
        query: dict[str, str],
        fixes: str,
        preview: ReplayView | None,
        result: ReplayView | None,
        error: str | None,
    ) -> bytes:
        return self._render(
            "replay.html",
            request,
            query=query,
            fixes=fixes,
            preview=preview,
            result=result,
            error=error,
            hidden=_filter_fields(query),
        )

    async def _plan(self, request: _Request) -> tuple[int, bytes, str]:
        rows = await asyncio.to_thread(
            data.plan_rows, self.source, self.config.plan, self.config.clock()
        )
        page = self._render("plan.html", request, rows=rows, plan=self.config.plan)
        return 200, page, HTML

    async def _delivery(self, request: _Request) -> tuple[int, bytes, str]:
        store = self.source
        now = self.config.clock()
        by_person = await asyncio.to_thread(reads.pending_by, store, "person")
        by_event = await asyncio.to_thread(reads.pending_by, store, "event_name")
        errors = await asyncio.to_thread(reads.upstream_errors, store)
        counts = await asyncio.to_thread(reads.outbox_counts, store)
        since, until, _ = data.window("1h", now)
        per_minute = await asyncio.to_thread(reads.delivery_series, store, since, until, 60)
        requests = dict(per_minute.get("upstream_request", []))
        minutes = list(range(int(since), int(until), 60))
        page = self._render(
            "delivery.html",
            request,
            by_person=by_person,
            by_event=by_event,
            errors=errors,
            counts=counts,
            now=now,
            minutes=[(m, requests.get(m, 0)) for m in minutes][-30:],
            peak=max([requests.get(m, 0) for m in minutes] or [0]),
        )
        return 200, page, HTML

    async def _login(
        self, scope: Scope, method: str, body: bytes, session: Session | None
    ) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        request = _Request(scope, body, session)
        target = _safe_next(request.query.get("next") or request.form.get("next") or "/")
        if not self.sessions.required:
            raise _redirect("/")
        if method == "POST":
            _require_same_origin(scope)
            new = self.sessions.login(request.form.get("token", ""))
            if new is not None:
                cookie = cookie_header(new, secure=self.config.secure)
                raise _redirect(target, (("set-cookie", cookie),))
            page = self._render("login.html", request, failed=True, next=target)
            return 401, page, HTML, ()
        page = self._render("login.html", request, failed=False, next=target)
        return 200, page, HTML, ()

    def _static(self, name: str) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        ctype = _STATIC.get(name)
        if ctype is None:
            return 404, b"not found\n", "text/plain; charset=utf-8", ()
        return 200, _static_bytes(name), ctype, (("cache-control", "max-age=3600"),)


@functools.cache
def _static_bytes(name: str) -> bytes:
    """A packaged static file, read once (only names listed in ``_STATIC`` get here)."""
    return resources.files("trackguard.console").joinpath("static", name).read_bytes()


def _require_same_origin(scope: Scope) -> None:
    """Refuse a request whose ``Origin``, when the browser sends one, is not the console's own."""
    origin = header(scope, b"origin")
    host = header(scope, b"host")
    if origin is not None and host is not None:
        netloc = urllib.parse.urlsplit(origin.decode("latin-1")).netloc
        if netloc != host.decode("latin-1"):
            raise _Answer(403, b"cross-site request refused\n")


async def _read_form(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Answer(400, b"client went away\n")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise _Answer(413, b"form too large\n")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _safe_next(target: str) -> str:
    """A same-site path to go to after login; anything else (``//evil``, ``http://``) is ``/``."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


_FILTER_FIELDS: Final = (
    "event",
    "code",
    "source",
    "route",
    "plan_version",
    "kind",
    "state",
    "since",
    "until",
)


def _filter_fields(values: dict[str, str]) -> list[tuple[str, str]]:
    return [(k, values[k]) for k in _FILTER_FIELDS if values.get(k)]


__all__ = ["COOKIE", "Console", "ConsoleConfig"]


def _source(store: str) -> str | PostgresStore:
    """``store`` as the aggregates read it: a PostgreSQL URL opened once (refused at start when
    it is unreachable or holds no store), a SQLite path as it is."""
    if not is_postgres_url(store):
        return store
    from trackguard.store.postgres import PostgresStore

    return PostgresStore(store, create=False, pool_size=_READ_POOL)
