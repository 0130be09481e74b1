"""The Track API's routes, and matching a method and path against them.

Every route of the Track API v1 and v2 is here, including the unauthenticated ones and the
Ruby SDK's legacy ``/push/events``. Path segments are percent-decoded one by one, the way the
official SDKs encode an identifier as a single segment (``/`` travels as ``%2F``).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, unquote

import msgspec


class Route(msgspec.Struct, frozen=True, gc=False):
    """A route template: ``{name}`` segments capture one decoded path segment."""

    method: str
    template: str
    type: str
    action: str
    api: str
    auth: bool = True
    key: str = ""  # "METHOD template", filled in below

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "key", f"{self.method} {self.template}")


ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/api/v1/accounts/region", "workspace", "get_region", "v1"),
    Route("PUT", "/api/v1/customers/{identifier}", "person", "identify", "v1"),
    Route("DELETE", "/api/v1/customers/{identifier}", "person", "delete", "v1"),
    Route("PUT", "/api/v1/customers/{identifier}/devices", "person", "add_device", "v1"),
    Route(
        "DELETE",
        "/api/v1/customers/{identifier}/devices/{device_id}",
        "person",
        "delete_device",
        "v1",
    ),
    Route("POST", "/api/v1/customers/{identifier}/suppress", "person", "suppress", "v1"),
    Route("POST", "/api/v1/customers/{identifier}/unsuppress", "person", "unsuppress", "v1"),
    Route("POST", "/api/v1/customers/{identifier}/events", "person", "event", "v1"),
    Route("POST", "/api/v1/events", "person", "anonymous_event", "v1"),
    Route("POST", "/api/v1/merge_customers", "person", "merge", "v1"),
    Route("POST", "/api/v1/segments/{segment_id}/add_customers", "segment", "add_to_segment", "v1"),
    Route(
        "POST",
        "/api/v1/segments/{segment_id}/remove_customers",
        "segment",
        "remove_from_segment",
        "v1",
    ),
    Route("POST", "/api/v1/forms/{form_id}/submit", "form", "submit_form", "v1"),
    Route("POST", "/api/v1/metrics", "metric", "metric", "v1", auth=False),
    Route("POST", "/api/v1/push/events", "metric", "push_metric", "v1", auth=False),
    Route("POST", "/push/events", "metric", "push_metric", "v1", auth=False),
    Route("POST", "/unsubscribe/{delivery_id}", "metric", "unsubscribe", "v1", auth=False),
    Route("POST", "/api/v2/entity", "entity", "entity", "v2"),
    Route("POST", "/api/v2/batch", "batch", "batch", "v2"),
)


class RouteMatch(msgspec.Struct, frozen=True, gc=False):
    """A matched route; ``not_utf8`` names the params whose percent-escapes are not UTF-8
    (their value holds U+FFFD where a byte could not be decoded, so it is not the original)."""

    route: Route
    params: dict[str, str]
    query: dict[str, str]
    not_utf8: tuple[str, ...] = ()


def _segment(raw: str) -> tuple[str, bool]:
    """A percent-decoded path segment, and whether its escapes were valid UTF-8."""
    if "%" not in raw:
        return raw, True
    try:
        return unquote(raw, errors="strict"), True
    except UnicodeDecodeError:
        return unquote(raw), False


class _Node:
    __slots__ = ("children", "param", "param_name", "routes")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.param_name: str | None = None
        self.routes: dict[str, Route] = {}


def _build() -> _Node:
    root = _Node()
    for route in ROUTES:
        node = root
        for seg in route.template.strip("/").split("/"):
            if seg.startswith("{"):
                if node.param is None:
                    node.param = _Node()
                    node.param_name = seg[1:-1]
                node = node.param
            else:
                node = node.children.setdefault(seg, _Node())
        node.routes[route.method] = route
    return root


_ROOT: Final = _build()


class NoRoute(msgspec.Struct, frozen=True, gc=False):
    """No route matched: ``status`` is 404 (unknown path) or 405 (known path, other method)."""

    status: int
    allowed: tuple[str, ...] = ()


_PEOPLE: Final = "/api/v1/customers/"
_EVENT_ROUTE: Final = next(r for r in ROUTES if r.action == "event")
_IDENTIFY_ROUTE: Final = next(r for r in ROUTES if r.action == "identify")
_NO_QUERY: Final[dict[str, str]] = {}


def match(method: str, raw_path: str) -> RouteMatch | NoRoute:
    """Match a request line's method and path (with optional query string).

    Track and identify calls are most of the traffic: they are recognised without walking
    the route tree (the same answer, a third of the time).
    """
    if raw_path.startswith(_PEOPLE) and "?" not in raw_path:
        rest = raw_path[18:]
        if method == "POST" and rest.endswith("/events"):
            ident = rest[:-7]
            if ident and "/" not in ident:
                return _person(_EVENT_ROUTE, ident)
        elif method == "PUT" and rest and "/" not in rest:
            return _person(_IDENTIFY_ROUTE, rest)
    path, _, qs = raw_path.partition("?")
    segments = path.strip("/").split("/") if path.strip("/") else []
    node: _Node | None = _ROOT
    params: dict[str, str] = {}
    not_utf8: list[str] = []
    for raw in segments:
        assert node is not None
        child = node.children.get(raw)
        if child is not None:
            node = child
            continue
        if node.param is not None and node.param_name is not None:
            params[node.param_name], ok = _segment(raw)
            if not ok:
                not_utf8.append(node.param_name)
            node = node.param
            continue
        return NoRoute(404)
    # An empty segment ("/customers//events") captures "", which the contract check reports as
    # a missing id rather than an unknown path.
    if node is None or not node.routes:
        return NoRoute(404)
    route = node.routes.get(method.upper())
    if route is None:
        return NoRoute(405, tuple(sorted(node.routes)))
    query = dict(parse_qsl(qs, keep_blank_values=True)) if qs else {}
    return RouteMatch(route, params, query, tuple(not_utf8))


def _person(route: Route, raw: str) -> RouteMatch:
    value, ok = _segment(raw)
    return RouteMatch(route, {"identifier": value}, _NO_QUERY, () if ok else ("identifier",))
