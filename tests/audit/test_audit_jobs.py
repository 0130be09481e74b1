"""``audit --jobs N`` gives the report one job gives, byte for byte (timing aside)."""

from __future__ import annotations

import gzip
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobs_corpus import anonymous, event, identify, iso, request, traffic_lines, write

import trackguard.audit.parallel as parallel
import trackguard.shares as shares
from trackguard.audit import Limits, parse_map, run_audit
from trackguard.audit.parallel import audit_jobs, splittable
from trackguard.audit.report_json import render_json
from trackguard.check.samples import BASE_TIME
from trackguard.cli.audit import audit_command
from trackguard.plan.loader import load_plan

NOW = BASE_TIME + 86_400
_PLAN_SEP = b"\n--- inferred plan ---\n"
_SECONDS = re.compile(rb'"seconds": [0-9.e+-]+')
PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"


@pytest.fixture(autouse=True)
def _split_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "MIN_SHARE_BYTES", 1)  # forked workers inherit it


def _report(paths: list[Path], jobs: int, **kw: object) -> bytes:
    run = run_audit(paths, now=NOW, jobs=jobs, **kw)  # type: ignore[arg-type]
    report = _SECONDS.sub(b'"seconds": 0', render_json(run.report))
    return report + _PLAN_SEP + run.infer_plan().encode()


def _decoded(both: bytes) -> Any:
    return msgspec.json.decode(both.split(_PLAN_SEP)[0])["report"]


def _merged(paths: list[Path], limits: Limits | None = None, **kw: Any) -> bool:
    """Whether the shares merged (rather than the audit running again in one process)."""
    done = audit_jobs(
        paths,
        kw.get("plan"),
        jobs=2,
        mapping=kw.get("mapping"),
        now=NOW,
        limits=limits or Limits(),
        max_line=kw.get("max_line", 1 << 22),
    )
    return done is not None


