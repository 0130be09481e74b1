"""Benchmark: ``trackguard audit`` throughput and memory on one core, beside DuckDB.

Generates a request log of ``--mb`` megabytes (D2C store traffic with its known defects,
wrapped as request-log lines), then, each in a fresh process pinned to one core, in turns:

* trackguard: ``run_audit([log])`` — every line through the full core ``Checker`` plus every
  census, and the report built;
* DuckDB audit census (``SET threads=1``, ``memory_limit='1GB'``): the censuses the audit
  computes, as far as SQL can express them, without the contract or plan checks. One
  ``read_ndjson`` pass parses each body once (``json_valid``, then one ``json_extract`` of a
  list of paths) into a TEMP table; queries over it count lines by status, event names,
  timestamp kinds and recency, the (property, JSON type) pairs of ``data`` per event name
  (``json_each``), repeated event ids, persons by identifier kind (v1 path), anonymous ids
  no identify carried, and hourly volume per event name. The time covers everything from
  ``duckdb.connect()`` to the last row fetched;
* DuckDB small census: one pass of ``GROUPING SETS`` counting lines by event name, by status
  and by timestamp kind, and nothing else: mostly the cost of reading and parsing the file;
* Python floor: the least any pure-Python per-line census does: iterate the lines, decode
  each into a typed ``msgspec.Struct``, decode its body, count the event name and the
  (name, key, value type) of every ``data`` item. Nothing is checked, routed or reported:
  no design that decodes every line and body in Python goes faster on the same machine.

It prints MB/s, lines/s and peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` of each worker:
the whole process, interpreter and libraries included), each row's speed relative to
trackguard, a sanity line comparing the DuckDB census's totals with trackguard's report, a
stage breakdown of where trackguard's time goes, and the targets: at least 0.5x the DuckDB
audit census on one core, in the same run; ``--jobs N`` at least 0.8 x N times ``--jobs 1``
(judged on CPU seconds summed over every process, since a shared machine's wall clock cannot
show it); peak memory under 300 MB per worker at any input size (shown at two sizes). A
benchmark, not a test.

    .venv/bin/python bench/audit.py            # 300 MB, about two minutes
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
from trackguard.check.samples import DEMO_DEFECT_RATE

TARGET_VS_DUCKDB = 0.5  # x the DuckDB audit census, one core each
TARGET_SCALING = 0.8  # x N for --jobs N
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
#: The audit's censuses in SQL: one pass parses every line once into ``req`` (one row per
#: line), then :data:`CENSUS_QUERIES` read that table. Where SQL and the audit differ, on
#: purpose or by necessity:
#: * event operations are the v1 event routes (``POST /api/v1/customers/{id}/events``,
#:   ``POST /api/v1/events``) with a JSON-object body, minus ``page``/``screen`` types (the
#:   corpus has no v2 lines; a v2 batch would need an unnest per item);
#: * names are trimmed as the audit trims them (whitespace, ``(no name)`` when blank); the
#:   audit also groups property statistics by the drift-normalised name, SQL by the name;
#: * timestamp kinds follow ``trackguard.core.coerce.timestamp_kind``; DuckDB's TIMESTAMPTZ
#:   cast stands in for its ISO-8601 parser;
#: * recency is measured against each line's log time, as the audit does (the fixed ``T0``
#:   only for a line without one);
#: * the timeline is hourly; the audit's buckets widen with the log's span;
#: * repeated event ids and orphaned anonymous ids are counted over the whole log (the audit
#:   keeps a bounded window, and links an anonymous event to an identify at most five
#:   minutes before it or any time after);
#: * persons are counted on every line of a v1 customer route; the audit counts only the
#:   operations its contract accepts.
CENSUS_PARSE = r"""
CREATE TEMP TABLE req AS
WITH lines AS (
  SELECT
    status,
    CAST(floor(epoch(try_cast(time AS TIMESTAMPTZ))) AS BIGINT) AS log_t,
    CASE
      WHEN path = '/api/v1/events' THEN IF(method = 'POST', 'anonymous_event', 'other')
      WHEN NOT starts_with(path, '/api/v1/customers/') THEN 'other'
      WHEN method = 'POST' AND split_part(path, '/', 6) = 'events'
           AND split_part(path, '/', 7) = '' THEN 'event'
      WHEN method = 'PUT' AND split_part(path, '/', 6) = '' THEN 'identify'
      ELSE 'customer'
    END AS route,
    CASE WHEN starts_with(path, '/api/v1/customers/')
         THEN url_decode(split_part(path, '/', 5)) END AS person,
    starts_with(ltrim(body), '{') AS object,
    -- the one parse of the body: every field the censuses read, as JSON (NULL when invalid)
    json_extract(CASE WHEN json_valid(body) THEN body END,
                 ['$.name', '$.timestamp', '$.data', '$.id', '$.anonymous_id', '$.type']) AS f
  FROM read_ndjson(?, columns = {time: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR',
                                 body: 'VARCHAR', status: 'INTEGER'},
                   ignore_errors = true, maximum_object_size = 16777216)
), typed AS (
  SELECT
    *,
    f IS NOT NULL AS ok,
    f IS NOT NULL AND object AND route IN ('event', 'anonymous_event')
      AND coalesce(f[6] ->> '$', '') NOT IN ('page', 'screen') AS is_event,
    json_type(f[2]) AS ts_t,
    trim(f[2] ->> '$', E' \t\n\r\f\v') AS ts_s
  FROM lines
), kinds AS (
  SELECT
    *,
    CASE
      WHEN NOT ok THEN IF(route IN ('event', 'anonymous_event'), 'invalid_json', NULL)
      WHEN NOT is_event THEN NULL
      WHEN ts_t IS NULL OR ts_t = 'NULL' THEN 'absent'
      WHEN ts_t = 'BIGINT' THEN 'negative'
      WHEN ts_t = 'UBIGINT' THEN
        CASE WHEN ts_s::DOUBLE >= 1e17 THEN 'nanoseconds'
             WHEN ts_s::DOUBLE >= 1e14 THEN 'microseconds'
             WHEN ts_s::DOUBLE >= 1e11 THEN 'milliseconds' ELSE 'seconds' END
      WHEN ts_t = 'DOUBLE' THEN IF(ts_s::DOUBLE >= 0, 'float_seconds', 'invalid')
      WHEN ts_t <> 'VARCHAR' THEN 'invalid'
      WHEN regexp_full_match(ts_s, '[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?')
        THEN 'numeric_string'
      WHEN try_cast(ts_s AS TIMESTAMPTZ) IS NOT NULL THEN 'iso8601'
      ELSE 'invalid'
    END AS ts_kind
  FROM typed
), numbers AS (
  SELECT
    *,
    CASE
      WHEN ts_kind = 'iso8601' THEN epoch(try_cast(ts_s AS TIMESTAMPTZ))
      WHEN ts_kind IN ('seconds', 'milliseconds', 'microseconds', 'nanoseconds',
                       'float_seconds', 'numeric_string') THEN try_cast(ts_s AS DOUBLE)
    END AS v
  FROM kinds
), seconds AS (
  SELECT
    *,
    CASE WHEN ts_kind = 'iso8601' THEN v
         WHEN v >= 0 AND isfinite(v) THEN floor(v / CASE WHEN v >= 1e17 THEN 1e9
           WHEN v >= 1e14 THEN 1e6 WHEN v >= 1e11 THEN 1e3 ELSE 1 END) END AS sec
  FROM numbers
)
SELECT
  status,
  log_t // 3600 AS hour,
  CASE WHEN person IS NULL THEN NULL
       WHEN starts_with(person, 'cio_') THEN 'cio_id'
       WHEN contains(person, '@') AND regexp_full_match(person, '[^@\s]+@[^@\s]+\.[^@\s.]+')
         THEN 'email'
       ELSE 'id' END AS person_kind,
  person,
  ts_kind,
  CASE
    WHEN NOT is_event THEN NULL
    WHEN ts_kind = 'absent' THEN 'absent'
    WHEN sec IS NULL OR sec >= 1e11 THEN 'unparseable'
    WHEN sec > coalesce(log_t, $t0) + 300 THEN 'future'
    WHEN sec < coalesce(log_t, $t0) - 72 * 3600 THEN 'older_than_72h'
    ELSE 'recent'
  END AS recency,
  CASE WHEN NOT is_event THEN NULL
       WHEN json_type(f[1]) = 'VARCHAR'
         THEN coalesce(nullif(trim(f[1] ->> '$', E' \t\n\r\f\v'), ''), '(no name)')
       WHEN json_type(f[1]) IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN f[1]::VARCHAR
       ELSE '(no name)' END AS name,
  CASE WHEN is_event AND starts_with(f[3], '{') THEN f[3] END AS data,
  CASE WHEN is_event AND json_type(f[4]) IN ('VARCHAR', 'UBIGINT', 'BIGINT')
       THEN nullif(f[4] ->> '$', '') END AS event_id,
  CASE WHEN is_event AND route = 'anonymous_event' AND json_type(f[5]) = 'VARCHAR'
       THEN nullif(f[5] ->> '$', '') END AS anonymous_id,
  CASE WHEN ok AND route = 'identify' AND json_type(f[5]) IN ('VARCHAR', 'UBIGINT', 'BIGINT')
       THEN nullif(f[5] ->> '$', '') END AS identified_anonymous_id
