"""The attacks of ``bench/abuse.py``, one per process: ``_attacks.py NAME PORT SECONDS IDLE
AUTH``; and the health probe, ``_attacks.py probe PORT SECONDS``.

Standard library only, so the attacker starts fast and its imports cost the measured client
nothing; it prints what the server did to it (answers by status, resets, bytes) as JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from typing import Any

_TRACK = "/api/v1/customers/attacker/events"

ATTACKS: dict[str, str] = {
    "endless_header": "4 connections stream one header line as fast as they can",
    "slow_headers": "200 connections send their headers a byte every 0.5 s",
    "slow_body": "200 authenticated connections send a 1 MB body a byte every 0.2 s",
    "idle_to_cap": "idle connections up to the connection ceiling",
    "beyond_cap": "idle connections to the ceiling, then 32 loops opening more",
    "unauth_1gib": "2 connections POST a 1 GiB body without credentials, as fast as they can",
    "open_flood": "16 connections send back to back to an open route (POST /api/v1/metrics)",
}


async def _status_of(reader: asyncio.StreamReader, seen: Counter[str]) -> None:
    """Read until the server answers or closes; count what it did."""
    try:
        data = await reader.read(64)
    except OSError:
        seen["reset"] += 1
        return
    seen[data[9:12].decode() if data.startswith(b"HTTP/1.1 ") else "closed"] += 1


async def _endless_header(port: int, until: float, seen: Counter[str]) -> None:
    chunk = b"a" * 65536
    while time.monotonic() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = asyncio.ensure_future(_status_of(reader, seen))
        writer.write(f"POST {_TRACK} HTTP/1.1\r\nhost: x\r\nx-endless: ".encode())
        try:
            while not answer.done() and time.monotonic() < until:
                writer.write(chunk)
                seen["bytes"] += len(chunk)
                await writer.drain()
        except OSError:
            pass
        await asyncio.wait({answer}, timeout=1)
        writer.close()


async def _trickle(
    port: int, until: float, seen: Counter[str], head: bytes, byte: bytes, pause: float
) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            seen["connect_failed"] += 1
            await asyncio.sleep(pause)
            continue
        answer = asyncio.ensure_future(_status_of(reader, seen))
        try:
            writer.write(head)
            while not answer.done() and time.monotonic() < until:
                await asyncio.sleep(pause)
                writer.write(byte)
                await writer.drain()
        except OSError:
            pass
        await asyncio.wait({answer}, timeout=1)
        writer.close()


async def _idle(port: int, count: int, until: float, seen: Counter[str]) -> None:
    """Keep ``count`` idle connections open, reopening those the server closes."""

    async def one() -> None:
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                seen["connect_failed"] += 1
                await asyncio.sleep(0.05)
                continue
            seen["opened"] += 1
            try:
                await asyncio.wait_for(reader.read(64), max(0.01, until - time.monotonic()))
                seen["closed_by_server"] += 1
            except (TimeoutError, OSError):
                pass
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def _open_more(port: int, until: float, seen: Counter[str]) -> None:
    """Open connections over the ceiling, one after another, and see what the server does."""
    request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            data = await asyncio.wait_for(reader.read(64), 2)
            seen[f"over_cap_{data[9:12].decode() if data else 'closed'}"] += 1
            writer.close()
        except (OSError, TimeoutError):
            seen["over_cap_reset"] += 1


async def _big_body(port: int, until: float, seen: Counter[str]) -> None:
    chunk = b"0" * 65536
    size = 1 << 30
    while time.monotonic() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = asyncio.ensure_future(_status_of(reader, seen))
        head = f"POST {_TRACK} HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n"
        writer.write(head.encode())
        sent = 0
        try:
            while sent < size and time.monotonic() < until:
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
        except OSError:
            pass
        seen["bytes"] += sent
        await asyncio.wait({answer}, timeout=1)
        writer.close()


async def _flood(port: int, until: float, seen: Counter[str]) -> None:
    body = b'{"delivery_id":"x","event":"opened","timestamp":1764000000}'
    request = (
        f"POST /api/v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < until:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        seen[head[9:12].decode()] += 1
    writer.close()


async def _attack(name: str, port: int, seconds: float, idle: int, auth: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    until = time.monotonic() + seconds
    if name == "endless_header":
        jobs = [_endless_header(port, until, seen) for _ in range(4)]
    elif name == "slow_headers":
        head = f"POST {_TRACK} HTTP/1.1\r\n".encode()
        jobs = [_trickle(port, until, seen, head, b"x", 0.5) for _ in range(200)]
    elif name == "slow_body":
        head = (
            f"POST {_TRACK} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n"
            "content-length: 1000000\r\n\r\n"
        ).encode()
        jobs = [_trickle(port, until, seen, head, b"{", 0.2) for _ in range(200)]
    elif name == "idle_to_cap":
        jobs = [_idle(port, idle, until, seen)]
    elif name == "beyond_cap":
        more_from = time.monotonic() + 2.5  # after the legitimate clients connected
        jobs = [_idle(port, idle, until, seen)]
        jobs += [_after(more_from, _open_more(port, until, seen)) for _ in range(32)]
    elif name == "unauth_1gib":
        jobs = [_big_body(port, until, seen) for _ in range(2)]
    elif name == "open_flood":
        jobs = [_flood(port, until, seen) for _ in range(16)]
    else:
        raise SystemExit(f"unknown attack {name!r}")
    await asyncio.gather(*jobs, return_exceptions=True)
    return seen


async def _after(start: float, job: Any) -> None:
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    await job


async def _probe(port: int, seconds: float) -> Counter[str]:
    """``GET /healthz`` every 0.1 s on a new connection: how many got their 200."""
    seen: Counter[str] = Counter()
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        seen["tried"] += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(64), 1.0)
            seen["ok"] += data.startswith(b"HTTP/1.1 200 ")
            writer.close()
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    return seen


def main() -> None:
    if sys.argv[1] == "probe":  # probe PORT SECONDS
        seen = asyncio.run(_probe(int(sys.argv[2]), float(sys.argv[3])))
        print(json.dumps(dict(seen)))
        return
    name, port, seconds, idle, auth = sys.argv[1:6]
    if name not in ATTACKS:
        raise SystemExit(f"unknown attack {name!r}; one of {', '.join(ATTACKS)}")
    seen = asyncio.run(_attack(name, int(port), float(seconds), int(idle), auth))
    print(json.dumps(dict(seen)))


if __name__ == "__main__":
    main()