def _same_for_all_jobs(paths: list[Path], **kw: Any) -> bytes:
    if "limits" not in kw:
        assert _merged(paths, **kw)
    one = _report(paths, 1, **kw)
    for jobs in (2, 3):
        assert _report(paths, jobs, **kw) == one, f"--jobs {jobs} differs"
    return one


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample traffic with defects as a request log, plus bad lines and a blank one."""
    lines: list[object] = list(traffic_lines(1500))
    lines.insert(700, b"not json\n")
    lines.insert(900, b"\n")
    lines.insert(1100, b'{"method": "POST"}\n')
    return write(tmp_path_factory.mktemp("jobs") / "traffic.jsonl", lines)  # type: ignore[arg-type]


def test_sample_traffic(traffic: Path) -> None:
    one = _same_for_all_jobs([traffic])
    report = _decoded(one)
    assert report["totals"]["records"] == 1502
    assert report["totals"]["unreadable"] == 2
    assert report["totals"]["blank"] == 1
    assert report["findings"]  # the defects are found, and found alike


def test_recorded_calls_spill_to_disk(
    traffic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "SPILL_OPS", 7)  # every few calls to the spill file
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _same_for_all_jobs([traffic])
    assert list(tmp_path.iterdir()) == []  # spill files and their directory are gone


def test_sample_traffic_with_plan(traffic: Path) -> None:
    _same_for_all_jobs([traffic], plan=load_plan(PLAN))


def test_shares_cut_inside_the_file(traffic: Path) -> None:
    cut = shares.plan_shares([traffic], 3, splittable=lambda p: True)
    assert cut is not None and cut[0].start == 0 and len(cut) == 3
    text = traffic.read_bytes()
    for share in cut[1:]:
        assert text[share.start - 1 : share.start] == b"\n"
        assert share.first_line == text[: share.start].count(b"\n") + 1


def test_small_input_and_gzip_stay_in_one_piece(
    traffic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress(traffic.read_bytes()))
    assert shares.plan_shares([gz], 3, splittable=splittable) is None
    cut = shares.plan_shares([gz, traffic], 3, splittable=splittable)
    assert cut is not None
    assert (cut[0].start, cut[0].end) == (0, None)
    assert [s.index for s in cut] == [0, 1, 1, 1]  # a third of all the bytes each
    monkeypatch.setattr(shares, "MIN_SHARE_BYTES", 4 << 20)
    assert shares.plan_shares([traffic], 3, splittable=splittable) is None  # not worth a fork


def test_gzip_and_several_files(tmp_path: Path, traffic: Path) -> None:
    lines = traffic.read_bytes().splitlines(keepends=True)
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(lines[:600])))
    plain = tmp_path / "b.jsonl"
    plain.write_bytes(b"".join(lines[600:]))
    one = _same_for_all_jobs([gz, plain])
    assert b'"path": "' + str(gz).encode() in one


def test_har_and_mapped_jsonl(tmp_path: Path, traffic: Path) -> None:
    """A HAR file is one share; mapped JSONL is cut like a request log."""
    entries = [
        {
            "startedDateTime": line["time"],
            "request": {
                "method": line["method"],
                "url": "https://track.customer.io" + line["path"],
                "postData": {"text": line["body"]},
            },
            "response": {"status": line["status"]},
        }
        for line in map(msgspec.json.decode, traffic.read_bytes().splitlines()[:200])
        if isinstance(line, dict)
    ]
    har = tmp_path / "capture.har"
    har.write_bytes(msgspec.json.encode({"log": {"version": "1.2", "entries": entries}}))
    mapped = tmp_path / "app.jsonl"
    with mapped.open("wb") as fh:
        for raw in traffic.read_bytes().splitlines()[200:]:
            try:
                fh.write(msgspec.json.encode({"req": msgspec.json.decode(raw)}) + b"\n")
            except msgspec.DecodeError:
                fh.write(raw + b"\n")  # the bad lines stay bad
    spec = "method=req.method,path=req.path,body=req.body,time=req.time,status=req.status"
    one = _same_for_all_jobs([har, mapped], mapping=parse_map(spec))
    assert [i["format"] for i in _decoded(one)["inputs"]] == ["har", "mapped-jsonl"]


def test_split_points_inside_long_lines(tmp_path: Path) -> None:
    """Lines far longer than a share: cuts move to the next line start."""
    long = {"x": "y" * 20_000}
    lines: list[object] = []
    for i in range(12):
        lines.append(event(BASE_TIME + i, f"u{i}", "Order Completed", {"total": i, **long}))
    lines.append(b"x" * 50_000 + b"\n")  # unreadable, longer than max_line below
    path = write(tmp_path / "long.jsonl", lines)  # type: ignore[arg-type]
    one = _same_for_all_jobs([path], max_line=40_000)
    assert b"line is longer than 40000 bytes" in one


def test_duplicates_straddle_the_split(tmp_path: Path) -> None:
    """Each request's retry lands in the other half: only the whole log shows the repeat."""
    first = [
        event(BASE_TIME + i, f"u{i}", "Order Completed", {"n": i}, id=f"id{i}") for i in range(40)
    ]
    retries = [dict(line, time=line["time"]) for line in first]
    anon = [anonymous(BASE_TIME + 50 + i, f"a{i}", "Viewed") for i in range(10)]
    linked = [identify(BASE_TIME + 3000 + i, f"p{i}", f"a{i}") for i in range(5)]
    path = write(tmp_path / "dups.jsonl", [*first, *anon, *retries, *linked])  # type: ignore[list-item]
    one = _same_for_all_jobs([path])
    report = _decoded(one)
    found = {f["id"]: f["count"] for f in report["findings"]}
    assert found["duplicates.requests"] == 40
    assert found["duplicates.event_ids"] == 40
    assert found["anonymous.orphaned"] == 5


