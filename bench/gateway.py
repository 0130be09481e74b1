"""Gateway benchmark: requests/s and latency on one core with durable commits, beside the
do-nothing ASGI app on the same server (the HTTP limit), for uvicorn and granian; then the
delivered events per upstream request under load, and the gateway's memory; and the Pipelines
API door (``/v1/batch`` of 20 calls a request) in calls per second beside the Track API's
operations per second.

The server process is pinned to CPU 0 and the load generator to CPU 1 (``os.sched_setaffinity``),
both on loopback. Each figure is the median of ``--repeats`` runs; servers compared in a
ratio are all up at once and measured in turns (a, b, a, b, ...), so noise hits them alike.
Not a test: run it with ``make bench`` or ``.venv/bin/python bench/gateway.py``.

Targets (issue 3): >= 5,000 requests/s on one core, >= 50% of the do-nothing app,
p99 <= 25 ms at half of peak load, >= 100 events per upstream batch under load, gateway
memory under 150 MB. Issue 13: the gateway's requests per CPU second of the server >= 25% of
the do-nothing app's, judged with ``synchronous=FULL`` (an fsync per group commit) and
printed with NORMAL too (``trackguard serve``'s default), measured in the same turns.

With ``--pg-url postgresql://user@host/db`` the gateway also runs on PostgreSQL beside SQLite
(``--stores-only``: only that): requests/s, requests/s per busy core (the gateway's CPU plus
its PostgreSQL backends'), p99 at peak and at half of peak. Targets (issue 13): PostgreSQL
>= 50% of SQLite's requests/s, p99 <= 25 ms at half load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apps import API_KEY, SITE_ID, WRITE_KEY
from _common import machine_info
from _loadgen import LoadResult, at_rate, build_request, peak
from trackguard.check.samples import d2c_traffic

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "examples" / "d2c-plan.yaml"
BENCH = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _command(server: str, factory: str, port: int) -> list[str]:
    if server == "trackguard":  # what `trackguard serve` runs: uvicorn with the limits' guard
        serve = "import sys, _apps; _apps.serve(sys.argv[1], int(sys.argv[2]))"
        return [sys.executable, "-c", serve, factory, str(port)]
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"_apps:{factory}",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        f"_apps:{factory}",
        "--working-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


class Server:
    """A server process pinned to CPU 0."""

    def __init__(self, server: str, factory: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        # This checkout's src first: the venv's own trackguard may be another checkout's.
        path = os.pathsep.join([str(BENCH), str(REPO / "src")])
        full_env = {**os.environ, **env, "PYTHONPATH": path}
        # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe
        # would block the server at its next log line (dedupe conflicts under load log one each).
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's lifetime
        self.proc = subprocess.Popen(
            _command(server, factory, self.port),
            env=full_env,
            preexec_fn=lambda: _pin(0),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    self.log.seek(0)
                    raise RuntimeError(self.log.read().decode()) from None
                time.sleep(0.05)
        time.sleep(0.3)

    def rss_peak_mib(self) -> float:
        """Peak resident memory of the server and its children (granian forks a worker)."""
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        peak_kib = 0
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            m = re.search(r"VmHWM:\s+(\d+) kB", status)
            peak_kib = max(peak_kib, int(m.group(1)) if m else 0)
        return peak_kib / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _requests(n: int) -> list[bytes]:
    """``n`` distinct requests of the D2C sample (the sample's own SDK retries stay in)."""
    out = []
    for record in d2c_traffic(n, seed=3):
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        out.append(build_request(record["method"], record["path"], raw, (SITE_ID, API_KEY)))
    return out


#: Calls in each Pipelines request (the Node SDK's default batch is 15, Python's 100).
PIPELINES_BATCH = 20


def _pipelines_requests(n: int = 4_000) -> list[bytes]:
    """``/v1/batch`` requests of ``PIPELINES_BATCH`` calls as the SDKs send them: the D2C
    sample's events and identifies as track and identify calls, every messageId distinct."""
    calls: list[dict[str, Any]] = []
    at = "2024-06-01T12:00:00.123+00:00"
    context = {"library": {"name": "analytics-python", "version": "1.1.0"}}
    for record in d2c_traffic(n * PIPELINES_BATCH, seed=5):
        body = record["body"]
        if not isinstance(body, dict) or len(calls) >= n * PIPELINES_BATCH:
            continue
        path = record["path"].rsplit("/", 1)[-1]
        call: dict[str, Any] = {
            "messageId": f"bench-{len(calls)}",
            "timestamp": at,
            "context": context,
            "userId": f"cust-{len(calls) % 5000}",
        }
        if path == "events" and isinstance(body.get("name"), str):
            call.update(type="track", event=body["name"], properties=body.get("data") or {})
        else:
            traits = {k: v for k, v in body.items() if isinstance(k, str) and k != "id"}
            call.update(type="identify", traits=traits)
        calls.append(call)
    return [
        build_request("POST", "/v1/batch",
                      json.dumps({"batch": calls[i : i + PIPELINES_BATCH]}).encode(),
                      (WRITE_KEY, ""))
        for i in range(0, len(calls) - PIPELINES_BATCH + 1, PIPELINES_BATCH)
    ]  # fmt: skip


def _pipelines(args: argparse.Namespace, track: dict[str, Any]) -> dict[str, Any]:
    """Peak Pipelines calls per second on the first server, beside its Track API figure."""
    requests = _pipelines_requests()
    with tempfile.TemporaryDirectory() as tmp:
        gw = Server(args.servers[0], "gateway", {"TG_BENCH_DB": f"{tmp}/tg.db",
                                                 "TG_BENCH_PLAN": str(PLAN)})  # fmt: skip
        try:
            runs = [
                peak(gw.port, lambda n: requests[n % len(requests)],
                     connections=args.connections, seconds=args.seconds)
                for _ in range(args.repeats)
            ]  # fmt: skip
        finally:
            gw.stop()
    rps = _median(runs, "rps")
    return {
        "server": args.servers[0],
        "batch": PIPELINES_BATCH,
        "rps": rps,
        "calls_per_s": rps * PIPELINES_BATCH,
        "p99_ms": _median(runs, "p99_ms"),
        "statuses": runs[-1].statuses,
        "track_rps": track["gateway_rps"],
    }


class Fresh:
    """``make`` for runs against a gateway: each run goes on where the previous one stopped, so
    no run sends what an earlier run sent. Sent again, a request is a duplicate the gateway
    answers from its dedupe claims without writing an outbox row or a claim: a cheaper request
    than new traffic, which would flatter every run after the first. Past the end of the pool
    requests repeat, and :attr:`repeated` counts them (the report says so)."""

    def __init__(self, pool: list[bytes]) -> None:
        self.pool = pool
        self.start = 0  # the first request of the current run
        self.end = 0  # one past the furthest request handed out
        self.repeated = 0

    def __call__(self, n: int) -> bytes:
        if n == 0:  # the load generator counts each run from 0
            self.start = self.end
        i = self.start + n
        if i >= self.end:
            self.end = i + 1
            if i >= len(self.pool):
                self.repeated += 1
        return self.pool[i % len(self.pool)]


def _median(results: list[LoadResult], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in results)


def run(args: argparse.Namespace) -> dict[str, Any]:
    _pin(1)
    make = Fresh(_requests(args.pool))
    report: dict[str, Any] = {"machine": machine_info(1), "servers": {}}
    _rows(args, make, report)
    report["pool"] = len(make.pool)
    report["repeated_requests"] = make.repeated
    return report


def _rows(args: argparse.Namespace, make: Fresh, report: dict[str, Any]) -> None:
    """The rows ``args`` asks for, into ``report``, the targets' rows first (the pool runs out
    last for them); ``report["repeated_by_row"]`` says which rows sent requests again."""
    repeated = report["repeated_by_row"] = {}

    def row(name: str, measure: Any, *params: Any) -> Any:
        before = make.repeated
        result = measure(args, *params)
        if make.repeated > before:
            repeated[name] = make.repeated - before
        return result

    if args.only_workers:
        report["workers"] = row("workers", _workers, make)
        return
    for server in [] if args.stores_only else args.servers:
        report["servers"][server] = row(server, _server_row, server, make)
    if args.stores_only or (args.pg_url and not args.pipelines_only):
        report["stores"] = row("stores", _stores, make)
    if args.stores_only:
        return
    report["pipelines"] = _pipelines(args, report["servers"][args.servers[0]])
    if args.pipelines_only:
        return
    report["state_cost"] = row("identity + dedupe", _state_cost, make)
    report["delivery"] = row("delivery", _delivery, make)
    if args.workers:
        report["workers"] = row("workers", _workers, make)


def _in_turns(servers: list[Server], run: Any, repeats: int) -> list[list[LoadResult]]:
    """``run(server)`` ``repeats`` times for each server, taking turns (a, b, a, b, ...), so a
    noisy neighbour on this shared machine slows every server alike and their ratio holds."""
    results: list[list[LoadResult]] = [[] for _ in servers]
    for _ in range(repeats):
        for i, server in enumerate(servers):
            results[i].append(run(server))
    return results


def _server_row(args: argparse.Namespace, server: str, make: Fresh) -> dict[str, Any]:
    """The do-nothing app and the gateway on one server, all up, measured in turns: the
    gateway with ``synchronous=FULL`` (an fsync per group commit: survives power loss), and
    with NORMAL (``trackguard serve``'s default: survives a crash of the process)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"TG_BENCH_DB": f"{tmp}/tg.db", "TG_BENCH_PLAN": str(PLAN)}
        normal_env = {**env, "TG_BENCH_DB": f"{tmp}/normal.db", "TG_BENCH_SYNC": "NORMAL"}
        started: list[Server] = []
        try:
            for factory, server_env in (("noop", {}), ("gateway", env), ("gateway", normal_env)):
                started.append(Server(server, factory, server_env))
            return _measure_server(args, make, *started)
        finally:
            for srv in reversed(started):
                srv.stop()


def _measure_server(
    args: argparse.Namespace, make: Fresh, noop: Server, gw: Server, normal: Server
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    cores: dict[int, list[float]] = {srv.proc.pid: [] for srv in (noop, gw, normal)}
    pool = make.pool

    def measure(srv: Server) -> LoadResult:
        before = _cpu_seconds(srv.proc.pid)
        # The do-nothing app reads nothing: it needs no fresh requests.
        sends = make if srv is not noop else lambda n: pool[n % len(pool)]
        result = peak(srv.port, sends, connections=args.connections, seconds=args.seconds)
        busy = _cpu_seconds(srv.proc.pid) - before
        cores[srv.proc.pid].append(result.requests / busy if busy else float("nan"))
        return result

    noop_runs, runs, normal_runs = _in_turns([noop, gw, normal], measure, args.repeats)
    row["noop_rps"] = _median(noop_runs, "rps")
    # Requests per CPU second each server used: what the other processes on this
    # shared machine leave a server does not move this ratio, only its own cost does.
    row["noop_per_core"] = statistics.median(cores[noop.proc.pid])
    row["gateway_per_core"] = statistics.median(cores[gw.proc.pid])
    row["normal_per_core"] = statistics.median(cores[normal.proc.pid])
    row["normal_rps"] = _median(normal_runs, "rps")
    row["gateway_rps"] = _median(runs, "rps")
    row["gateway_p50_ms"] = _median(runs, "p50_ms")
    row["gateway_p99_ms"] = _median(runs, "p99_ms")
    row["statuses"] = runs[-1].statuses
    half = row["gateway_rps"] / 2
    runs = [at_rate(gw.port, make, rate=half, seconds=args.seconds) for _ in range(args.repeats)]
    row["half_rate"] = half
    row["half_p50_ms"] = _median(runs, "p50_ms")
    row["half_p99_ms"] = _median(runs, "p99_ms")
    row["gateway_rss_mib"] = gw.rss_peak_mib()
    return row


def _backends(url: str, application: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def _stores(args: argparse.Namespace, make: Any) -> dict[str, Any]:
    """The gateway (first server, example plan, durable commits, no delivery) on a SQLite file
    and on PostgreSQL: peak requests/s, requests/s per busy core (the gateway's CPU seconds
    plus, for PostgreSQL, its backends' CPU seconds), and latency at half of each one's peak."""
    import uuid

    import psycopg

    server = args.servers[0]
    out: dict[str, Any] = {}
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    application = f"tg-bench-{schema}"
    sep = "&" if "?" in args.pg_url else "?"
    pg = f"{args.pg_url}{sep}schema={schema}&application_name={application}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            labels = {"SQLite": f"{tmp}/tg.db", "PostgreSQL": pg}
            servers: dict[str, Server] = {}
            try:
                for label, db in labels.items():
                    env = {"TG_BENCH_DB": db, "TG_BENCH_PLAN": str(PLAN)}
                    servers[label] = Server(server, "gateway", env)
                runs: dict[str, list[LoadResult]] = {label: [] for label in labels}
                cores: dict[str, list[float]] = {label: [] for label in labels}
                for _ in range(args.repeats):  # in turns: SQLite, PostgreSQL, SQLite, ...
                    for label, gw in servers.items():
                        pids = [gw.proc.pid]
                        if label == "PostgreSQL":
                            pids += _backends(args.pg_url, application)
                        before = sum(_cpu_seconds(p) for p in pids)
                        result = peak(
                            gw.port, make, connections=args.connections, seconds=args.seconds
                        )
                        busy = sum(_cpu_seconds(p) for p in pids) - before
                        runs[label].append(result)
                        cores[label].append(result.requests / busy if busy else float("nan"))
                for label in servers:
                    row: dict[str, Any] = {
                        "rps": _median(runs[label], "rps"),
                        "rps_per_busy_core": statistics.median(cores[label]),
                        "p99_ms": _median(runs[label], "p99_ms"),
                        "errors": sum(r.errors for r in runs[label]),
                    }
                    out[label] = row
                for _ in range(args.repeats):  # half of each one's peak, in turns too
                    for label, gw in servers.items():
                        rate = out[label]["rps"] / 2
                        result = at_rate(gw.port, make, rate=rate, seconds=args.seconds)
                        out[label].setdefault("half", []).append(result)
                for label in servers:
                    out[label]["half_p99_ms"] = _median(out[label].pop("half"), "p99_ms")
            finally:
                for gw in servers.values():
                    gw.stop()
    finally:
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return out


def _state_cost(args: argparse.Namespace, make: Any) -> dict[str, Any]:
    """Peak req/s with and without identity state and dedupe claims, on the first server."""
    out: dict[str, Any] = {}
    for label, env in (("stateless", {"TG_BENCH_STATELESS": "1"}), ("full", {})):
        with tempfile.TemporaryDirectory() as tmp:
            gw = Server(
                args.servers[0],
                "gateway",
                {"TG_BENCH_DB": f"{tmp}/tg.db", "TG_BENCH_PLAN": str(PLAN), **env},
            )
            try:
                runs = [
                    peak(gw.port, make, connections=args.connections, seconds=args.seconds)
                    for _ in range(args.repeats)
                ]
            finally:
                gw.stop()
        out[label] = _median(runs, "rps")
    out["cost_us"] = 1e6 / out["full"] - 1e6 / out["stateless"]
    out["share"] = out["cost_us"] / (1e6 / out["full"])
    return out


def _delivery(args: argparse.Namespace, make: Any) -> dict[str, Any]:
    """Items per upstream request with delivery on, under a steady load."""
    emu_port = _free_port()
    env = {**os.environ, "TRACKGUARD_SITE_ID": SITE_ID, "TRACKGUARD_API_KEY": API_KEY}
    emu = subprocess.Popen(
        [sys.executable, "-m", "trackguard", "emulate", "--listen", f"127.0.0.1:{emu_port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _pin(1),
    )
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            gw_env = {
                "TG_BENCH_DB": f"{tmp}/tg.db",
                "TG_BENCH_PLAN": str(PLAN),
                "TG_BENCH_UPSTREAM": f"http://127.0.0.1:{emu_port}",
                "TG_BENCH_RATE": str(args.upstream_rate),
            }
            gw = Server(args.servers[0], "gateway", gw_env)
            try:
                load = at_rate(gw.port, make, rate=args.delivery_load, seconds=args.seconds)
                deadline = time.monotonic() + 60
                metrics = ""
                while time.monotonic() < deadline:
                    metrics = httpx.get(f"http://127.0.0.1:{gw.port}/metrics").text
                    if 'trackguard_outbox_rows{state="pending"} 0.0' in metrics:
                        break
                    time.sleep(0.2)
                emu_stats = httpx.get(f"http://127.0.0.1:{emu_port}/_emulator/stats").json()
            finally:
                gw.stop()
    finally:
        emu.terminate()
        emu.wait()

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", metrics, re.M)
        return float(m.group(1)) if m else float("nan")

    requests = value("trackguard_upstream_items_per_request_count")
    items = value("trackguard_upstream_items_per_request_sum")
    return {
        "load_rps": args.delivery_load,
        "load_seconds": args.seconds,
        "requests_accepted": load.statuses.get(200, 0),
        "upstream_requests": requests,
        "items_delivered": items,
        "items_per_request": items / requests if requests else float("nan"),
        "upstream_rate_limit": args.upstream_rate,
        "emulator_max_requests_in_1s": emu_stats.get("max_per_second"),
    }


def _print_stores(stores: dict[str, Any]) -> None:
    print(
        f"{'store':<11} {'req/s':>7} {'req/s per busy core':>20} {'p99 ms':>7}"
        f" {'p99 ms @half':>13} {'errors':>7} {'vs SQLite':>10}"
    )
    base = stores["SQLite"]
    for label, r in stores.items():
        print(
            f"{label:<11} {r['rps']:>7,.0f} {r['rps_per_busy_core']:>20,.0f} {r['p99_ms']:>7.2f}"
            f" {r['half_p99_ms']:>13.2f} {r['errors']:>7} {r['rps'] / base['rps']:>10.0%}"
        )
    pg = stores["PostgreSQL"]
    checks = [
        ("PostgreSQL >= 50% of SQLite req/s", pg["rps"] >= base["rps"] / 2),
        ("PostgreSQL p99 <= 25 ms at half load", pg["half_p99_ms"] <= 25),
    ]
    for label, ok in checks:
        print(f"target {label}: {'PASS' if ok else 'FAIL'}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (the supervised workers)."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue  # it ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo += [int(c) for c in children]
    return total


class Serve:
    """``trackguard serve --workers N`` itself (no delivery), unpinned: N may use both cores."""

    def __init__(self, workers: int, db: str) -> None:
        self.port, self.admin = _free_port(), _free_port()
        env = {**os.environ, "TRACKGUARD_SITE_ID": SITE_ID, "TRACKGUARD_API_KEY": API_KEY}
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "trackguard", "serve", "--workers", str(workers)),
                *("--plan", str(PLAN), "--db", db, "--no-deliver"),
                *(
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--admin-listen",
                    f"127.0.0.1:{self.admin}",
                ),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.admin}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0.3)  # every worker up, not only the first

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _workers(args: argparse.Namespace, make: Any) -> list[dict[str, Any]]:
    """Peak req/s of ``serve --workers N`` and the server's CPU time: the load generator
    shares the machine's cores, so req/s per busy server core is the comparable figure."""
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))  # the servers are unpinned too
    rows = []
    for n in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            srv = Serve(n, f"{tmp}/tg.db")
            try:
                runs, cores = [], []
                for _ in range(args.repeats):
                    cpu = _cpu_seconds(srv.proc.pid)
                    result = peak(
                        srv.port, make, connections=args.connections, seconds=args.seconds
                    )
                    cores.append((_cpu_seconds(srv.proc.pid) - cpu) / result.seconds)
                    runs.append(result)
                url = f"http://127.0.0.1:{srv.admin}/metrics"
                families = text_string_to_metric_families(httpx.get(url).text)
                totals, served = {}, []
                for f in families:
                    totals[f.name] = sum(x.value for x in f.samples)
                    if f.name == "trackguard_worker_requests":
                        served = [x.value for x in f.samples]
                scrapes = []
                with httpx.Client() as client:
                    for _ in range(20):
                        started = time.perf_counter()
                        client.get(url).raise_for_status()
                        scrapes.append(time.perf_counter() - started)
            finally:
                srv.stop()
        rps = _median(runs, "rps")
        busy = statistics.median(cores)
        rows.append(
            {
                "workers": n,
                "rps": rps,
                "p99_ms": _median(runs, "p99_ms"),
                "server_cores": busy,
                "rps_per_core": rps / busy if busy else float("nan"),
                "scrape_ms": 1000 * statistics.median(scrapes),
                "requests_per_commit": totals["trackguard_requests"] / totals["trackguard_commits"],
                "busiest_share": max(served) / sum(served) if sum(served) else 1.0,
            }
        )
    return rows


