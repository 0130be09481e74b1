"""Abuse benchmark: the latency of legitimate traffic while one client attacks the gateway,
beside the same traffic with no attack.

The gateway runs as ``trackguard serve`` runs it (``trackguard.http.runner.run``: uvicorn,
httptools, uvloop and the connection limits), with an admin listener, in its own process
pinned to CPU 0. The legitimate traffic (an open-loop schedule over keep-alive connections,
latency measured from each request's scheduled time) runs in this process, and each attack in
a separate process, both pinned to CPU 1, over loopback. Every phase is bounded in time and
the benchmark stops by itself. Not a test: run it with ``.venv/bin/python bench/abuse.py``.

Target (issue 11): under every attack, p99 of legitimate traffic <= 2x its quiet p99 and
never above 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apps import API_KEY, SITE_ID
from _attacks import ATTACKS
from _common import machine_info, package_version
from _loadgen import LoadResult, at_rate
from gateway import PLAN, Server, _free_port, _pin, _requests

BENCH = Path(__file__).resolve().parent
_AUTH = "Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
_TRACK = "/api/v1/customers/attacker/events"
_TRIPS = r'^trackguard_connection_limit_trips_total\{limit="(\w+)"\} (\S+)$'


class Gateway(Server):
    """``trackguard serve``'s server and limits around the bench gateway, with an admin port."""

    def __init__(self, tmp: str, max_connections: int, refuse: str, protocol: str) -> None:
        self.admin_port = _free_port()
        env = {
            "TG_BENCH_DB": f"{tmp}/tg.db",
            "TG_BENCH_PLAN": str(PLAN),
            "TG_BENCH_SYNC": "NORMAL",
            "TG_BENCH_ADMIN_PORT": str(self.admin_port),
            "TG_BENCH_MAX_CONNECTIONS": str(max_connections),
            "TG_BENCH_REFUSE": refuse,
            "TG_BENCH_PROTOCOL": protocol,
        }
        super().__init__("trackguard", "gateway", env)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def trips(self) -> dict[str, float]:
        """The limit trips so far; none when the gateway does not answer within 5 s (a
        server without the limits can be that stalled)."""
        try:
            text = httpx.get(f"{self.admin}/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        found = re.findall(_TRIPS, text, re.M)
        return {name: float(value) for name, value in found}

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the gateway process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_lines(self) -> int:
        """Lines the gateway wrote to stderr, read once it stopped."""
        assert self.proc.stderr is not None
        return len(self.proc.stderr.read().splitlines())


def _attacker_cpu() -> None:
    """The attacker shares CPU 1 with the legitimate clients, at the lowest priority, so the
    latency measured is the server's, not the attacker's CPU taking turns with the client's."""
    _pin(1)
    os.nice(19)


def _side(args: list[str]) -> subprocess.Popen[bytes]:
    """An attacker or probe process (``_attacks.py``) on CPU 1 at the lowest priority."""
    return subprocess.Popen(
        [sys.executable, str(BENCH / "_attacks.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_attacker_cpu,
    )


def _result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, int]:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out or b"{}")  # type: ignore[no-any-return]


def _phase(gw: Gateway, attack: str | None, args: argparse.Namespace, make: Any) -> dict[str, Any]:
    """Legitimate traffic for ``args.seconds``, with ``attack`` running from 1 s before, and
    health probes on the admin and the public port meanwhile."""
    legit_connections = 16
    attacker = None
    if attack is not None:
        idle = max(1, args.max_connections - legit_connections - 8)
        attacker = _side([attack, str(gw.port), str(args.seconds + 3), str(idle), _AUTH])
        time.sleep(1.0)  # its start-up (imports, first connections) is not the attack
    before, cpu_before = gw.trips(), gw.cpu_seconds()
    probes = [
        _side(["probe", str(port), str(args.seconds - 0.5)]) for port in (gw.admin_port, gw.port)
    ]
    start = time.perf_counter()
    load: LoadResult = at_rate(
        gw.port, make, rate=args.rate, seconds=args.seconds, connections=legit_connections
    )
    cpu = (gw.cpu_seconds() - cpu_before) / (time.perf_counter() - start)
    after = gw.trips()
    admin, public = (_result(p, 30) for p in probes)
    return {
        "attack": attack or "none",
        "requests": load.requests,
        "errors": load.errors,
        "statuses": load.statuses,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "max_ms": 1000 * max(load.latencies) if load.latencies else float("nan"),
        "server_cpu": cpu,
        "trips": {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)},
        "attacker_saw": {} if attacker is None else _result(attacker, args.seconds + 30),
        "admin_health": (admin.get("ok", 0), admin.get("tried", 0)),
        "public_health": (public.get("ok", 0), public.get("tried", 0)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    _pin(1)
    requests = _requests(80_000)

    def make(n: int) -> bytes:
        return requests[n % len(requests)]

    report: dict[str, Any] = {
        "machine": machine_info(1),
        "versions": {p: package_version(p) for p in ("uvicorn", "httptools", "uvloop")},
        "rate": args.rate,
        "seconds": args.seconds,
        "max_connections": args.max_connections,
        "refuse": args.refuse,
        "protocol": args.protocol,
        "repeats": args.repeats,
        "phases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(tmp, args.max_connections, args.refuse, args.protocol)
        try:
            for _ in range(args.repeats):  # in turns, so a busy spell hits every attack
                for attack in [None, *args.attacks]:
                    report["phases"].append(_phase(gw, attack, args, make))
            report["quiet_after"] = _phase(gw, None, args, make)
            report["rss_mib"] = gw.rss_peak_mib()
        finally:
            gw.proc.terminate()
            gw.proc.wait(timeout=30)
            report["server_log_lines"] = gw.log_lines()
            gw.stop()
    return report


def _summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack: medians over its phases, sums of the counts."""
    by: dict[str, list[dict[str, Any]]] = {}
    for p in report["phases"]:
        by.setdefault(p["attack"], []).append(p)
    rows = []
    for attack, phases in by.items():
        medians = ("p50_ms", "p99_ms", "max_ms", "server_cpu")
        row: dict[str, Any] = {
            "attack": attack,
            **{k: statistics.median(p[k] for p in phases) for k in medians},
            "errors": sum(p["errors"] for p in phases),
            "trips": sum((Counter(p["trips"]) for p in phases), Counter()),
            "saw": sum((Counter(p["attacker_saw"]) for p in phases), Counter()),
        }
        for side in ("admin_health", "public_health"):
            row[side] = tuple(sum(p[side][i] for p in phases) for i in (0, 1))
        rows.append(row)
    return rows


def _print(report: dict[str, Any]) -> None:
    m, v = report["machine"], report["versions"]
    print(
        f"trackguard abuse benchmark — {m.get('cpu_model')} — {m.get('nproc')} cores — "
        f"Python {m.get('python')} — uvicorn {v['uvicorn']}, httptools {v['httptools']}, "
        f"uvloop {v['uvloop']}"
    )
    limits = (
        f"default limits, max_connections {report['max_connections']}, refused by "
        f"{report['refuse']}"
        if report["protocol"] == "trackguard"
        else "no limits"
    )
    print(
        f"gateway on CPU 0 ({report['protocol']} protocol: {limits}); legitimate traffic "
        f"{report['rate']:.0f} req/s open loop on 16 keep-alive connections, "
        f"{report['seconds']:.0f} s a phase, medians of {report['repeats']} phases taken in "
        "turns; attacker and probes in their own processes at nice 19, all clients on CPU 1"
    )
    print()
    rows = _summary(report)
    quiet = rows[0]
    header = (
        f"{'attack':<15} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99/quiet':>9} "
        f"{'target':>6} {'server CPU':>10} {'errors':>6} {'admin /healthz':>14} "
        f"{'public /healthz':>15}  limit trips; what the attacker saw"
    )
    print(header)
    print("-" * len(header))
    failures = 0
    for row in rows:
        ratio = row["p99_ms"] / quiet["p99_ms"]
        ok = row["attack"] == "none" or (ratio <= 2 and row["p99_ms"] <= 50)
        failures += not ok
        admin = "{}/{}".format(*row["admin_health"])
        public = "{}/{}".format(*row["public_health"])
        trips = " ".join(f"{k}={v:.0f}" for k, v in row["trips"].items()) or "-"
        saw = " ".join(f"{k}={v}" for k, v in sorted(row["saw"].items())) or "-"
        verdict = "" if row["attack"] == "none" else "PASS" if ok else "FAIL"
        print(
            f"{row['attack']:<15} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
            f"{row['max_ms']:>7.1f} {ratio:>8.2f}x {verdict:>6} {row['server_cpu']:>10.0%} "
            f"{row['errors']:>6} {admin:>14} {public:>15}  {trips}; {saw}"
        )
    after = report["quiet_after"]
    print()
    print(
        f"quiet again after the attacks: p50 {after['p50_ms']:.2f} ms, "
        f"p99 {after['p99_ms']:.2f} ms, max {after['max_ms']:.1f} ms; "
        f"gateway peak RSS {report['rss_mib']:.0f} MiB; "
        f"{report['server_log_lines']} lines on the gateway's stderr"
    )
    print()
    for name, what in ATTACKS.items():
        print(f"  {name:<15} {what}")
    print()
    print(
        f"target p99 under attack <= 2x quiet and <= 50 ms: "
        f"{'PASS' if not failures else f'FAIL ({failures} attacks)'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=300.0, help="legitimate requests/s")
    parser.add_argument("--repeats", type=int, default=3, help="phases per attack (median)")
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument(
        "--refuse",
        choices=["close", "503"],
        default="close",
        help="how the gateway refuses connections over the ceiling (close: what it does)",
    )
    parser.add_argument(
        "--protocol",
        choices=["trackguard", "uvicorn"],
        default="trackguard",
        help="trackguard: the limits (what serve runs); uvicorn: uvicorn's own protocol (before)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print(report)


if __name__ == "__main__":
    main()