def test_drift_variant_first_seen_in_second_half(tmp_path: Path) -> None:
    lines = [event(BASE_TIME + i, f"u{i}", "Order Completed", {"total": 1}) for i in range(60)]
    lines += [
        event(BASE_TIME + 100 + i, f"v{i}", name, {"total": "1"})
        for i, name in enumerate(
            ["order_completed", "orderCompleted", "Order Complete", "Ordr Completed"] * 3
        )
    ]
    path = write(tmp_path / "drift.jsonl", lines)  # type: ignore[arg-type]
    one = _same_for_all_jobs([path])
    assert b"orderCompleted" in one and b'"drift": [' in one


def test_caps_reached_give_the_sequential_report(tmp_path: Path) -> None:
    """A cap decided by order: the audit runs again in one process, with the same report."""
    lines = [event(BASE_TIME + i, f"u{i}", f"Event {i}", {f"k{i}": i}) for i in range(30)]
    path = write(tmp_path / "many.jsonl", lines)  # type: ignore[arg-type]
    limits = Limits(event_names=5, series=3, event_keys=4, duplicate_window=4, identifiers=6)
    assert not _merged([path], limits)
    one = _same_for_all_jobs([path], limits=limits)
    assert b"more than 5 distinct event names" in one


def test_caps_reached_in_the_first_share_merge(tmp_path: Path) -> None:
    """The first share goes through the report's own auditor: its caps are one process's, and
    later shares that add nothing beyond them merge (one that would still runs again)."""
    first = [event(BASE_TIME + i, f"u{i}", f"Event {i}", {f"k{i}": i}) for i in range(20)]
    second = [event(BASE_TIME + 20 + i, f"v{i}", f"Event {i % 5}", {}) for i in range(20)]
    path = write(tmp_path / "first.jsonl", [*first, *second])  # type: ignore[arg-type]
    cut = shares.plan_shares([path], 2, splittable=splittable)
    assert cut is not None and cut[1].first_line == len(first) + 1  # two shares: first, second
    limits = Limits(event_names=5)
    assert _merged([path], limits)
    one = _same_for_all_jobs([path], limits=limits)
    assert b"more than 5 distinct event names" in one
    later = [*first, *second, event(BASE_TIME + 60, "w", "Event 19", {})]
    path = write(tmp_path / "later.jsonl", later)  # type: ignore[arg-type]
    assert not _merged([path], limits)
    _same_for_all_jobs([path], limits=limits)


def test_replayed_caps_merge(tmp_path: Path, traffic: Path) -> None:
    """Identifier, duplicate-window and anonymous-id caps are reached in the replay, in order."""
    lines: list[Any] = [*map(msgspec.json.decode, traffic.read_bytes().splitlines()[:600])]
    lines += [anonymous(BASE_TIME + 9000 + i, f"a{i % 40}", "Viewed") for i in range(80)]
    lines += [identify(BASE_TIME + 9100 + i, f"p{i}", f"a{i}") for i in range(40)]
    path = write(tmp_path / "capped.jsonl", lines)
    limits = Limits(identifiers=25, duplicate_window=30, anonymous_ids=20)
    assert _merged([path], limits)
    one = _same_for_all_jobs([path], limits=limits)
    caps = _decoded(one)["caps"]
    assert "more than 25 distinct ids: later ones are not matched" in caps
    assert "more than 20 distinct anonymous ids: later ones are not matched" in caps
    assert any(c.startswith("duplicate requests: only the latest 15-30") for c in caps)


