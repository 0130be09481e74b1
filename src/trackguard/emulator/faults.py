"""Fault injection for the emulator: error statuses by rate or outage window, and latency.

One configuration, the same from the command line, the control endpoint and Python::

    {"status": 503, "rate": 0.3, "latency_ms": 200, "retry_after": 2, "seed": 7,
     "outage": {"start": 1767225600, "end": 1767225660} | {"seconds": 5},
     "routes": ["/api/v2/batch"]}

A request a fault hits is answered with ``status`` and changes nothing, the way a load
balancer or a rate limiter in front of Customer.io fails. ``status`` alone fails every request;
with ``rate`` a seeded coin decides; during ``outage`` every request fails. ``latency_ms``
delays every answer. ``routes`` narrows all of it to exact paths or route templates.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import msgspec

from trackguard.contract.responses import v1_error
from trackguard.errors import ConfigError

DEFAULT_STATUS: Final = 503
MAX_LATENCY_MS: Final = 60_000


class FaultConfigError(ConfigError, ValueError):
    """A fault configuration that cannot be used, with the reason."""


class Outage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An absolute outage window in Unix seconds: ``start <= now < end``."""

    start: float
    end: float


class FaultConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to inject; the empty config injects nothing."""

    status: int | None = None
    rate: float | None = None
    latency_ms: int = 0
    outage: Outage | None = None
    retry_after: int | None = None
    routes: tuple[str, ...] = ()
    seed: int | None = None


class _OutageIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: float | None = None
    end: float | None = None
    seconds: float | None = None


class _ConfigIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: int | None = None
    rate: float | None = None
    latency_ms: int = 0
    outage: _OutageIn | None = None
    retry_after: int | None = None
    routes: tuple[str, ...] = ()
    seed: int | None = None


def _outage(value: _OutageIn | None, now: float) -> Outage | None:
    if value is None:
        return None
    given = (v for v in (value.start, value.end, value.seconds) if v is not None)
    if not all(math.isfinite(v) for v in given):
        raise FaultConfigError("outage times must be finite numbers")
    if value.seconds is not None:
        if value.start is not None or value.end is not None:
            raise FaultConfigError("outage: give either seconds, or start and end")
        if value.seconds < 0:
            raise FaultConfigError("outage.seconds must be >= 0")
        return Outage(now, now + value.seconds)
    if value.start is None or value.end is None:
        raise FaultConfigError("outage: give either seconds, or start and end")
    if value.end < value.start:
        raise FaultConfigError("outage.end must not be before outage.start")
    return Outage(value.start, value.end)


def parse_faults(obj: Any, now: float) -> FaultConfig:
    """Validate a decoded JSON fault configuration; ``{"seconds": n}`` starts at ``now``."""
    try:
        raw = msgspec.convert(obj, _ConfigIn)
    except msgspec.ValidationError as exc:
        raise FaultConfigError(str(exc)) from None
    if raw.status is not None and not 400 <= raw.status <= 599:
        raise FaultConfigError("status must be an HTTP error status from 400 to 599")
    if raw.rate is not None and not 0.0 <= raw.rate <= 1.0:
        raise FaultConfigError("rate must be from 0 to 1")
    if not 0 <= raw.latency_ms <= MAX_LATENCY_MS:
        raise FaultConfigError(f"latency_ms must be from 0 to {MAX_LATENCY_MS}")
    if raw.retry_after is not None and raw.retry_after < 0:
        raise FaultConfigError("retry_after must be >= 0")
    return FaultConfig(
        status=raw.status,
        rate=raw.rate,
        latency_ms=raw.latency_ms,
        outage=_outage(raw.outage, now),
        retry_after=raw.retry_after,
        routes=raw.routes,
        seed=raw.seed,
    )


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What to do to one request: fail it with ``status`` (if set), and wait ``delay`` s."""

    status: int | None = None
    delay: float = 0.0
    retry_after: int | None = None


_NONE: Final = Decision()


def fault_body(status: int) -> bytes:
    """A Customer.io-style error body for an injected status (real bodies are UNVERIFIED)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Emulated fault"
    return v1_error(phrase)


class Faults:
    """The active fault configuration and its random source; safe to change from any thread."""

    def __init__(
        self, config: FaultConfig | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random()
        self.injected = 0
        self.set(config or FaultConfig())

    def set(self, config: FaultConfig) -> None:
        """Replace the configuration (the random source restarts from its seed)."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self.injected = 0

    def update(self, obj: Any) -> FaultConfig:
        """Parse and apply a JSON configuration; raises FaultConfigError."""
        config = parse_faults(obj, self._clock())
        self.set(config)
        return config

    def decide(self, path: str, template: str | None) -> Decision:
        """The fault for a request to ``path`` (no query) matching route ``template``."""
        with self._lock:
            config = self.config
            if config.routes and path not in config.routes and template not in config.routes:
                return _NONE
            rate = config.rate
            if rate is None:
                rate = 1.0 if config.status is not None and config.outage is None else 0.0
            outage = config.outage
            failed = outage is not None and outage.start <= self._clock() < outage.end
            if not failed and rate > 0.0:
                failed = self._rng.random() < rate
            if failed:
                self.injected += 1
        delay = config.latency_ms / 1000.0
        status = config.status if config.status is not None else DEFAULT_STATUS
        if failed:
            return Decision(status, delay, config.retry_after)
        return _NONE if delay == 0.0 else Decision(None, delay, None)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON (outage as absolute times) plus the injected count."""
        data: dict[str, Any] = msgspec.to_builtins(self.config)
        data["injected"] = self.injected
        return data
