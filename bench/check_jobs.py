"""Benchmark: ``trackguard check --jobs N`` throughput beside ``--jobs 1``, and memory per worker.

Writes ``--mb`` megabytes of ``check`` input (``d2c_traffic`` store traffic with its defects,
one request per line), then, each in a fresh process allowed every core this benchmark may
use, in turns ``--repeats`` times: the check with the example plan and ``--format jsonl``
output (to a file, hashed), for ``--jobs 1`` and ``--jobs 2``. Prints requests/s, the scaling
ratio against ``--jobs 1`` beside the target (0.8 x N), the parent's and the largest
worker's peak RSS (``ru_maxrss``; target < 300 MB), whether the outputs are identical, and
the load average (the machine is shared: a loaded machine cannot scale). A benchmark, not a
test.

    .venv/bin/python bench/check_jobs.py             # 40 MB
    .venv/bin/python bench/check_jobs.py --mb 100 --repeats 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_int, fmt_ratio, machine_info, package_version, peak_rss_mib, render_table

PLAN = Path(__file__).resolve().parents[1] / "examples" / "d2c-plan.yaml"
TARGET_RSS_MB = 300.0
JOBS = (1, 2)


def generate(path: Path, megabytes: float, seed: int) -> tuple[int, int]:
    from trackguard.check.samples import BASE_TIME, d2c_traffic

    target, lines, size = int(megabytes * 1e6), 0, 0
    records = d2c_traffic(10**9, seed, base_time=BASE_TIME)
    with path.open("wb", buffering=1 << 20) as fh:
        while size < target:
            line = msgspec.json.encode(next(records)) + b"\n"
            fh.write(line)
            lines += 1
            size += len(line)
    return lines, size


def worker(path: Path, jobs: int) -> dict[str, Any]:
    """One ``check`` run, as the command does it, verdict lines to a file."""
    from trackguard.check.inputs import iter_requests
    from trackguard.check.judge import Judge
    from trackguard.check.run import check_items, check_jobs
    from trackguard.plan.loader import load_plan

    plan = load_plan(PLAN)
    with tempfile.NamedTemporaryFile() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        if jobs == 1:
            summary = check_items(iter_requests([path]), Judge(plan), out)
        else:
            summary = check_jobs([path], plan, strict=False, jobs=jobs, out=out)
        out.flush()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = peak_rss_mib()  # before hashing the output
        out.seek(0)
        digest = hashlib.file_digest(out, "sha256").hexdigest()[:16]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "requests": summary.requests + summary.unreadable,
        "peak_rss_mib": peak,
        "worker_peak_rss_mib": children.ru_maxrss / 1024 if jobs > 1 else None,
        "digest": digest,
        "summary": [summary.requests, summary.unreadable, dict(summary.outcomes)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=40.0, help="input size in MB (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per --jobs (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", nargs=2, metavar=("JOBS", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[1]), int(args.worker[0]))))
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.jsonl"
        lines, size = generate(path, args.mb, args.seed)
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in JOBS}
        for _ in range(args.repeats):  # in turns: a busy machine slows each alike
            for n in JOBS:
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", str(n), str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs[n].append(json.loads(out.stdout))
        load = os.getloadavg()
    m = machine_info(None)
    print(
        f"machine: {m['nproc']} CPUs ({cores} allowed, not pinned), {m['cpu_model']}, "
        f"{m['python']}; trackguard {package_version('trackguard')}; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )
    print(
        f"corpus: {fmt_int(lines)} check lines, {size / 1e6:,.1f} MB, D2C traffic seed "
        f"{args.seed}, plan {PLAN.name}, --format jsonl to a file; median of {args.repeats}"
    )
    rate = {n: lines / statistics.median(r["wall_s"] for r in runs[n]) for n in JOBS}
    rows = []
    for n in JOBS:
        worker_rss = [r["worker_peak_rss_mib"] for r in runs[n] if r["worker_peak_rss_mib"]]
        rows.append(
            [
                f"trackguard check --jobs {n}",
                fmt_int(rate[n]),
                f"{size / 1e6 / (lines / rate[n]):,.1f}",
                fmt_ratio(rate[n] / rate[1]),
                f"{0.8 * n:.1f}",
                f"{max(r['peak_rss_mib'] for r in runs[n]):.0f}",
                f"{max(worker_rss):.0f}" if worker_rss else "-",
            ]
        )
    print(
        render_table(
            [
                "engine",
                "requests/s",
                "MB/s",
                "vs --jobs 1",
                "target",
                "parent RSS MiB",
                "worker RSS MiB",
            ],
            rows,
        )
    )
    same = len({(r["digest"], json.dumps(r["summary"])) for rs in runs.values() for r in rs})
    print(
        "jsonl output and summary of every run: "
        f"{'identical' if same == 1 else 'DIFFER'} (sha256 of the verdict lines)"
    )
    worker_peak = max(
        (r["worker_peak_rss_mib"] for rs in runs.values() for r in rs if r["worker_peak_rss_mib"]),
        default=0.0,
    )
    cpu = {n: statistics.median(r["cpu_s"] for r in runs[n]) for n in JOBS}
    print(
        f"CPU seconds, all processes: --jobs 1 {cpu[1]:.2f}, --jobs 2 {cpu[2]:.2f} "
        f"(+{cpu[2] / cpu[1] - 1:.0%}: forking, splitting, copying the output); with 2 idle "
        f"cores --jobs 2 would run at {2 * cpu[1] / cpu[2]:.2f}x --jobs 1"
    )
    scaling = rate[2] / rate[1]
    print(
        f"target: --jobs 2 at >= 1.6x --jobs 1: {'PASS' if scaling >= 1.6 else 'FAIL'} "
        f"({scaling:.2f}x with load average {load[0]:.2f} on {cores} cores); worker memory "
        f"< {TARGET_RSS_MB:.0f} MB: {'PASS' if worker_peak < TARGET_RSS_MB else 'FAIL'} "
        f"({worker_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
