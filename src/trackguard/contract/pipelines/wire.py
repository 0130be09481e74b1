"""From request bytes and headers to JSON: gzip under a cap, the write key, strict mode.

Pure, and never raises on input. A gzip body is inflated in one bounded step: at most
``MAX_REQUEST_BYTES + 1`` bytes come out whatever goes in, so a gzip bomb costs the reader no
more than a legitimate 500 KB request.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec

from trackguard.contract.pipelines import messages as m

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
_IDENTITY: Final = frozenset({"", "identity"})
_GZIP: Final = frozenset({"gzip", "x-gzip"})
_URLSAFE_TO_STANDARD: Final = str.maketrans("-_", "+/")

KeySource = Literal["basic", "bearer", "body"]


class WriteKey(msgspec.Struct, frozen=True, gc=False):
    """The write key a request carries and how it carried it; ``repr`` never shows the key."""

    value: str
    source: KeySource

    def __repr__(self) -> str:
        return f"WriteKey(source={self.source!r})"


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def is_strict(headers: Iterable[tuple[str, str]]) -> bool:
    """``X-Strict-Mode: 1`` turns strict mode on; any other value (or none) is permissive."""
    value = header(headers, "x-strict-mode")
    return value is not None and value.strip() == "1"


def inflate(body: bytes, encoding: str | None) -> tuple[bytes, m.Message | None]:
    """The decompressed body, or an error (too large, not gzip, unknown encoding).

    Concatenated gzip members are inflated in turn, all under the one cap.
    """
    coding = (encoding or "").strip().lower()
    if coding in _IDENTITY:
        if len(body) > m.MAX_REQUEST_BYTES:
            return b"", m.REQUEST_TOO_LARGE
        return body, None
    if coding not in _GZIP:
        return b"", m.BAD_ENCODING
    out: list[bytes] = []
    room = m.MAX_REQUEST_BYTES + 1
    rest = body
    try:
        while True:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            chunk = inflater.decompress(rest, room)
            room -= len(chunk)
            out.append(chunk)
            if room <= 0:
                return b"", m.REQUEST_TOO_LARGE
            if not inflater.eof:
                return b"", m.BAD_GZIP  # truncated
            rest = inflater.unused_data
            if not rest:
                return b"".join(out), None
    except zlib.error:
        return b"", m.BAD_GZIP


def _basic_user(token: str) -> str:
    """The user part of a Basic token; a token that is not base64 ``user:password`` is taken as
    the raw key (one docs page shows ``Basic <key>``: UNVERIFIED, so accepted)."""
    padded = token.translate(_URLSAFE_TO_STANDARD) + "=" * (-len(token) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return token
    user, sep, _password = decoded.partition(":")
    return user if sep else token


def write_key(headers: Iterable[tuple[str, str]], body: Any) -> WriteKey | None:
    """The write key from ``Authorization`` (Basic with any password, or Bearer), else from the
    body's ``writeKey`` (the browser SDK); None when there is none."""
    value = header(headers, "authorization")
    if value is not None:
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        scheme = scheme.lower()
        if token and scheme == "basic":
            user = _basic_user(token).strip()
            if user:
                return WriteKey(user, "basic")
        elif token and scheme == "bearer":
            return WriteKey(token, "bearer")
    if isinstance(body, dict):
        key = body.get("writeKey")
        if isinstance(key, str) and key.strip():
            return WriteKey(key.strip(), "body")
    return None
