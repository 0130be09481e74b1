"""Benchmark: the Pipelines contract on one core, beside Customer.io's rate limit and a floor.

Each request is a ``/v1/batch`` of 100 calls as the Python SDK sends them (its default
``upload_size``): identifies, tracks, pages, screens, groups and aliases with their context,
every tenth call invalid. Rows:

* **evaluate**: ``trackguard.contract.pipelines.evaluate`` plus ``outcome`` (the whole
  contract: key, decode, every call's checks, the answer), plain and gzipped;
* **decode floor**: ``msgspec`` decoding the same body and nothing else, the least any checker
  must do; its ratio is the contract's cost over the floor;
* **gzip bomb**: refusing a gzip body that would inflate to 64 MiB, beside inflating one
  legitimate request of nearly 500 KB: the bomb must cost about as much as that request (it
  is inflated up to the limit and no further), not 128 times more.

The *limit* column compares requests per second with Customer.io's documented soft limit of
3000 requests per 3 seconds per workspace (1000/s): how many workspaces at their limit one core
can check.

Run ``.venv/bin/python bench/pipelines.py [--calls 100] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys

import msgspec

from _common import (
    fmt_int,
    fmt_ratio,
    machine_info,
    measure_round_robin,
    peak_rss_mib,
    pin_to_one_core,
    render_table,
)
from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate, outcome

LIMIT_PER_SECOND = 3000 / 3
ROUNDS = 200
AUTH = ("authorization", "Basic " + base64.b64encode(b"bench-key:").decode())
CONTEXT = {"library": {"name": "analytics-python", "version": "1.1.0"}, "ip": "203.0.113.9"}


def _call(i: int) -> dict[str, object]:
    base = {
        "integrations": {},
        "anonymousId": None,
        "timestamp": f"2024-06-01T12:00:{i % 60:02d}.265+00:00",
        "context": CONTEXT,
        "userId": f"user-{i}",
        "messageId": f"b11376ae-1d80-4593-af67-{i:012d}",
    }
    kind = ("identify", "track", "track", "track", "page", "screen", "group", "alias")[i % 8]
    extra: dict[str, object] = {
        "identify": {"traits": {"email": f"u{i}@example.com", "plan": "pro"}},
        "track": {"event": "Order Completed", "properties": {"order_id": f"A-{i}", "total": 49.9}},
        "page": {"name": "Pricing", "properties": {"url": "https://shop.example.com/pricing"}},
        "screen": {"name": "Home", "properties": {"tab": "feed"}},
        "group": {"groupId": "acme", "traits": {"objectTypeId": "1", "name": "Acme"}},
        "alias": {"previousId": f"anon-{i}"},
    }[kind]
    call = {**base, "type": kind, **extra}
    if i % 10 == 9:
        call.pop("userId")  # every tenth call has no user
        call["anonymousId"] = None
    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per batch (default 100)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per row (default 7)")
    args = parser.parse_args()
    pinned = pin_to_one_core()
    body = json.dumps(
        {"batch": [_call(i) for i in range(args.calls)], "sentAt": "2024-06-01T12:00:01Z"}
    ).encode()
    zipped = gzip.compress(body)
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    calls = [_call(i) for i in range(1500)]
    while len(largest := json.dumps({"batch": calls}).encode()) > 500 * 1024:
        calls.pop()
    largest_zipped = gzip.compress(largest)
    requests = {
        "evaluate": Request(method="POST", path="/v1/batch", body=body, headers=(AUTH,)),
        "evaluate (gzip)": Request(
            method="POST", path="/v1/batch", body=zipped,
            headers=(AUTH, ("content-encoding", "gzip")),
        ),
        "gzip bomb refused": Request(
            method="POST", path="/v1/batch", body=bomb,
            headers=(AUTH, ("content-encoding", "gzip")),
        ),
    }  # fmt: skip
    first = evaluate(requests["evaluate"])
    assert len(first.calls) == args.calls - args.calls // 10, "the corpus changed"
    assert [e.code for e in evaluate(requests["gzip bomb refused"]).errors] == ["request_too_large"]
    decoder = msgspec.json.Decoder()

    def contract(request: Request) -> None:
        for _ in range(ROUNDS):
            result = evaluate(request)
            outcome(result, key_accepted=True)

    def floor() -> None:
        for _ in range(ROUNDS):
            decoder.decode(body)

    def inflate_real() -> None:
        for _ in range(ROUNDS):
            gzip.decompress(largest_zipped)

    runs = {name: (lambda r=r: contract(r)) for name, r in requests.items()}
    runs["decode floor"] = floor
    runs["gzip.decompress, 500 KB request"] = inflate_real
    timings = measure_round_robin(runs, dict.fromkeys(runs, ROUNDS), repeats=args.repeats)
    info = machine_info(pinned)
    print(f"machine: {info}")
    print(
        f"corpus: /v1/batch of {args.calls} calls, {len(body):,} bytes "
        f"({len(zipped):,} gzipped); bomb {len(bomb):,} bytes -> 64 MiB; "
        f"largest request {len(largest):,} bytes ({len(largest_zipped):,} gzipped)"
    )
    rows = []
    floor_rate = timings["decode floor"].per_second
    real_inflate = timings["gzip.decompress, 500 KB request"].per_second
    for name, timing in timings.items():
        rate = timing.per_second
        calls = fmt_int(rate * args.calls) if name.startswith(("evaluate", "decode")) else "-"
        vs_floor = fmt_ratio(floor_rate / rate) if name.startswith("evaluate") else "-"
        vs_real = fmt_ratio(real_inflate / rate) if name == "gzip bomb refused" else "-"
        rows.append(
            [name, fmt_int(rate), calls, f"{timing.us_per_item:,.0f}",
             fmt_ratio(rate / LIMIT_PER_SECOND), vs_floor, vs_real]
        )  # fmt: skip
    print(
        render_table(
            ["row", "requests/s", "calls/s", "us/request", "x limit", "x floor cost",
             "x 500 KB inflate cost"],
            rows,
        )
    )  # fmt: skip
    print(f"limit: Customer.io's soft 3000 requests / 3 s = {fmt_int(LIMIT_PER_SECOND)}/s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