FROM seconds
""".replace("$t0", str(T0))
CENSUS_QUERIES = {
    "statuses": "SELECT status, count(*) FROM req GROUP BY ALL ORDER BY status NULLS LAST",
    "event_names": "SELECT name, count(*) FROM req WHERE name IS NOT NULL GROUP BY ALL",
    "timestamps": """
        SELECT ts_kind, recency, count(*) FROM req WHERE ts_kind IS NOT NULL GROUP BY ALL""",
    "properties": """
        SELECT name, p.key, p.type, count(*) FROM req, json_each(req.data) AS p GROUP BY ALL""",
    "event_ids": """
        SELECT count(*), coalesce(sum(n - 1), 0) FROM (
          SELECT count(*) AS n FROM req WHERE event_id IS NOT NULL GROUP BY event_id
        ) WHERE n > 1""",
    "persons": """
        SELECT person_kind, count(*),
               count(DISTINCT IF(person_kind = 'email', lower(trim(person)), person))
        FROM req WHERE person_kind IS NOT NULL GROUP BY ALL""",
    "orphans": """
        SELECT count(*), count(DISTINCT anonymous_id) FROM req
        WHERE anonymous_id IS NOT NULL AND anonymous_id NOT IN (
          SELECT identified_anonymous_id FROM req WHERE identified_anonymous_id IS NOT NULL
        )""",
    "hourly": """
        SELECT name, hour, count(*) FROM req
        WHERE name IS NOT NULL AND hour IS NOT NULL GROUP BY ALL""",
}
DUCKDB_MEMORY_LIMIT = "1GB"


class _LogLine(msgspec.Struct):
    """The request-log fields a census reads; msgspec skips the others."""

    time: str | None = None
    method: str = ""
    path: str = ""
    body: str = ""
    status: int | None = None


class _Body(msgspec.Struct):
    name: Any = None
    data: Any = None


# --- corpus ------------------------------------------------------------------------------------


def generate(
    path: Path, megabytes: float, seed: int, defect_rate: float = DEMO_DEFECT_RATE
) -> tuple[int, int]:
    """Write request-log lines until the file holds ``megabytes``; (lines, bytes).

    Every line is a distinct request of one long ``d2c_traffic`` stream (nothing repeats, so
    the audit's identity and duplicate maps grow as they would on a real log), logged a second
    after its event time, with the status and response Customer.io's contract gives it.
    """
    from trackguard.check.samples import BASE_TIME, SAMPLE_SPACING, d2c_traffic
    from trackguard.contract.operations import Request
    from trackguard.core.pipeline import Checker

    checker = Checker(fallback_keys=False)
    encode = msgspec.json.encode
    target = int(megabytes * 1_000_000)
    lines = size = 0
    hours: dict[int, str] = {}
    records = d2c_traffic(10**9, seed, defect_rate, base_time=BASE_TIME)
    with path.open("wb", buffering=1 << 20) as fh:
        while size < target:
            record = next(records)
            t = BASE_TIME + lines * SAMPLE_SPACING + 1
            hour = t - t % 3600
            prefix = hours.get(hour)
            if prefix is None:
                prefix = hours[hour] = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:")
            body = record["body"]
            raw = body if isinstance(body, str) else encode(body).decode()
            request = Request(method=record["method"], path=record["path"], body=raw.encode())
            verdict = checker.check(request)
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
                        "status": verdict.status,
                        "response": verdict.response.decode(),
                        "source": "storefront",
                    }
                )
                + b"\n"
            )
            fh.write(line)
            lines += 1
            size += len(line)
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
    report = run.report
    t = report.totals
    found = {f.id: f.count for f in report.findings}
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines": t.records + t.blank,
        "bytes": t.bytes,
        "peak_rss_mib": peak_rss_mib(),
        "digest": _report_digest(report),
        "requests": t.requests,
        "findings": len(report.findings),
        "drift": len(report.drift),
        "statuses": report.statuses,
        "outcomes": report.outcomes,
        "event_names": {n.name: n.count for n in report.event_names},
        "timestamps": report.timestamps,
        "recency": report.recency,
        "identifiers": report.identifiers,
        "repeated_event_ids": found.get("duplicates.event_ids", 0),
        "orphaned_anonymous_events": found.get("anonymous.orphaned", 0),
    }


def _configure(con: Any, spill: str) -> Any:
    con.execute("SET threads = 1")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{spill}'")  # spills, if any, outside the checkout
    con.execute("SET TimeZone = 'UTC'")
    return con


def worker_duckdb(path: Path) -> dict[str, Any]:
    import duckdb

    with tempfile.TemporaryDirectory() as spill:
        wall, cpu = time.perf_counter(), time.process_time()
        con = _configure(duckdb.connect(), spill)
        rows = con.execute(DUCKDB_SQL, [str(path)]).fetchall()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        con.close()
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


def worker_duckdb_census(path: Path) -> dict[str, Any]:
    import duckdb

    with tempfile.TemporaryDirectory() as spill:
        wall, cpu = time.perf_counter(), time.process_time()
        con = _configure(duckdb.connect(), spill)
        con.execute(CENSUS_PARSE, [str(path)])
        out = {name: con.execute(sql).fetchall() for name, sql in CENSUS_QUERIES.items()}
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        con.close()
    statuses = {("none" if s is None else str(s)): n for s, n in out["statuses"]}
    kinds: dict[str, int] = {}
    recency: dict[str, int] = {}
    for kind, late, n in out["timestamps"]:
        kinds[kind] = kinds.get(kind, 0) + n
        if late is not None:
            recency[late] = recency.get(late, 0) + n
    (repeated_ids, extra_copies), (orphans, orphan_ids) = out["event_ids"][0], out["orphans"][0]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines": sum(statuses.values()),
        "bytes": path.stat().st_size,
        "peak_rss_mib": peak_rss_mib(),
        "statuses": statuses,
        "event_names": dict(out["event_names"]),
        "timestamps": kinds,  # "invalid_json": event-route lines whose body is not JSON
        "recency": recency,
        "persons": {kind: {"lines": n, "distinct": d} for kind, n, d in out["persons"]},
        "repeated_event_ids": repeated_ids,
        "extra_event_id_copies": extra_copies,
        "orphaned_anonymous_events": orphans,
        "orphaned_anonymous_ids": orphan_ids,
        "property_type_pairs": len(out["properties"]),
        "hourly_rows": len(out["hourly"]),
    }


def worker_floor(path: Path) -> dict[str, Any]:
    """The least per-line work of a Python census (see the module docstring)."""
    decode_line = msgspec.json.Decoder(_LogLine).decode
    decode_body = msgspec.json.Decoder(_Body).decode
    error = msgspec.DecodeError  # ValidationError included
    names: dict[Any, int] = {}
    props: dict[tuple[Any, str, type], int] = {}
    lines = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as fh:
        for raw in fh:
            lines += 1
            try:
                body = decode_body(decode_line(raw).body)
            except error:
                continue
            name = body.name if type(body.name) is str else None
            names[name] = names.get(name, 0) + 1
            data = body.data
            if type(data) is dict:
                for k, v in data.items():
                    key = (name, k, type(v))
                    props[key] = props.get(key, 0) + 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines": lines,
        "bytes": path.stat().st_size,
        "peak_rss_mib": peak_rss_mib(),
        "names": len(names),
        "property_type_pairs": len(props),
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

    checker = Checker(fallback_keys=False)  # as the audit runs it

    def read_check() -> None:
        for item in read(path, FileCounter(str(path), "")):
            if type(item) is Record:
                checker.check(item.request)

    return {
        "read": timed(read_only),
        "check": timed(read_check),
        "audit": timed(lambda: run_audit([path], now=T0)),
    }


def _report_digest(report: Any) -> str:
    """The JSON report without its timing field, hashed: equal for every ``--jobs``."""
    import hashlib

    from trackguard.audit.report_json import render_json

    doc = msgspec.json.decode(render_json(report))
    doc["report"]["totals"]["seconds"] = 0
    return hashlib.sha256(msgspec.json.encode(doc)).hexdigest()[:16]


def worker_jobs(path: Path, jobs: int) -> dict[str, Any]:
    """``run_audit([log], jobs=N)`` on every core this benchmark may use (not pinned)."""
    from trackguard.audit import run_audit

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(json.loads(os.environ["TG_BENCH_CPUS"])))
    wall, cpu = time.perf_counter(), time.process_time()
    run = run_audit([path], now=T0, jobs=jobs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_rss = children.ru_maxrss / 1024  # the largest worker's peak (KiB on Linux)
    return {
        "wall_s": wall,
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "lines": run.report.totals.records + run.report.totals.blank,
        "peak_rss_mib": peak_rss_mib(),
        "worker_peak_rss_mib": worker_rss if jobs > 1 else None,
        "digest": _report_digest(run.report),
    }


WORKERS = {
    "jobs1": lambda path: worker_jobs(path, 1),
    "jobs2": lambda path: worker_jobs(path, 2),
    "trackguard": worker_trackguard,
    "duckdb_census": worker_duckdb_census,
    "duckdb": worker_duckdb,
    "floor": worker_floor,
    "stages": worker_stages,
}


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


ENGINES = {
    "trackguard": "trackguard audit (full check + censuses)",
    "duckdb_census": f"duckdb audit census (threads=1, memory_limit={DUCKDB_MEMORY_LIMIT})",
    "duckdb": "duckdb small census (threads=1)",
    "floor": "Python floor (msgspec line + body, name and data types)",
}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _same(a: Any, b: Any) -> str:
    return "agree" if a == b else "DIFFER"


def _print_sanity(
    ours: list[dict[str, Any]], census: list[dict[str, Any]], cheap: list[dict[str, Any]]
) -> None:
    """Totals of the DuckDB census beside the same figures of trackguard's report."""
    tg, db = ours[0], census[0]
    steady = all(r["statuses"] == tg["statuses"] for r in ours) and all(
        r["statuses"] == db["statuses"] for r in census + cheap
    )
    print(
        f"sanity: lines by status {_same(steady, True)} across trackguard and both DuckDB "
        f"censuses ({tg['statuses']})"
    )
    kinds = {k: n for k, n in db["timestamps"].items() if k != "invalid_json"}
    tg_kinds, tg_recency = tg["timestamps"], tg["recency"]
    print(
        f"  event names: {_same(db['event_names'], tg['event_names'])} "
        f"({len(db['event_names'])} names, {fmt_int(sum(db['event_names'].values()))} events "
        f"in DuckDB, {fmt_int(sum(tg['event_names'].values()))} in trackguard)"
    )
    print(
        f"  timestamp kinds: {_same(kinds, tg_kinds)} ({_counts(kinds)}); recency against "
        f"each line's log time: {_same(db['recency'], tg_recency)} ({_counts(db['recency'])})"
    )
    print(
        f"  repeated event ids (extra copies): {db['extra_event_id_copies']} / "
        f"{tg['repeated_event_ids']}; orphaned anonymous events: "
        f"{db['orphaned_anonymous_events']} / {tg['orphaned_anonymous_events']} (DuckDB / "
        "trackguard; the corpus sends neither event ids nor anonymous events)"
    )
    persons = {k: v["lines"] for k, v in db["persons"].items()}
    distinct = {k: v["distinct"] for k, v in db["persons"].items()}
    print(
        f"  persons by identifier kind: DuckDB {_counts(persons)} lines ({_counts(distinct)} "
        f"distinct); trackguard {_counts(tg['identifiers'])} operations: trackguard counts "
        f"only requests its contract accepts ({fmt_int(tg['outcomes']['invalid'])} were "
        f"invalid), DuckDB every line of a v1 customer route"
    )
    print(
        f"  DuckDB census also: {db['property_type_pairs']} (event, property, type) counts, "
        f"{db['hourly_rows']} (event, hour) counts; Python floor: "
        "(name, key, type) counts only\n"
    )


def _print_jobs(
    jobs: dict[str, list[dict[str, Any]]],
    pinned: list[dict[str, Any]],
    census: list[dict[str, Any]],
    size: int,
    key: str,
    load: tuple[float, float, float],
) -> None:
    """``--jobs 1`` and ``--jobs 2`` on every allowed core, beside the DuckDB audit census."""
    cores = len(json.loads(os.environ.get("TG_BENCH_CPUS", "[0]")))
    one = size / 1e6 / _median(jobs["jobs1"], key)
    duck = size / 1e6 / _median(census, key)
    rows = []
    for kind, n in (("jobs1", 1), ("jobs2", 2)):
        mb = size / 1e6 / _median(jobs[kind], key)
        worker = [r["worker_peak_rss_mib"] for r in jobs[kind] if r["worker_peak_rss_mib"]]
        rows.append(
            [
                f"trackguard audit --jobs {n}",
                f"{mb:,.1f}",
                fmt_ratio(mb / one),
                f"{0.8 * n:.1f}",
                f"{max(r['peak_rss_mib'] for r in jobs[kind]):.0f}",
                f"{max(worker):.0f}" if worker else "-",
                fmt_ratio(mb / duck),
            ]
        )
    rows.append([ENGINES["duckdb_census"], f"{duck:,.1f}", "", "", "", "", "1.00x"])
    digests = {r["digest"] for r in [*pinned, *jobs["jobs1"], *jobs["jobs2"]]}
    per = " (MB/s: per CPU second summed over every process)" if key == "cpu_s" else ""
    print(
        f"\n--jobs on {cores} allowed cores (not pinned), load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f} at the end{per}:"
    )
    print(
        render_table(
            [
                "engine",
                "MB/s",
                "vs --jobs 1",
                "target",
                "parent RSS MiB",
                "worker RSS MiB",
                "vs duckdb",
            ],
            rows,
        )
    )
    cpu = {kind: _median(jobs[kind], "cpu_s") for kind in jobs}
    print(
        f"CPU seconds, all processes: --jobs 1 {cpu['jobs1']:.2f}, --jobs 2 {cpu['jobs2']:.2f} "
        f"(+{cpu['jobs2'] / cpu['jobs1'] - 1:.0%}: forking, splitting, merging); with 2 idle "
        f"cores --jobs 2 would run at {2 * cpu['jobs1'] / cpu['jobs2']:.2f}x --jobs 1"
    )
    print(
        f"reports of the pinned run, --jobs 1 and --jobs 2: "
        f"{'identical' if len(digests) == 1 else 'DIFFER'} (JSON without timing, sha256)"
    )


def _print_targets(
    mb_s: dict[str, float],
    rss: dict[str, float],
    rss_small: float,
    jobs: dict[str, list[dict[str, Any]]],
) -> None:
    """The issue's targets, as ratios within this run."""

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    vs_duck = mb_s["trackguard"] / mb_s["duckdb_census"]
    cpu1, cpu2 = _median(jobs["jobs1"], "cpu_s"), _median(jobs["jobs2"], "cpu_s")
    scaling = 2 * cpu1 / cpu2  # --jobs 2 over --jobs 1 with a core each, from CPU seconds
    workers = [r["worker_peak_rss_mib"] for r in jobs["jobs2"] if r["worker_peak_rss_mib"]]
    worst = max([rss["trackguard"], rss_small, *workers])
    print(
        f"target: >= {TARGET_VS_DUCKDB}x the DuckDB audit census on one core: "
        f"{verdict(vs_duck >= TARGET_VS_DUCKDB)} ({vs_duck:.2f}x)"
    )
    print(
        f"target: --jobs 2 >= {TARGET_SCALING * 2:.1f}x --jobs 1 (CPU seconds of all processes):"
        f" {verdict(scaling >= TARGET_SCALING * 2)} ({scaling:.2f}x)"
    )
    print(
        f"target: peak memory < {TARGET_RSS_MB:.0f} MB per worker: {verdict(worst < TARGET_RSS_MB)}"
        f" ({worst:.0f} MiB at most: pinned run, quarter input, --jobs 2 workers)"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {fmt_int(n)}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=300.0, help="log size in MB (default 300)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per engine (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--defect-rate",
        type=float,
        default=DEMO_DEFECT_RATE,
        help=f"share of defective requests (default {DEMO_DEFECT_RATE}, the demo's; 0.05 is "
        "closer to production traffic)",
    )
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--keep", type=Path, help="write the log here and keep it")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.worker and hasattr(os, "sched_getaffinity"):  # for the --jobs rows
        os.environ["TG_BENCH_CPUS"] = json.dumps(sorted(os.sched_getaffinity(0)))
    pinned = pin_to_one_core()
    if args.worker:
        kind, file = args.worker
        print(json.dumps(WORKERS[kind](Path(file))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        log = args.keep or Path(tmp) / "requests.jsonl"
        started = time.perf_counter()
        lines, size = generate(log, args.mb, args.seed, args.defect_rate)
        gen_s = time.perf_counter() - started
        quarter = Path(tmp) / "quarter.jsonl"
        head(log, quarter, 0.25)
        sample = Path(tmp) / "sample.jsonl"
        head(log, sample, min(1.0, 30e6 / size))
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ENGINES}
        jobs: dict[str, list[dict[str, Any]]] = {"jobs1": [], "jobs2": []}
        for _ in range(args.repeats):  # round robin: a busy machine slows every engine alike
            for kind, engine_runs in [*runs.items(), *jobs.items()]:
                engine_runs.append(run_worker(kind, log))
        small = run_worker("trackguard", quarter)
        stages = run_worker("stages", sample)
        load = os.getloadavg()

    key = "wall_s" if args.clock == "wall" else "cpu_s"
    seconds = {kind: _median(r, key) for kind, r in runs.items()}
    mb_s = {kind: size / 1e6 / t for kind, t in seconds.items()}
    rss = {kind: max(x["peak_rss_mib"] for x in r) for kind, r in runs.items()}
    ours, census, cheap = runs["trackguard"], runs["duckdb_census"], runs["duckdb"]
    mb_ours, rss_ours = mb_s["trackguard"], rss["trackguard"]
    rss_small = small["peak_rss_mib"]
    cpu_share = sum(r["cpu_s"] for r in ours) / sum(r["wall_s"] for r in ours)
    result = {
        "machine": machine_info(pinned),
        "versions": {
            "trackguard": package_version("trackguard"),
            "msgspec": package_version("msgspec"),
            "duckdb": package_version("duckdb"),
        },
        "corpus": {
            "lines": lines,
            "bytes": size,
            "generate_s": gen_s,
            "seed": args.seed,
            "defect_rate": args.defect_rate,
        },
        "clock": args.clock,
        "duckdb_memory_limit": DUCKDB_MEMORY_LIMIT,
        **runs,
        **jobs,
        "quarter": small,
        "stages_cpu_s": stages,
        "loadavg": load,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['python']}, pinned to CPU "
        f"{m['pinned_cpu']}; trackguard {result['versions']['trackguard']}, msgspec "
        f"{result['versions']['msgspec']}, duckdb {result['versions']['duckdb']}"
    )
    print(
        f"corpus: {fmt_int(lines)} request-log lines, {size / 1e6:,.1f} MB "
        f"({size / lines:.0f} B/line), D2C traffic seed {args.seed}, defect rate "
        f"{args.defect_rate}; generated in {gen_s:.1f} s"
    )
    print(
        f"clock: {args.clock}; median of {args.repeats} run(s), engines in turns; peak RSS = "
        "ru_maxrss of each worker process (interpreter and libraries included)"
    )
    _print_sanity(ours, census, cheap)
    rows = [
        [
            label,
            f"{mb_s[kind]:,.1f}",
            fmt_int(lines / seconds[kind]),
            f"{seconds[kind]:.1f}",
            f"{rss[kind]:.0f}",
            fmt_ratio(mb_s[kind] / mb_ours),
        ]
        for kind, label in ENGINES.items()
    ]
    print(
        render_table(
            ["engine", "MB/s", "lines/s", "seconds", "peak RSS MiB", "vs trackguard"], rows
        )
    )
    _print_jobs(jobs, runs["trackguard"], runs["duckdb_census"], size, key, load)
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
    _print_targets(mb_s, rss, rss_small, jobs)
    if cpu_share < 0.95 and args.clock == "wall":
        print(
            f"warning: trackguard held its core {cpu_share:.0%} of the time (load average "
            f"{load[0]:.2f}); rerun on a quiet machine or with --clock cpu"
        )


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
