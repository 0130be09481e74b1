"""CORS on the Pipelines door: what the browser SDK, running on a site's pages, needs to post
to the gateway and take its answer.

The SDK posts ``text/plain`` JSON with no credentials and no custom header, a CORS "simple"
request that goes out without a preflight. The browser hides the answer from the page unless
it allows the page's origin, and the SDK takes a hidden answer as a network error: it keeps the
call and sends it again, same messageId, after a backoff. Any answer it can see, even a 4xx or
a 5xx, counts as delivered. Hence the door's rule:

* an answer that settles the request (``200``, ``400``, ``401``, ``404`` for an unknown path,
  ``405``) allows the origin, so the SDK never resends it;
* an answer that kept nothing and asks for a retry (``503`` when the store failed, ``408`` when
  the body came too slowly, ``404`` while the door is not enabled) allows no origin, so the
  browser refuses it to the page and the SDK sends the call again.

A preflight ``OPTIONS`` (browser code that posts ``application/json`` or adds
``Authorization`` or ``X-Strict-Mode``) is answered ``204`` with the method and headers allowed.

Origins: any by default (``*``), because the SDK runs on any site that embeds it and its write
key is public in every page anyway. ``serve --pipelines-origin`` narrows it to a list: a listed
origin is named in the answer (with ``Vary: Origin``), and a request whose ``Origin`` is not
listed is refused ``403`` before its body is read. CORS itself never stops a simple request from
arriving; the refusal does, for browsers, which always send ``Origin`` on such a ``POST``.
Requests without ``Origin`` (servers, curl) are not browser requests and pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

Header = tuple[str, str]

ANY: Final[Header] = ("access-control-allow-origin", "*")
VARY: Final[Header] = ("vary", "Origin")
#: Chromium caches a preflight for at most 2 hours, Firefox for 24.
MAX_AGE: Final = 7200
PREFLIGHT: Final[tuple[Header, ...]] = (
    ("access-control-allow-methods", "POST"),
    (
        "access-control-allow-headers",
        "authorization, content-encoding, content-type, x-strict-mode",
    ),
    ("access-control-max-age", str(MAX_AGE)),
)
ORIGIN_REFUSED: Final = "origin not allowed"
REFUSED_BODY: Final = msgspec.json.encode(
    {"code": "origin_not_allowed", "message": ORIGIN_REFUSED, "meta": {"errors": [ORIGIN_REFUSED]}}
)


class OriginError(ValueError):
    """A ``--pipelines-origin`` that is not ``scheme://host[:port]``."""


def normalize_origin(value: str) -> str:
    """``https://Shop.Example`` → ``https://shop.example``: an origin as browsers send it."""
    origin = value.strip().lower()
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or any(c in rest for c in "/?#@ "):
        raise OriginError(
            f"{value!r} is not an origin: give scheme://host[:port], such as https://shop.example"
        )
    return origin


class Cors:
    """The CORS headers of the door's answers, for ``origins`` (None: any origin)."""

    def __init__(self, origins: Iterable[str] | None = None) -> None:
        self.origins = None if origins is None else frozenset(map(normalize_origin, origins))

    def allows(self, origin: str | None) -> bool:
        """False only for a browser origin outside the configured list."""
        return self.origins is None or origin is None or origin.lower() in self.origins

    def headers(self, origin: str | None) -> list[Header]:
        """The headers that let ``origin``'s page read a settling answer."""
        if self.origins is None:
            return [ANY]
        if origin is None or origin.lower() not in self.origins:
            return [VARY]
        return [("access-control-allow-origin", origin), VARY]

    def preflight(self, origin: str | None) -> list[Header]:
        """The headers of the ``204`` answer to an ``OPTIONS`` preflight from ``origin``."""
        return [*self.headers(origin), *PREFLIGHT]


__all__ = ["ANY", "Cors", "OriginError", "normalize_origin"]