def test_series_cap_is_replayed_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More events over time than series: the first ones by position are drawn."""
    lines = [event(BASE_TIME + 60 * i, f"u{i}", f"Event {i % 9}", {}) for i in range(90)]
    path = write(tmp_path / "series.jsonl", lines)  # type: ignore[arg-type]
    assert _merged([path], Limits(series=4))
    one = _same_for_all_jobs([path], limits=Limits(series=4))
    assert b"more than 4 events over time" in one
    monkeypatch.setattr(parallel, "WORKER_SERIES", 5)  # a worker's own bound: one process
    assert not _merged([path], Limits(series=4))
    assert _same_for_all_jobs([path], limits=Limits(series=4)) == one


def test_cli_jobs_same_json(traffic: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = []
    for jobs in ("1", "2"):
        result = runner.invoke(audit_command, [str(traffic), "--json", "-", "--jobs", jobs])
        assert result.exit_code == 0, result.output
        outs.append(_SECONDS.sub(b'"seconds": 0', result.stdout_bytes))
    assert outs[0] == outs[1]


@pytest.mark.parametrize("value", ["0", "-1"])
def test_cli_jobs_must_be_positive(traffic: Path, value: str) -> None:
    result = CliRunner().invoke(audit_command, [str(traffic), "--jobs", value])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: --jobs must be a number of processes, 1 or more (not {value})"
    ]


# --- merged censuses: what each share cannot see alone -----------------------------------------


def _track(t: int, who: str, message_id: str) -> dict[str, Any]:
    """A Pipelines API track call carrying ``message_id``."""
    body = {
        "type": "track",
        "userId": who,
        "event": "Order Completed",
        "messageId": message_id,
        "properties": {"total": 1},
        "timestamp": iso(t).replace("Z", ".000Z"),
    }
    return request(t, "POST", "/v1/track", body)


def _order(t: int, who: str, order: str) -> dict[str, Any]:
    """An order carrying the plan's business key (``data.order_id``)."""
    return event(t, who, "order_completed", {"order_id": order, "total": 5, "currency": "USD"})


def _again(line: dict[str, Any], dt: int) -> dict[str, Any]:
    """The same request logged at ``BASE_TIME + dt`` (a retry: same method, path and body)."""
    return dict(line, time=iso(BASE_TIME + dt))


def _halves(first: list[Any], second: list[Any], tmp_path: Path, name: str) -> Path:
    path = write(tmp_path / name, [*first, *second])
    cut = shares.plan_shares([path], 2, splittable=splittable)
    assert cut is not None and cut[1].first_line == len(first) + 1  # the halves are the shares
    return path


def test_repeats_of_earlier_shares_are_counted_where_they_land(tmp_path: Path) -> None:
    """Repeats whose first copy is in the other share: counted, with their examples (and
    retry bursts, and messageId copy numbers) as one process finds them, in order."""
    first = [
        event(BASE_TIME + i, f"u{i}", "Order Completed", {"n": i}, id=f"id{i}") for i in range(6)
    ]
    first += [_track(BASE_TIME + 10, "u1", "m-1"), _track(BASE_TIME + 11, "u2", "m-2")]
    first += [_order(BASE_TIME + 12, "u3", "A-1"), _track(BASE_TIME + 13, "u3", "m-3")]
    first += [event(BASE_TIME + 20 + i, f"w{i}", "Viewed", {"k": i}) for i in range(len(first), 14)]
    second = [
        _again(first[2], 30),  # a retry burst: 28 s after the first copy
        event(BASE_TIME + 40, "u9", "Order Completed", {"n": 0}, id="id0"),  # an event id again
        _track(BASE_TIME + 41, "u1", "m-1"),  # copy 2 of m-1
        _track(BASE_TIME + 42, "u1", "m-1"),  # copy 3 of m-1, seen again within this share
        _track(BASE_TIME + 43, "u2", "m-2"),  # copy 2 of m-2
        _order(BASE_TIME + 44, "u4", "A-1"),  # the business key again
        _again(first[4], 4000),  # a repeat, not a burst
        event(BASE_TIME + 45, "u9", "Order Completed", {"n": 0}, id="id0"),  # within the share
    ]
    second += [event(BASE_TIME + 50 + i, f"x{i}", "Viewed", {"k": i}) for i in range(6)]
    path = _halves(first, second, tmp_path, "repeats.jsonl")
    plan = load_plan(PLAN)
    report = _decoded(_same_for_all_jobs([path], plan=plan))  # merged, not run again
    found = {f["id"]: f for f in report["findings"]}
    where = f"{path}:"
    requests = found["duplicates.requests"]
    assert requests["examples"][:2] == [
        {"where": where + "15", "detail": "identical to an earlier request 28 s before"},
        {"where": where + "21", "detail": "identical to an earlier request"},
    ]
    assert [e["detail"] for e in found["duplicates.message_ids"]["examples"]] == [
        "messageId 'm-1' sent again (copy 2)",
        "messageId 'm-1' sent again (copy 3)",
        "messageId 'm-2' sent again (copy 2)",
    ]
    assert [e["detail"] for e in found["duplicates.event_ids"]["examples"]] == [
        "event id 'id2' was sent before",  # the retries repeat their event ids too
        "event id 'id0' was sent before",
        "event id 'id4' was sent before",
    ]
    assert found["duplicates.event_ids"]["count"] == 4


