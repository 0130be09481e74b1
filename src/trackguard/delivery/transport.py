"""The upstream HTTP transport: one tiny interface, an httpx implementation and a mock.

Delivery (and anything else that calls out, such as notifiers) talks to a :class:`Transport`:
``send(method, url_path, body) -> UpstreamResponse``. Any HTTP status is a response, not an
error; only a request that got no response raises. Tests swap in :class:`MockTransport`.

Exception tree::

    TransportError        no HTTP response: the request may or may not have reached upstream
    ├── ConnectFailed     could not connect (refused, DNS, TLS handshake)
    └── UpstreamTimeout   connect, write, read or pool timeout

Credentials travel in the ``Authorization`` header only; they are in no repr, message or log.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Callable
from typing import Final, Protocol

import httpx
import msgspec

from trackguard import __version__
from trackguard.errors import UpstreamError

USER_AGENT: Final = f"trackguard/{__version__}"


class TransportError(UpstreamError):
    """The request got no HTTP response."""


class ConnectFailed(TransportError):
    """Could not connect to upstream."""


class UpstreamTimeout(TransportError):
    """Upstream did not answer in time."""


class UpstreamResponse(msgspec.Struct, frozen=True):
    """An HTTP response; ``headers`` names are lowercase."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Transport(Protocol):
    def send(self, method: str, url_path: str, body: bytes | None) -> UpstreamResponse:
        """Send one request; raises :class:`TransportError` when no response came back."""

    def close(self) -> None: ...


class HttpxTransport:
    """:class:`Transport` over one keep-alive ``httpx.Client`` with Basic auth.

    ``base_url`` is the Track API host (``https://track.customer.io``, or an emulator);
    ``url_path`` is appended as sent, percent-encoding included. ``verify`` is True, False, or
    the path of a CA bundle (for an emulator with a self-signed certificate).
    """

    def __init__(
        self,
        base_url: str,
        site_id: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        tls: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth(site_id, api_key),
            headers={"user-agent": USER_AGENT},
            timeout=timeout,
            verify=tls,
        )

    def __repr__(self) -> str:
        return f"HttpxTransport({self.base_url!r})"

    def send(self, method: str, url_path: str, body: bytes | None) -> UpstreamResponse:
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            response = self._client.request(method, url_path, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{type(exc).__name__} on {method} {url_path}") from exc
        except httpx.ConnectError as exc:
            raise ConnectFailed(f"cannot connect to {self.base_url}: {exc}") from exc
        except httpx.RequestError as exc:  # broken connection, bad framing or encoding
            raise TransportError(f"{type(exc).__name__} on {method} {url_path}: {exc}") from exc
        return UpstreamResponse(
            status=response.status_code,
            headers=tuple((k.lower(), v) for k, v in response.headers.items()),
            body=response.content,
        )

    def close(self) -> None:
        self._client.close()


class UpstreamRequestRecord(msgspec.Struct, frozen=True):
    """What a :class:`MockTransport` handler receives."""

    method: str
    path: str
    body: bytes | None


class MockTransport:
    """:class:`Transport` that answers with ``handler(request)``; the handler may raise
    :class:`TransportError` to play a network failure."""

    def __init__(self, handler: Callable[[UpstreamRequestRecord], UpstreamResponse]) -> None:
        self.handler = handler

    def send(self, method: str, url_path: str, body: bytes | None) -> UpstreamResponse:
        return self.handler(UpstreamRequestRecord(method, url_path, body))

    def close(self) -> None:
        pass


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date, against
    the Unix time ``now``); None when absent or unreadable. Never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # HTTP dates are GMT; a zone-less date is not one
    return max(0.0, when.timestamp() - now)
