"""Benchmark: ``trackguard audit`` throughput and memory on one core, beside DuckDB.

Generates a request log of ``--mb`` megabytes (D2C store traffic with its known defects,
wrapped as request-log lines), then, each in a fresh process pinned to one core:

* trackguard: ``run_audit([log])`` — every line through the full core ``Checker`` plus every
  census, and the report built;
* DuckDB (``SET threads=1``): ``read_ndjson`` with an explicit column spec, then one pass of
  ``GROUPING SETS`` counting lines by event name, by status and by timestamp kind — the census
  part only, no contract or plan checks.

It prints MB/s, lines/s and peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` of each worker:
the whole process, interpreter and libraries included), the ratio, a stage breakdown of where
trackguard's time goes, and the targets (>= 100 MB/s on one core; peak memory < 300 MB at any
input size, shown at two sizes). A benchmark, not a test.

    .venv/bin/python bench/audit.py            # 300 MB, about a minute and a half
    .venv/bin/python bench/audit.py --mb 50 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    fmt_int,
    fmt_ratio,
    machine_info,
    package_version,
    peak_rss_mib,
    pin_to_one_core,
    render_table,
)

TARGET_MB_S = 100.0
TARGET_RSS_MB = 300.0
T0 = 1_764_000_000
DUCKDB_SQL = """
SELECT name, status, kind, GROUPING(name, status, kind) AS g, count(*) AS n FROM (
  SELECT
    status,
    CASE WHEN json_valid(body) THEN json_extract_string(body, '$.name') END AS name,
    CASE
      WHEN NOT json_valid(body) THEN 'invalid_json'
      WHEN json_type(body, '$.timestamp') IS NULL THEN 'absent'
      WHEN json_type(body, '$.timestamp') IN ('UBIGINT', 'BIGINT') THEN
        CASE WHEN CAST(json_extract(body, '$.timestamp') AS HUGEINT) >= 100000000000
             THEN 'milliseconds' ELSE 'seconds' END
      WHEN json_type(body, '$.timestamp') = 'VARCHAR' THEN 'string'
      ELSE lower(json_type(body, '$.timestamp'))
    END AS kind
  FROM read_ndjson(?, columns = {time: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR',
                                 body: 'VARCHAR', status: 'INTEGER', response: 'VARCHAR'},
                   ignore_errors = true, maximum_object_size = 16777216)
)
GROUP BY GROUPING SETS ((name), (status), (kind))
"""


# --- corpus ------------------------------------------------------------------------------------


def generate(path: Path, megabytes: float, seed: int) -> tuple[int, int]:
    """Write request-log lines until the file holds ``megabytes``; (lines, bytes)."""
    from trackguard.samples import d2c_traffic

    template = list(d2c_traffic(20_000, seed))
    encode = msgspec.json.encode
    target = int(megabytes * 1_000_000)
    lines = size = 0
    hours: dict[int, str] = {}
    with path.open("wb", buffering=1 << 20) as fh:
        while size < target:
            for record in template:
                t = T0 + lines // 3  # about three requests per second
                hour = t - t % 3600
                prefix = hours.get(hour)
                if prefix is None:
                    prefix = hours[hour] = datetime.fromtimestamp(hour, UTC).strftime(
                        "%Y-%m-%dT%H:"
                    )
                body = record["body"]
                raw = body if isinstance(body, str) else encode(body).decode()
                status = 400 if isinstance(body, str) else 200
                line = (
                    encode(
                        {
                            "time": f"{prefix}{(t % 3600) // 60:02d}:{t % 60:02d}Z",
                            "method": record["method"],
                            "path": record["path"],
                            "headers": {
                                "content-type": "application/json",
                                "authorization": "[redacted]",
                            },
                            "body": raw,
                            "status": status,
                            "response": "{}\n" if status == 200 else '{"meta":{"errors":["x"]}}',
                            "source": "storefront",
                        }
                    )
                    + b"\n"
                )
                fh.write(line)
                lines += 1
                size += len(line)
                if size >= target:
                    break
    return lines, size


def head(source: Path, target: Path, fraction: float) -> None:
    """The first ``fraction`` of ``source``, cut at a line end."""
    want = int(source.stat().st_size * fraction)
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(src.read(want))
        dst.write(src.readline())


# --- workers (each in its own process, pinned) --------------------------------------------------


def worker_trackguard(path: Path) -> dict[str, Any]:
    from trackguard.audit import run_audit

    wall, cpu = time.perf_counter(), time.process_time()
    run = run_audit([path], now=T0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    t = run.report.totals
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines": t.records + t.blank,
        "bytes": t.bytes,
        "peak_rss_mib": peak_rss_mib(),
        "requests": t.requests,
        "findings": len(run.report.findings),
        "drift": len(run.report.drift),
        "statuses": run.report.statuses,
    }


def worker_duckdb(path: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    wall, cpu = time.perf_counter(), time.process_time()
    rows = con.execute(DUCKDB_SQL, [str(path)]).fetchall()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    by_status = {str(status): n for _, status, _, g, n in rows if g == 0b101}
    kinds = {str(kind): n for _, _, kind, g, n in rows if g == 0b110}
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines": sum(by_status.values()),
        "bytes": path.stat().st_size,
        "peak_rss_mib": peak_rss_mib(),
        "groups": len(rows),
        "statuses": by_status,
        "timestamp_kinds": kinds,
    }


def worker_stages(path: Path) -> dict[str, Any]:
    """CPU seconds of read only; read + Checker; the whole audit (on this file)."""
    from trackguard.audit import run_audit
    from trackguard.audit.readers import FileCounter, Record, read
    from trackguard.core.pipeline import Checker

    def timed(fn: Any) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    def read_only() -> None:
        for _ in read(path, FileCounter(str(path), "")):
            pass

    checker = Checker()

    def read_check() -> None:
        for item in read(path, FileCounter(str(path), "")):
            if type(item) is Record:
                checker.check(item.request)

    return {
        "read": timed(read_only),
        "check": timed(read_check),
        "audit": timed(lambda: run_audit([path], now=T0)),
    }


WORKERS = {"trackguard": worker_trackguard, "duckdb": worker_duckdb, "stages": worker_stages}


def run_worker(kind: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --- main --------------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=300.0, help="log size in MB (default 300)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per engine (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--keep", type=Path, help="write the log here and keep it")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    pinned = pin_to_one_core()
    if args.worker:
        kind, file = args.worker
        print(json.dumps(WORKERS[kind](Path(file))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        log = args.keep or Path(tmp) / "requests.jsonl"
        started = time.perf_counter()
        lines, size = generate(log, args.mb, args.seed)
        gen_s = time.perf_counter() - started
        quarter = Path(tmp) / "quarter.jsonl"
        head(log, quarter, 0.25)
        sample = Path(tmp) / "sample.jsonl"
        head(log, sample, min(1.0, 30e6 / size))
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        for _ in range(args.repeats):  # round robin: a busy machine slows both alike
            ours.append(run_worker("trackguard", log))
            theirs.append(run_worker("duckdb", log))
        small = run_worker("trackguard", quarter)
        stages = run_worker("stages", sample)
        load = os.getloadavg()

    key = "wall_s" if args.clock == "wall" else "cpu_s"
    t_ours, t_theirs = _median(ours, key), _median(theirs, key)
    mb_ours, mb_theirs = size / 1e6 / t_ours, size / 1e6 / t_theirs
    rss_ours, rss_theirs = (
        max(r["peak_rss_mib"] for r in ours),
        max(r["peak_rss_mib"] for r in theirs),
    )
    rss_small = small["peak_rss_mib"]
    cpu_share = sum(r["cpu_s"] for r in ours) / sum(r["wall_s"] for r in ours)
    result = {
        "machine": machine_info(pinned),
        "versions": {
            "trackguard": package_version("trackguard"),
            "msgspec": package_version("msgspec"),
            "duckdb": package_version("duckdb"),
        },
        "corpus": {"lines": lines, "bytes": size, "generate_s": gen_s, "seed": args.seed},
        "clock": args.clock,
        "trackguard": ours,
        "duckdb": theirs,
        "quarter": small,
        "stages_cpu_s": stages,
        "loadavg": load,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    agree = all(r["statuses"] == theirs[0]["statuses"] for r in theirs) and all(
        r["statuses"] == ours[0]["statuses"] for r in ours
    )
    agree = agree and ours[0]["statuses"] == theirs[0]["statuses"]
    m = result["machine"]
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['python']}, pinned to CPU "
        f"{m['pinned_cpu']}; trackguard {result['versions']['trackguard']}, msgspec "
        f"{result['versions']['msgspec']}, duckdb {result['versions']['duckdb']}"
    )
    print(
        f"corpus: {fmt_int(lines)} request-log lines, {size / 1e6:,.1f} MB "
        f"({size / lines:.0f} B/line), D2C traffic seed {args.seed}; generated in {gen_s:.1f} s"
    )
    print(
        f"clock: {args.clock}; median of {args.repeats} run(s); peak RSS = ru_maxrss of each "
        "worker process (interpreter and libraries included)"
    )
    print(
        f"sanity: lines by status {'agree' if agree else 'DIFFER'} between trackguard and "
        f"DuckDB ({ours[0]['statuses']} / {theirs[0]['statuses']}); DuckDB timestamp kinds: "
        f"{theirs[0]['timestamp_kinds']}\n"
    )
    rows = [
        [
            "trackguard audit (full check + censuses)",
            f"{mb_ours:,.1f}",
            fmt_int(lines / t_ours),
            f"{t_ours:.1f}",
            f"{rss_ours:.0f}",
            "1.00x",
        ],
        [
            "duckdb read_ndjson census (threads=1)",
            f"{mb_theirs:,.1f}",
            fmt_int(lines / t_theirs),
            f"{t_theirs:.1f}",
            f"{rss_theirs:.0f}",
            fmt_ratio(mb_theirs / mb_ours),
        ],
    ]
    print(
        render_table(["engine", "MB/s", "lines/s", "seconds", "peak RSS MiB", "duckdb/ours"], rows)
    )
    total = stages["audit"]
    print(
        f"\nwhere trackguard's CPU time goes ({sample.name}: first "
        f"{min(size, 30e6) / 1e6:.0f} MB, CPU seconds):"
    )
    read_s, check_s = stages["read"], stages["check"] - stages["read"]
    census_s = total - stages["check"]
    print(
        render_table(
            ["stage", "CPU s", "share", "MB/s alone"],
            [
                [
                    "read + decode lines (readers)",
                    f"{read_s:.2f}",
                    f"{read_s / total:.0%}",
                    f"{min(size, 30e6) / 1e6 / read_s:,.0f}",
                ],
                ["core Checker (contract)", f"{check_s:.2f}", f"{check_s / total:.0%}", ""],
                ["censuses + report", f"{census_s:.2f}", f"{census_s / total:.0%}", ""],
                ["whole audit", f"{total:.2f}", "100%", f"{min(size, 30e6) / 1e6 / total:,.1f}"],
            ],
        )
    )
    print(
        f"\npeak RSS: {rss_small:.0f} MiB at {size / 4e6:,.0f} MB, {rss_ours:.0f} MiB at "
        f"{size / 1e6:,.0f} MB (bounded by trackguard.audit.Limits, not by input size)"
    )
    verdict_speed = "PASS" if mb_ours >= TARGET_MB_S else "FAIL"
    verdict_rss = "PASS" if rss_ours < TARGET_RSS_MB and rss_small < TARGET_RSS_MB else "FAIL"
    print(
        f"target: >= {TARGET_MB_S:.0f} MB/s on one core: {verdict_speed} ({mb_ours:,.1f} MB/s);"
        f" peak memory < {TARGET_RSS_MB:.0f} MB: {verdict_rss} ({rss_ours:.0f} MiB)"
    )
    if cpu_share < 0.95 and args.clock == "wall":
        print(
            f"warning: trackguard held its core {cpu_share:.0%} of the time (load average "
            f"{load[0]:.2f}); rerun on a quiet machine or with --clock cpu"
        )


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