def test_a_window_one_share_fills_does_not_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A share's own messageIds outgrow the window, and the earlier share's one is among them:
    merging would not reach the cap, but the share dropped a first sighting that one process
    keeps (evicting older ones), so the audit runs again in one process, even where the
    projection does not see the cap coming."""
    monkeypatch.setattr(parallel, "PROJECT_SHARE", 1e9)  # never recorded as projected
    first = [_track(BASE_TIME, "u1", "m-1")]
    ids = ["m-1", "m-2", "m-3", "m-4", "m-2", "m-1"]
    calls = [msgspec.json.decode(_track(BASE_TIME + 30, "u1", m)["body"]) for m in ids]
    second = [request(BASE_TIME + 30, "POST", "/v1/batch", {"batch": calls})]
    paths = []
    for name, lines in (("a", first), ("b", second)):
        gz = tmp_path / f"{name}.jsonl.gz"  # one share each
        gz.write_bytes(gzip.compress(write(tmp_path / f"{name}.jsonl", lines).read_bytes()))
        paths.append(gz)
    limits = Limits(duplicate_window=3)
    assert not _merged(paths, limits)
    one = _same_for_all_jobs(paths, limits=limits)
    assert any(c.startswith("repeated messageIds: only") for c in _decoded(one)["caps"])


def test_people_linked_across_shares(tmp_path: Path) -> None:
    """Keyed by email in one share, by id in another, linked by an identify in a third."""
    first = [event(BASE_TIME + i, f"p{i}@example.com", "Viewed", {"k": i}) for i in range(8)]
    second = [event(BASE_TIME + 20 + i, f"p{i}", "Viewed", {"k": i}) for i in range(8)]
    third = [identify(BASE_TIME + 40 + i, f"p{i}", f"a{i}") for i in range(0, 8, 2)]
    third += [anonymous(BASE_TIME + 60 + i, f"a{i}", "Viewed") for i in range(8)]
    path = write(tmp_path / "people.jsonl", [*first, *second, *third])
    report = _decoded(_same_for_all_jobs([path]))  # merged, not run again
    found = {f["id"]: f["count"] for f in report["findings"]}
    assert found["identity.people_under_both"] == 4
    assert found["anonymous.orphaned"] == 4


_WHO = st.sampled_from(["a", "b", "7", "a@example.com", "B@example.com ", "c"])
_ATOM = st.one_of(
    st.tuples(
        st.just("event"),
        st.integers(0, 600),
        _WHO,
        st.sampled_from(
            ["Order Completed", "order_completed", "Viewed", "Viewd", "Added To Cart", " "]
        ),
        st.sampled_from([None, "e1", "e2", "e3", 4]),
        st.one_of(st.integers(0, 3), st.text(max_size=3)),  # one property, of either type
    ),
    st.tuples(st.just("order"), st.integers(0, 600), _WHO, st.sampled_from(["A-1", "A-2"])),
    st.tuples(st.just("anon"), st.integers(0, 600), st.sampled_from(["x", "y", "z"])),
    st.tuples(
        st.just("identify"),
        st.integers(0, 600),
        st.sampled_from(["a", "b", "7", "c"]),
        st.sampled_from(["x", "y", "z"]),
    ),
    st.tuples(st.just("track"), st.integers(0, 600), _WHO, st.sampled_from(["m1", "m2", "m3"])),
    st.tuples(st.just("again"), st.integers(0, 10_000), st.integers(0, 120)),
    st.tuples(
        st.just("garbage"),
        st.binary(max_size=20).filter(lambda b: b"\n" not in b).map(lambda b: b + b"\n"),
    ),
)


def _lines(atoms: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    sent: list[tuple[dict[str, Any], int]] = []  # each request line and its time after BASE_TIME
    for atom in atoms:
        kind = atom[0]
        if kind == "again":
            if sent:
                line, t = sent[atom[1] % len(sent)]
                out.append(_again(line, t + atom[2]))
            continue
        if kind == "event":
            _, t, who, name, eid, n = atom
            extra = {} if eid is None else {"id": eid}
            line = event(BASE_TIME + t, who, name, {"n": n}, **extra)
        elif kind == "order":
            t, line = atom[1], _order(BASE_TIME + atom[1], atom[2], atom[3])
        elif kind == "anon":
            t, line = atom[1], anonymous(BASE_TIME + atom[1], atom[2], "Viewed")
        elif kind == "identify":
            t, line = atom[1], identify(BASE_TIME + atom[1], atom[2], atom[3])
        elif kind == "track":
            t, line = atom[1], _track(BASE_TIME + atom[1], atom[2], atom[3])
        else:
            out.append(atom[1])  # any bytes on a line: JSON or not, a record or not
            continue
        out.append(line)
        sent.append((line, t))
    return out


@settings(
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    atoms=st.lists(_ATOM, min_size=1, max_size=40),
    limits=st.sampled_from(
        [
            Limits(),
            Limits(duplicate_window=3, identifiers=3, anonymous_ids=2),
            Limits(duplicate_window=6, identifiers=4),
            Limits(identifiers=2, series=2, anonymous_ids=1),
        ]
    ),
    project=st.sampled_from([0.9, 0.0, 1e9]),  # recorded as projected, always, or never
    every=st.sampled_from([4096, 1]),
    plan=st.booleans(),
    jobs=st.integers(3, 4),
)
def test_random_logs_across_shares(
    tmp_path: Path,
    atoms: list[tuple[Any, ...]],
    limits: Limits,
    project: float,
    every: int,
    plan: bool,
    jobs: int,
) -> None:
    """Repeats, identity links and anonymous events on both sides of share boundaries, with
    caps reached or not, each capped map merged or recorded, among drifting event names,
    properties of either type and lines of any bytes: the report of one process."""
    path = write(tmp_path / "random.jsonl", _lines(atoms))
    kw: dict[str, Any] = {"limits": limits, "plan": load_plan(PLAN) if plan else None}
    one = _report([path], 1, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "PROJECT_SHARE", project)  # forked workers inherit them
        mp.setattr(parallel, "PROJECT_EVERY", every)
        for n in (2, jobs):
            assert _report([path], n, **kw) == one, f"--jobs {n} differs"


def test_a_merge_that_would_reach_a_cap_records_that_share_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first share fills the id set nearly to its cap; the second adds too few ids for its
    worker to see the cap coming, but enough to reach it: the parent audits the second share
    again with its ids recorded, and replays them (the cap is reached where one process
    reaches it), rather than the whole audit again."""
    first = [event(BASE_TIME + i, f"u{i:02d}", "Viewed", {"k": i}) for i in range(19)]
    second = [event(BASE_TIME + 40 + i, f"v{i % 3:02d}", "Viewed", {"k": i}) for i in range(19)]
    path = write(tmp_path / "ids.jsonl", [*first, *second])
    again: list[frozenset[str]] = []
    attempt = parallel._attempt

    def spy(i: int, record: frozenset[str]) -> parallel.Part:
        again.append(record)
        return attempt(i, record)

    monkeypatch.setattr(parallel, "_attempt", spy)
    limits = Limits(identifiers=20)
    assert _merged([path], limits)
    assert again == [frozenset({"p"})]  # in this process (the worker's calls are its own)
    one = _same_for_all_jobs([path], limits=limits)
    assert "more than 20 distinct ids: later ones are not matched" in _decoded(one)["caps"]
