"""A strict local Customer.io Track API: the emulator's ASGI app.

Every Track route answers exactly what ``trackguard.contract`` says Customer.io answers
(``render(evaluate(request))``), after Basic auth on the routes that need it, and accepted
operations are applied to an in-memory workspace (:mod:`emulator_state`) before the answer
goes out. Faults (:mod:`emulator_faults`) are decided first, as a load balancer in front of
Customer.io would fail. ``/_emulator/…`` is the read and control API (:mod:`emulator_api`).

Example::

    emulator = create_emulator("site", "key")
    with start_in_thread(emulator) as server:
        httpx.put(f"{server.url}/api/v1/customers/42", json={"plan": "pro"},
                  auth=("site", "key"))
        emulator.state.person_view("42")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from trackguard.contract import messages
from trackguard.contract.check import evaluate
from trackguard.contract.operations import Request
from trackguard.contract.pipelines import WriteKey, is_pipelines_path
from trackguard.contract.responses import render, v1_error
from trackguard.contract.routes import RouteMatch, match
from trackguard.emulator import api as emulator_api
from trackguard.emulator import pipelines as emulator_pipelines
from trackguard.emulator.door import fault_answer, read_capped
from trackguard.emulator.faults import FaultConfig, Faults, fault_body, parse_faults
from trackguard.emulator.log import EmulatorLog, record_line
from trackguard.emulator.pipelines_state import PipelinesState
from trackguard.emulator.state import EmulatorState
from trackguard.http.asgi import (
    Receive,
    Scope,
    Send,
    allow_header,
    authorized,
    credentials_match,
    lifespan,
    request_target,
    send_response,
    track_too_large,
    track_unauthorized,
)

log = logging.getLogger("trackguard.emulator")

#: Headers Customer.io's Track API sends with every answer (live capture).
_TRACK_HEADERS: Final = (
    ("access-control-allow-origin", "*"),
    ("cache-control", "no-cache, no-store, must-revalidate, max-age=0"),
)


class Emulator:
    """The ASGI app. ``state`` holds the workspace, ``faults`` the injection, ``log`` requests."""

    def __init__(
        self,
        site_id: str,
        api_key: str,
        *,
        record: Path | None = None,
        faults: FaultConfig | None = None,
        clock: Callable[[], float] = time.time,
        write_key: str | None = None,
    ) -> None:
        self._site_id = site_id
        self._api_key = api_key
        self._write_key = write_key
        self.state = EmulatorState(clock)
        self.pipelines = PipelinesState()
        self.faults = Faults(faults, clock)
        self.log = EmulatorLog(record)
        self._clock = clock

    def __repr__(self) -> str:  # never show the credentials
        return f"<Emulator people={len(self.state.people)} requests={self.log.total}>"

    def authorized(self, scope: Scope) -> bool:
        return authorized(scope, self._site_id, self._api_key)

    def pipelines_key_accepted(self, key: WriteKey | None) -> bool:
        """A Pipelines write key is accepted when it is the emulator's (compared in constant
        time), or, when the emulator has none, whenever one is sent."""
        if key is None:
            return False
        if self._write_key is None:
            return True
        return credentials_match((key.value, ""), self._write_key, "")

    def reset(self) -> None:
        """Forget the workspace, the request log and the statistics (faults stay)."""
        self.state.reset()
        self.pipelines.reset()
        self.log.reset()

    def stats(self) -> dict[str, Any]:
        """Requests by status, events, duplicates ignored and peak request rates."""
        return {
            **self.log.stats(),
            **self.state.counts(),
            **self.pipelines.counts(),
            "faults_injected": self.faults.injected,
        }

    def close(self) -> None:
        """Close the record file."""
        self.log.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        if path == emulator_api.PREFIX or path.startswith(emulator_api.PREFIX + "/"):
            await emulator_api.handle(self, scope, receive, send)
        elif is_pipelines_path(path):
            await emulator_pipelines.handle(self, scope, receive, send)
        else:
            await self._track(scope, receive, send)

    async def _track(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.log.arrival()
        received = self._clock()
        method: str = scope["method"]
        target = request_target(scope)
        hit = match(method, target)
        template = hit.route.template if isinstance(hit, RouteMatch) else None
        read = await read_capped(scope, receive, send, messages.MAX_BODY_BYTES)
        if read is None:
            return
        body, too_large = read
        decision = self.faults.decide(target.partition("?")[0], template)
        headers: list[tuple[str, str]] = list(_TRACK_HEADERS)
        if decision.status is not None:
            status, payload, extra = fault_answer(decision, fault_body)
            headers.extend(extra)
        elif isinstance(hit, RouteMatch) and hit.route.auth and not self.authorized(scope):
            status, payload = track_unauthorized()
        elif too_large:
            status, payload = track_too_large(method, target)
            headers.append(("connection", "close"))  # the unread rest of the body is in the way
            headers.extend(allow_header(hit))
        else:
            try:
                status, payload, allowed = self._evaluate(scope, method, target, body)
                if allowed:
                    headers.append(("allow", ", ".join(allowed)))
            except Exception:  # a bug must not hide the request: answer, log and record it
                log.exception("emulator failed on %s %s", method, target)
                status, payload = 500, v1_error("Internal Server Error")
        if decision.delay:
            await asyncio.sleep(decision.delay)
        line = record_line(
            received, method, target, scope.get("headers", ()), body, status, payload
        )
        self.log.add(line, status)
        await send_response(send, status, payload, headers=headers)

    def _evaluate(
        self, scope: Scope, method: str, target: str, body: bytes
    ) -> tuple[int, bytes, tuple[str, ...]]:
        """The contract's answer (and a 405's allowed methods); accepted operations applied."""
        headers = tuple(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope.get("headers", ())
            if k != b"authorization"
        )
        result = evaluate(Request(method=method, path=target, body=body, headers=headers))
        status, payload = render(result)
        if result.accepted:
            self.state.apply(result.operations)
            if result.route is not None and result.route.action == "get_region":
                payload = self._region(scope)
        return status, payload, result.allowed

    @staticmethod
    def _region(scope: Scope) -> bytes:
        host = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            name = f"[{server[0]}]" if ":" in server[0] else server[0]
            host = f"{name}:{server[1]}".encode()
        url = f"{scope.get('scheme', 'http')}://{bytes(host).decode('latin-1')}"
        return msgspec.json.encode({"url": url, "region": "us", "environment_id": 1}) + b"\n"


def create_emulator(
    site_id: str,
    api_key: str,
    *,
    record: Path | str | None = None,
    faults: FaultConfig | Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
    write_key: str | None = None,
) -> Emulator:
    """An emulator accepting these credentials.

    ``write_key`` is the Pipelines API's; without one any write key is accepted.
    ``record`` appends every Track request to a JSONL file; ``faults`` is a
    :class:`FaultConfig` or its JSON form (raises ``FaultConfigError`` if invalid); ``clock``
    (Unix seconds) drives outage windows and the anonymous-merge window.
    """
    if not site_id or not api_key:
        raise ValueError("the emulator needs a site id and an API key")
    config = (
        faults
        if isinstance(faults, FaultConfig) or faults is None
        else parse_faults(faults, clock())
    )
    return Emulator(
        site_id,
        api_key,
        record=None if record is None else Path(record),
        faults=config,
        clock=clock,
        write_key=write_key,
    )
