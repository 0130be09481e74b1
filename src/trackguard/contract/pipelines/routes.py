"""The Pipelines API's paths: the documented ``/v1/<type>`` ones and the browser SDK's letters.

Every call is a ``POST``. The documented paths are ``/v1/identify|track|page|screen|group|
alias|batch``; the browser SDK posts ``text/plain`` JSON to ``/v1/i|t|p|s|g|a`` (the first
letter of the type), ``/v1/b`` when it batches, and its own telemetry to ``/v1/m``.
"""

from __future__ import annotations

from typing import Final

import msgspec

CALL_TYPES: Final = ("identify", "track", "page", "screen", "group", "alias")
PREFIX: Final = "/v1/"


class PipelinesRoute(msgspec.Struct, frozen=True, gc=False):
    """``kind`` is a call type, ``"batch"``, or ``"metrics"`` (browser telemetry, not a call)."""

    path: str
    kind: str
    browser: bool = False

    @property
    def is_batch(self) -> bool:
        return self.kind == "batch"


ROUTES: Final[dict[str, PipelinesRoute]] = {
    **{f"{PREFIX}{t}": PipelinesRoute(f"{PREFIX}{t}", t) for t in (*CALL_TYPES, "batch")},
    **{f"{PREFIX}{t[0]}": PipelinesRoute(f"{PREFIX}{t[0]}", t, True) for t in CALL_TYPES},
    f"{PREFIX}b": PipelinesRoute(f"{PREFIX}b", "batch", True),
    f"{PREFIX}m": PipelinesRoute(f"{PREFIX}m", "metrics", True),
}


def is_pipelines_path(path: str) -> bool:
    """True for any path under ``/v1/``: the Pipelines API's, not the Track API's."""
    return path.startswith(PREFIX)


def route_for(path: str) -> PipelinesRoute | None:
    """The route of a path (query string ignored; one trailing slash tolerated), or None."""
    path = path.partition("?")[0]
    if path.endswith("/") and len(path) > len(PREFIX):
        path = path[:-1]
    return ROUTES.get(path)
