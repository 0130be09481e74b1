"""A small request's latency while 500 KB v2 batches arrive: the batch checked on the event loop
beside the batch checked on a worker thread (the gateway's default above 64 KiB).

The gateway (no plan, durable commits, no delivery) runs in this process on a server thread;
one client sends ~500 KB batches back to back while another sends small identifies one after
the other and times each. Rows: no batches (the floor), batches checked on the loop
(``check_in_thread`` set past any body), batches checked on a worker thread. Medians of
``--repeats`` runs; the ratio compares each row's p99 with the floor's.

    .venv/bin/python bench/big_batch.py [--small 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import msgspec

from _common import fmt_ratio, machine_info, render_table
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import start_in_thread

AUTH = ("bench-site", "bench-key")


def _batch() -> bytes:
    items = [
        {
            "type": "person",
            "identifiers": {"id": str(i)},
            "action": "event",
            "name": "product_viewed",
            "attributes": {"product_id": f"p-{i}", "price": 19.9, "currency": "USD"},
        }
        for i in range(3200)
    ]
    return msgspec.json.encode({"batch": items})


def _run(folder: Path, small: int, big: bytes | None, in_thread: bool) -> list[float]:
    """Latencies (ms) of ``small`` identifies, with batches sent meanwhile when ``big``."""
    options = GatewayOptions(plan=None, db=folder / "tg.db", deliver=False, identity_refresh=0)
    app = create_gateway(options, AuthConfig(upstream=Credentials(*AUTH)))
    if not in_thread:
        app.parts.check_in_thread = 1 << 40
    stop = threading.Event()
    batches = [0]
    with start_in_thread(app) as server:

        def flood() -> None:
            with httpx.Client(base_url=server.url, auth=AUTH, timeout=60) as client:
                while not stop.is_set():
                    answer = client.post("/api/v2/batch", content=big)
                    if answer.status_code != 200:
                        raise SystemExit(f"batch answered {answer.status_code}: {answer.text}")
                    batches[0] += 1

        thread = threading.Thread(target=flood) if big is not None else None
        if thread is not None:
            thread.start()
            while batches[0] == 0:
                time.sleep(0.01)
        latencies = []
        with httpx.Client(base_url=server.url, auth=AUTH, timeout=60) as client:
            for i in range(small):
                start = time.perf_counter()
                assert client.put(f"/api/v1/customers/{i}", json={"n": i}).status_code == 200
                latencies.append((time.perf_counter() - start) * 1000)
        stop.set()
        if thread is not None:
            thread.join()
    for path in folder.iterdir():
        path.unlink()
    return latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    big = _batch()
    print(machine_info(None))
    print(f"batch body: {len(big):,} bytes; small requests per run: {args.small}")
    rows: list[list[str]] = []
    floor_p99 = 0.0
    for label, body, in_thread in (
        ("no batches (floor)", None, True),
        ("batches checked on the event loop", big, False),
        ("batches checked on a worker thread", big, True),
    ):
        p50s, p99s, maxes = [], [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                lat = _run(Path(folder), args.small, body, in_thread)
            p50s.append(_p(lat, 0.5))
            p99s.append(_p(lat, 0.99))
            maxes.append(max(lat))
        p99 = statistics.median(p99s)
        floor_p99 = floor_p99 or p99
        rows.append(
            [
                label,
                f"{statistics.median(p50s):.1f}",
                f"{p99:.1f}",
                f"{statistics.median(maxes):.1f}",
                fmt_ratio(p99 / floor_p99),
            ]
        )
    print(
        render_table(
            ["small request while batches arrive", "p50 ms", "p99 ms", "max ms", "p99 / floor"],
            rows,
            "lrrrr",
        )
    )


if __name__ == "__main__":
    main()