def _print_workers(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'serve':<12} {'req/s':>8} {'p99 ms':>7} {'server cores':>13} {'req/s per core':>15} "
        f"{'vs 1':>5} {'req/commit':>11} {'busiest':>8} {'scrape ms':>10}"
    )
    print(header)
    print("-" * len(header))
    base = rows[0]["rps_per_core"]
    for r in rows:
        print(
            f"{'--workers ' + str(r['workers']):<12} {r['rps']:>8,.0f} {r['p99_ms']:>7.2f} "
            f"{r['server_cores']:>13.2f} {r['rps_per_core']:>15,.0f} "
            f"{r['rps_per_core'] / base:>5.0%} {r['requests_per_commit']:>11.1f} "
            f"{r['busiest_share']:>8.0%} "
            f"{r['scrape_ms']:>10.2f}"
        )


def _print(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"trackguard gateway benchmark — {m.get('cpu_model')} — {m.get('nproc')} cores — "
        f"Python {m.get('python')}, {m.get('core')}; server pinned to CPU 0, load generator"
        " to CPU 1"
    )
    print()
    if "stores" in report:
        _print_stores(report["stores"])
        print()
    if not report["servers"]:
        return
    header = (
        f"{'server':<9} {'noop req/s':>11} {'gateway req/s':>14} {'ratio':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'@half req/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for server, r in report["servers"].items():
        print(
            f"{server:<9} {r['noop_rps']:>11,.0f} {r['gateway_rps']:>14,.0f} "
            f"{r['gateway_rps'] / r['noop_rps']:>6.0%} {r['gateway_p50_ms']:>7.2f} "
            f"{r['gateway_p99_ms']:>7.2f} {r['half_rate']:>12,.0f} {r['half_p50_ms']:>7.2f} "
            f"{r['half_p99_ms']:>7.2f} {r['gateway_rss_mib']:>8.1f}"
        )
    for server, r in report["servers"].items():
        print(
            f"{server}: per busy server core (requests per CPU second of the server): noop "
            f"{r['noop_per_core']:,.0f}, gateway {r['gateway_per_core']:,.0f} = "
            f"{r['gateway_per_core'] / r['noop_per_core']:.0%} with synchronous=FULL, "
            f"{r['normal_per_core']:,.0f} = {r['normal_per_core'] / r['noop_per_core']:.0%} "
            f"with NORMAL (serve's default; {r['normal_rps']:,.0f} req/s)"
        )
    p = report.get("pipelines")
    if p is None:
        return
    print()
    print(
        f"Pipelines API ({p['server']}, /v1/batch of {p['batch']} calls): {p['rps']:,.0f} req/s "
        f"= {p['calls_per_s']:,.0f} calls/s, p99 {p['p99_ms']:.2f} ms; Track API "
        f"{p['track_rps']:,.0f} req/s (one operation or batch each): "
        f"{p['calls_per_s'] / p['track_rps']:.1f}x; statuses {p['statuses']}"
    )
    if "state_cost" not in report:
        return
    c = report["state_cost"]
    print()
    print(
        f"identity + dedupe (state lookups, claims, learning): {c['full']:,.0f} req/s with, "
        f"{c['stateless']:,.0f} without: {c['cost_us']:.1f} µs a request = "
        f"{c['share']:.0%} of the request time"
    )
    d = report["delivery"]
    print()
    print(
        f"delivery under load ({d['load_rps']:.0f} req/s for {d['load_seconds']:.0f} s, "
        f"upstream limit {d['upstream_rate_limit']:.0f} req/s): "
        f"{d['items_delivered']:.0f} operations in {d['upstream_requests']:.0f} upstream "
        f"requests = {d['items_per_request']:.1f} per request; emulator saw at most "
        f"{d['emulator_max_requests_in_1s']} requests in any second"
    )
    print()
    best = max(report["servers"].values(), key=lambda r: r["gateway_rps"])
    checks = [
        (">= 5,000 req/s on one core", best["gateway_rps"] >= 5000),
        (">= 50% of the do-nothing app", best["gateway_rps"] >= 0.5 * best["noop_rps"]),
        ("p99 <= 25 ms at half of peak", best["half_p99_ms"] <= 25),
        (">= 100 events per upstream batch", d["items_per_request"] >= 100),
        ("gateway memory < 150 MB", best["gateway_rss_mib"] < 150),
        ("identity + dedupe < 20% of the request", c["share"] < 0.2),
        (
            ">= 25% of the do-nothing app per busy core, synchronous=FULL (issue 13)",
            best["gateway_per_core"] >= 0.25 * best["noop_per_core"],
        ),
        (
            ">= 25% of the do-nothing app per busy core, NORMAL, serve's default (issue 13)",
            best["normal_per_core"] >= 0.25 * best["noop_per_core"],
        ),
    ]
    for label, ok in checks:
        print(f"target {label}: {'PASS' if ok else 'FAIL'}")
    if report.get("workers"):
        print()
        print("serve --workers N (unpinned; the load generator shares the cores):")
        _print_workers(report["workers"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", nargs="+", default=["uvicorn", "trackguard", "granian"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--pool",
        type=int,
        default=600_000,
        help="Distinct requests made up front: gateway runs take them in turn, none twice.",
    )
    parser.add_argument("--delivery-load", type=float, default=2000.0)
    parser.add_argument("--upstream-rate", type=float, default=100.0)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="serve --workers rows (none: skip them).",
    )
    parser.add_argument("--only-workers", action="store_true", help="Only the --workers rows.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument(
        "--pipelines-only",
        action="store_true",
        help="Only the peak rows and the Pipelines row (no state cost, no delivery).",
    )
    parser.add_argument(
        "--pg-url",
        default="",
        help="Also run the gateway on PostgreSQL (in a schema of its own) beside SQLite.",
    )
    parser.add_argument(
        "--stores-only", action="store_true", help="Only the SQLite/PostgreSQL comparison."
    )
    args = parser.parse_args()
    if args.pool < 1:
        raise SystemExit("Error: --pool must be at least 1")
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.only_workers:
        _print_workers(report["workers"])
    else:
        _print(report)
    if not args.json:
        print()
        print(
            f"requests: the gateways took a pool of {report['pool']:,} distinct requests in turn"
            f" (--pool); sent again past its end: {report['repeated_requests']:,}"
        )
        if report.get("repeated_by_row"):
            rows = ", ".join(f"{k} {v:,}" for k, v in report["repeated_by_row"].items())
            print(
                f"  by row: {rows} (requests sent again are duplicates the gateway answers from"
                " its claims, cheaper than new traffic: a larger --pool keeps those rows new)"
            )


if __name__ == "__main__":
    main()
