"""Console sessions: a token login, an HttpOnly SameSite=Strict cookie, a CSRF token per session.

The operator's token comes from a file (``--token-file``), never the command line, so it is not
in ``ps`` or shell history. It is compared in constant time. A login creates a random session
id held only in this process's memory (a restart logs everyone out, which is the safe default
for a tool that can replay data); the cookie carries nothing else. Every state-changing request
must carry the session's CSRF token in its form, and a browser's ``Origin``, when sent, must be
the console's own: SameSite=Strict already keeps the cookie off cross-site requests, and the
token covers browsers that ignore it.

Sessions are bounded: at most :data:`MAX_SESSIONS` live at once (the oldest is dropped) and each
lasts :data:`SESSION_SECONDS`.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from trackguard.errors import ConfigError

COOKIE: Final = "tg_console"
SESSION_SECONDS: Final = 12 * 3600.0
MAX_SESSIONS: Final = 1000
#: Shortest token accepted from a token file: guessing it must be hopeless.
MIN_TOKEN_CHARS: Final = 16


class ConsoleError(ConfigError):
    """The console cannot start as configured (a bad token file, an unsafe bind)."""


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires_at: float


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored); ConsoleError if unusable."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsoleError(f"{path}: cannot read the console token: {exc}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConsoleError(
            f"{path}: the console token must be at least {MIN_TOKEN_CHARS} characters"
        )
    return token


class Sessions:
    """Logged-in sessions of one console process."""

    def __init__(self, token: str | None, clock: Callable[[], float] = time.time) -> None:
        self._token = None if token is None else token.encode("utf-8")
        self._clock = clock
        self._live: OrderedDict[str, Session] = OrderedDict()

    @property
    def required(self) -> bool:
        """Whether a login is needed at all (a token file was given)."""
        return self._token is not None

    def login(self, given: str) -> Session | None:
        """A new session when ``given`` is the token, else None (constant-time compare)."""
        if self._token is None:
            return None
        if not hmac.compare_digest(given.encode("utf-8"), self._token):
            return None
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock() + SESSION_SECONDS,
        )
        self._live[session.id] = session
        while len(self._live) > MAX_SESSIONS:
            self._live.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (expired sessions are forgotten)."""
        if not session_id:
            return None
        session = self._live.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._live[session_id]
            return None
        return session

    def logout(self, session_id: str | None) -> None:
        if session_id:
            self._live.pop(session_id, None)


def csrf_ok(session: Session | None, given: str) -> bool:
    """Whether ``given`` is the session's CSRF token (constant time)."""
    if session is None or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), session.csrf.encode("utf-8"))


def cookie_header(session: Session | None, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that stores (or, for None, clears) the session cookie."""
    value = "" if session is None else session.id
    age = 0 if session is None else int(SESSION_SECONDS)
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{flags}"


def cookie_value(raw: bytes | None) -> str | None:
    """The session id in a ``Cookie`` header, or None."""
    if not raw:
        return None
    for part in raw.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value or None
    return None
