"""A small HTTP/1.1 load generator for loopback benchmarks (keep-alive, asyncio + uvloop).

Closed loop (``peak``): ``connections`` clients send back to back for ``seconds``; the
throughput is the server's capacity. Open loop (``at_rate``): requests are scheduled at a
fixed rate and latency is measured from the *scheduled* time, so a stalled server is charged
for the requests it delayed (no coordinated omission).

The cyclic garbage collector is off while a run lasts: its full collections paused this
process for 40-60 ms, and every request in flight or scheduled meanwhile was charged for the
generator's pause (about half of the p99 at half load that ``bench/gateway.py`` reported). A
run's garbage is collected after it.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

try:
    import uvloop
except ImportError:  # pragma: no cover - the bench extra installs it
    uvloop = None


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        k = min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))
        return data[k]

    @property
    def p50_ms(self) -> float:
        return 1000 * self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return 1000 * self.percentile(99)

    @property
    def mean_ms(self) -> float:
        return 1000 * statistics.fmean(self.latencies) if self.latencies else float("nan")


def build_request(method: str, path: str, body: bytes, auth: tuple[str, str] | None) -> bytes:
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
    lines = [
        f"{method} {path} HTTP/1.1",
        "host: 127.0.0.1",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if token:
        lines.append(f"authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def _connect(port: int) -> _Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return _Conn(reader, writer)


async def _peak(
    port: int, make: Callable[[int], bytes], connections: int, seconds: float
) -> LoadResult:
    result = LoadResult()
    conns = [await _connect(port) for _ in range(connections)]
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker(conn: _Conn) -> None:
        while time.perf_counter() < deadline:
            request = make(next(counter))
            t0 = time.perf_counter()
            try:
                status = await conn.roundtrip(request)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                return
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.requests += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - start
    for c in conns:
        c.writer.close()
    return result


async def _at_rate(
    port: int, make: Callable[[int], bytes], rate: float, seconds: float, connections: int
) -> LoadResult:
    result = LoadResult()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await _connect(port))
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(n: int, scheduled: float) -> None:
        conn = await idle.get()
        try:
            status = await conn.roundtrip(make(n))
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            return
        result.latencies.append(time.perf_counter() - scheduled)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        result.requests += 1
        idle.put_nowait(conn)

    # Only the requests in flight are held: one gather over every task of the run, built after
    # the last was scheduled, held this loop for tens of milliseconds while the last requests'
    # answers waited, and charged them for it.
    pending: set[asyncio.Future[None]] = set()
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(n, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    while pending:
        await asyncio.wait(set(pending))
    result.seconds = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().writer.close()
    return result


def _run(coro: object) -> LoadResult:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        if uvloop is not None:
            return uvloop.run(coro)  # type: ignore[arg-type, no-any-return]
        return asyncio.run(coro)  # type: ignore[arg-type, no-any-return]
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def peak(
    port: int, make: Callable[[int], bytes], *, connections: int = 32, seconds: float = 5.0
) -> LoadResult:
    return _run(_peak(port, make, connections, seconds))


def at_rate(
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float = 5.0,
    connections: int = 64,
) -> LoadResult:
    return _run(_at_rate(port, make, rate, seconds, connections))
