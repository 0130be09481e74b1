"""Benchmark: events per second on one core, trackguard's check beside schema validators.

trackguard does parse + contract + plan + normalize (``Checker(plan).check(request)``). The
peers only *validate* the same plan rules (types, required, enums, min/max, lengths, patterns,
closed objects), through the JSON Schemas of ``trackguard.plan.export.to_json_schema`` or, for
pydantic, models built from the plan's ``PropertySpec``s:

* jsonschema: ``json.loads`` + one ``Draft202012Validator`` per event name, compiled once; both
  ``is_valid`` (stops at the first error) and ``iter_errors`` (every error, as trackguard
  reports every finding) are calibrated and the faster mode is timed;
* fastjsonschema: ``json.loads`` + one compiled validator per event name (``use_default=False``:
  nothing is filled in, only checked);
* pydantic v2: ``model_validate_json(body)`` with strict models, after decoding ``name`` to pick
  the model (a ``msgspec`` decoder reading only ``name``: that decode is part of the cost);
  and, as pydantic's best mode, one ``TypeAdapter`` over the models tagged by ``name``.

Every engine gets the same raw body bytes, built before timing from
``trackguard.check.samples.d2c_traffic(N, seed)``. Peers see the event requests only (that is what
they can check); trackguard is timed on those and on the whole mixed corpus (identifies and
broken requests included). Before timing, every engine's valid/invalid answer is compared with
trackguard's on the event requests where both check the same thing; a disagreement stops the
benchmark, so no engine is measured doing nothing.

Run ``.venv/bin/python bench/validate.py --help``; ``bench/README.md`` explains the output.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from _common import (
    Timing,
    fmt_int,
    fmt_ratio,
    machine_info,
    measure_round_robin,
    package_version,
    peak_rss_mib,
    pin_to_one_core,
    render_table,
)
from trackguard.check.inputs import record_to_request
from trackguard.check.samples import d2c_traffic
from trackguard.contract.operations import Request
from trackguard.contract.routes import RouteMatch, match
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.plan.export import EMAIL_PATTERN, SECONDS_LIMIT, to_json_schema
from trackguard.plan.loader import load_plan
from trackguard.plan.model import EventSpec, Plan, PropertySpec

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_PLAN: Final = ROOT / "examples" / "d2c-plan.yaml"
DEFAULT_EVENTS: Final = 40_000
DEFAULT_REPEATS: Final = 7
TARGET_EVENTS_PER_S: Final = 100_000
TARGET_VS_JSONSCHEMA: Final = 10.0
TARGET_VS_FASTJSONSCHEMA: Final = 1.0
#: Below this share of elapsed time on a CPU, the run was disturbed by other processes.
BUSY_CPU_SHARE: Final = 0.95

Validate = Callable[[bytes], bool]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- corpus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    requests: tuple[Request, ...]  # the whole mixed traffic
    events: tuple[Request, ...]  # the requests whose route is an event call
    bodies: tuple[bytes, ...]  # the event requests' raw bodies, for the peers


def build_corpus(n: int, seed: int, defect_rate: float) -> Corpus:
    requests: list[Request] = []
    for i, record in enumerate(d2c_traffic(n, seed, defect_rate)):
        request = record_to_request(record, f"d2c:{i}")
        if isinstance(request, str):
            raise SystemExit(f"d2c_traffic record {i} is not a request: {request}")
        requests.append(request)
    events = tuple(r for r in requests if _is_event_call(r))
    return Corpus(tuple(requests), events, tuple(r.body for r in events))


def _is_event_call(request: Request) -> bool:
    hit = match(request.method, request.path)
    return isinstance(hit, RouteMatch) and hit.route.action in ("event", "anonymous_event")


# --- engines ----------------------------------------------------------------------------------


@dataclass
class Engine:
    key: str
    label: str
    validate: Validate
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def jsonschema_engine(schemas: dict[str, dict[str, Any]], bodies: Sequence[bytes]) -> Engine:
    """``json.loads`` + a Draft 2020-12 validator per event name, in its faster mode."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    validators = {name: Draft202012Validator(schema) for name, schema in schemas.items()}
    loads = json.loads

    def make(mode: str) -> Validate:
        if mode == "is_valid":
            checks: dict[str, Callable[[Any], bool]] = {
                name: v.is_valid for name, v in validators.items()
            }
        else:
            checks = {name: _all_errors(v) for name, v in validators.items()}

        def validate(body: bytes) -> bool:
            try:
                doc = loads(body)
            except (ValueError, RecursionError):
                return False
            if type(doc) is not dict:
                return False
            name = doc.get("name")
            check = checks.get(name) if type(name) is str else None
            return check is not None and check(doc)

        return validate

    # Calibrate both modes on a slice, then keep the faster one.
    sample = list(bodies[: min(len(bodies), 2_000)])
    modes = {mode: make(mode) for mode in ("is_valid", "iter_errors")}

    def loop_of(fn: Validate) -> Callable[[], None]:
        def loop() -> None:
            for body in sample:
                fn(body)

        return loop

    calib = measure_round_robin(
        {m: loop_of(fn) for m, fn in modes.items()},
        {m: len(sample) for m in modes},
        repeats=5,
    )
    fastest = {m: t.spread[1] for m, t in calib.items()}  # best run: the least disturbed
    best = max(fastest, key=fastest.__getitem__)
    other = "iter_errors" if best == "is_valid" else "is_valid"
    slower = fastest[best] / fastest[other]
    version = package_version("jsonschema")
    return Engine(
        key="jsonschema",
        label=f"jsonschema {version} ({best})",
        validate=modes[best],
        note=f"mode {best}: {other} was {slower:.2f}x slower in a calibration on "
        f"{len(sample):,} bodies (best of 5 runs each)",
        extra={
            "mode": best,
            "calibration_best_per_second": fastest,
        },
    )


def _all_errors(validator: Any) -> Callable[[Any], bool]:
    """``iter_errors`` mode: every error is produced, as trackguard reports every finding."""
    iter_errors = validator.iter_errors

    def check(doc: Any) -> bool:
        return not list(iter_errors(doc))

    return check


def fastjsonschema_engine(schemas: dict[str, dict[str, Any]], *, decoder: str) -> Engine:
    """A compiled fastjsonschema validator per event name, fed by ``json.loads`` or msgspec."""
    import fastjsonschema
    from fastjsonschema import JsonSchemaValueException

    compiled = {
        # detailed_exceptions=False would only speed up the invalid path, and fastjsonschema
        # 2.22.3 cannot compile ``const`` with it (KeyError 'definition_rule').
        name: fastjsonschema.compile(schema, use_default=False)
        for name, schema in schemas.items()
    }
    if decoder == "json":
        loads: Callable[[bytes], Any] = json.loads
        errors: tuple[type[BaseException], ...] = (ValueError, RecursionError)
    else:
        loads = msgspec.json.Decoder().decode
        errors = (msgspec.DecodeError, RecursionError)

    def validate(body: bytes) -> bool:
        try:
            doc = loads(body)
        except errors:
            return False
        if type(doc) is not dict:
            return False
        name = doc.get("name")
        fn = compiled.get(name) if type(name) is str else None
        if fn is None:
            return False
        try:
            fn(doc)
        except JsonSchemaValueException:
            return False
        return True

    version = package_version("fastjsonschema")
    if decoder == "json":
        return Engine("fastjsonschema", f"fastjsonschema {version}", validate)
    return Engine(
        "fastjsonschema_msgspec",
        f"fastjsonschema {version} + msgspec decode",
        validate,
        note="context only: the same validators fed by msgspec instead of json.loads",
    )


def pydantic_engines(plan: Plan) -> list[Engine]:
    """Strict pydantic v2 models from the plan, dispatched by name, and as one tagged union."""
    from pydantic import ValidationError

    builder = PydanticPlan(plan)
    models = builder.event_models()

    class _Name(msgspec.Struct):
        name: Any = None

    decode_name = msgspec.json.Decoder(_Name).decode
    by_name = {name: model.model_validate_json for name, model in models.items()}

    def dispatched(body: bytes) -> bool:
        try:
            name = decode_name(body).name
        except (msgspec.DecodeError, RecursionError):
            return False
        check = by_name.get(name) if type(name) is str else None
        if check is None:
            return False
        try:
            check(body)
        except ValidationError:
            return False
        return True

    union = builder.tagged_union(models).validate_json

    def tagged(body: bytes) -> bool:
        try:
            union(body)
        except ValidationError:
            return False
        return True

    version = package_version("pydantic")
    return [
        Engine(
            "pydantic",
            f"pydantic {version} (by name)",
            dispatched,
            note="model_validate_json after a msgspec decode of `name` picks the model",
        ),
        Engine(
            "pydantic_union",
            f"pydantic {version} (tagged union)",
            tagged,
            note="one TypeAdapter over the models, discriminated by `name`: one pass",
        ),
    ]


class PydanticPlan:
    """Strict pydantic models stating the same rules as ``to_json_schema`` (default options).

    As the export does: rules whose action is ``warn`` are left out and ``fix`` rules are as
    strict as ``reject``; an optional property may be absent or null (null counts as absent);
    a ``reject`` unplanned policy closes the event's data (``extra="forbid"``, with
    ``schema_version`` still allowed) while nested objects stay open; timestamps are integer
    unix seconds; ``data.schema_version`` picks a version's model (a callable discriminator, as
    the schema's ``if``/``then``/``else``). The sanity check compares the answers with the
    schemas' on the whole corpus, so a drift between the two shows up as a mismatch.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.count = 0

    def _model(self, title: str, specs: tuple[PropertySpec, ...], *, closed: bool) -> Any:
        from pydantic import ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for i, spec in enumerate(specs):
            annotation, constraints = self._annotation(spec, f"{title}_{spec.name}")
            if spec.required and spec.action != "warn":
                fields[f"p{i}"] = (annotation, Field(..., alias=spec.name, **constraints))
            else:
                optional = Annotated[annotation, Field(**constraints)] | None  # type: ignore[valid-type]
                fields[f"p{i}"] = (optional, Field(None, alias=spec.name))
        if closed and not any(spec.name == "schema_version" for spec in specs):
            fields["p_schema_version"] = (Any, Field(None, alias="schema_version"))
        self.count += 1
        config = ConfigDict(strict=True, extra="forbid" if closed else "ignore")
        return create_model(f"M{self.count}_{_ident(title)}", __config__=config, **fields)

    def _annotation(self, spec: PropertySpec, title: str) -> tuple[Any, dict[str, Any]]:
        if spec.type == "object" and spec.properties is not None:
            # members keep their own actions, and nested objects stay open (as exported)
            return self._model(title, spec.properties, closed=False), {}
        if spec.action == "warn":
            return Any, {}
        constraints: dict[str, Any] = {}
        if spec.type == "timestamp":
            constraints.update(ge=0, lt=SECONDS_LIMIT)
        if spec.minimum is not None:
            constraints["ge"] = max(spec.minimum, constraints.get("ge", spec.minimum))
        if spec.maximum is not None:
            constraints["le"] = spec.maximum
        for key, value in (
            ("min_length", spec.min_length),
            ("max_length", spec.max_length),
            ("min_length", spec.min_items),
            ("max_length", spec.max_items),
        ):
            if value is not None:
                constraints[key] = value
        patterns = [p for p in (EMAIL_PATTERN if spec.type == "email" else None, spec.pattern) if p]
        annotation = _scalar(spec.type, spec.values)
        if spec.type == "array" and spec.items is not None:
            annotation = list[_scalar(spec.items, None)]  # type: ignore[misc]
        if len(patterns) == 1:
            constraints["pattern"] = patterns[0]
        elif patterns:
            annotation = Annotated[annotation, _all_patterns(patterns)]
        return annotation, constraints

    def data_model(self, event: EventSpec) -> tuple[Any, bool]:
        """The model of ``data`` and whether ``data`` is required (as the schema says)."""
        from pydantic import Discriminator, Tag

        policy = event.unplanned_properties or self.plan.unplanned.properties
        base = self._model(event.name, event.properties, closed=policy == "reject")
        required = any(p.required and p.action != "warn" for p in event.properties)
        if not event.versions:
            return base, required
        tags: dict[Any, str] = {}
        members: list[Any] = [Annotated[base, Tag("base")]]
        for version in event.versions:
            closed = (version.unplanned_properties or policy) == "reject"
            title = f"{event.name}_v{version.version}"
            model = self._model(title, version.properties, closed=closed)
            members.append(Annotated[model, Tag(title)])
            tags.setdefault(version.version, title)
            if version.version.isdigit():
                tags.setdefault(int(version.version), title)

        def pick(value: Any) -> str:
            if isinstance(value, dict):
                tag = value.get("schema_version")
                if type(tag) in (str, int):
                    return tags.get(tag, "base")
            return "base"

        return Annotated[Union[tuple(members)], Discriminator(pick)], required  # noqa: UP007

    def event_models(self) -> dict[str, Any]:
        from pydantic import ConfigDict, Field, create_model

        out: dict[str, Any] = {}
        for name, event in self.plan.events.items():
            data, required = self.data_model(event)
            fields: dict[str, Any] = {
                "name": (Literal[name], ...),
                "data": (data, ...) if required else (data | None, None),
            }
            if self.plan.timestamps.action != "warn":
                seconds = Annotated[int, Field(ge=0, lt=SECONDS_LIMIT)] | None
                fields["timestamp"] = (seconds, None)
            config = ConfigDict(strict=True, extra="ignore")
            out[name] = create_model(f"Event_{_ident(name)}", __config__=config, **fields)
        return out

    def tagged_union(self, models: dict[str, Any]) -> Any:
        from pydantic import Field, TypeAdapter

        members = tuple(models.values())
        if len(members) == 1:
            return TypeAdapter(members[0])
        union: Any = Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007
        return TypeAdapter(union)


def _ident(text: str) -> str:
    return re.sub(r"\W", "_", text)


def _scalar(kind: str, values: tuple[Any, ...] | None) -> Any:
    from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr

    if kind == "enum":
        return Literal[tuple(values or ())]
    simple: dict[str, Any] = {
        "string": StrictStr,
        "email": StrictStr,
        "number": StrictFloat,  # strict floats take JSON integers too, as a JSON number does
        "integer": StrictInt,
        "timestamp": StrictInt,
        "boolean": StrictBool,
        "object": dict[str, Any],
        "array": list[Any],
    }
    return simple.get(kind, Any)


def _all_patterns(patterns: list[str]) -> Any:
    from pydantic import AfterValidator

    compiled = [re.compile(p) for p in patterns]

    def check(value: str) -> str:
        if any(p.search(value) is None for p in compiled):
            raise ValueError("does not match every pattern")
        return value

    return AfterValidator(check)


# --- sanity: do the engines check the same thing? ---------------------------------------------

#: Findings of trackguard that a body schema cannot state (the path's identifier, warnings).
_NOT_IN_SCHEMA: Final = frozenset(
    {
        "identity_anonymous",
        "identity_not_canonical",
        "identity_email_in_id",
        "schema_version_unknown",
    }
)
_decode_any = msgspec.json.Decoder().decode


def ours_valid_as_sent(verdict: Verdict, body: bytes, planned: frozenset[str]) -> bool | None:
    """Would the body pass the plan untouched, judged on what a schema can state?

    ``None`` when the peers cannot judge it the same way: the event name as sent is not a
    planned name (an alias, a drifted or an unplanned name: trackguard renames or warns, the
    peers have no schema for it). Warn-level findings do not count (the export leaves them
    out), nor do findings about the path's identifier (a body schema cannot see the path).
    """
    if verdict.contract_errors:
        return False
    try:
        doc = _decode_any(body)
    except msgspec.DecodeError:
        return False
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str) or name not in planned:
        return None
    return not any(v.action != "warn" and v.code not in _NOT_IN_SCHEMA for v in verdict.violations)


@dataclass
class Agreement:
    compared: int = 0
    agreed: int = 0
    excluded: int = 0
    peer_valid: int = 0
    mismatches: list[tuple[int, bool, bool]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def check_agreement(
    checker: Checker, corpus: Corpus, engines: list[Engine]
) -> tuple[dict[str, Agreement], dict[str, Any]]:
    planned = frozenset(checker.plan.events if checker.plan else ())
    ours = [ours_valid_as_sent(checker.check(r), r.body, planned) for r in corpus.events]
    results: dict[str, Agreement] = {}
    answers: dict[str, list[bool]] = {}
    for engine in engines:
        agreement = Agreement()
        answers[engine.key] = [engine.validate(b) for b in corpus.bodies]
        for i, (mine, theirs) in enumerate(zip(ours, answers[engine.key], strict=True)):
            agreement.peer_valid += theirs
            if mine is None:
                agreement.excluded += 1
                continue
            agreement.compared += 1
            if mine == theirs:
                agreement.agreed += 1
            elif len(agreement.mismatches) < 5:
                agreement.mismatches.append((i, mine, theirs))
        results[engine.key] = agreement
    keys = list(answers)
    peers_agree = (
        sum(len({answers[k][i] for k in keys}) == 1 for i in range(len(corpus.bodies)))
        if keys
        else 0
    )
    outcomes = Counter(checker.check(r).outcome for r in corpus.requests)
    summary = {
        "event_requests": len(corpus.events),
        "ours_valid_as_sent": sum(1 for o in ours if o),
        "ours_invalid_as_sent": sum(1 for o in ours if o is False),
        "not_comparable": sum(1 for o in ours if o is None),
        "peers_agree_with_each_other": peers_agree,
        "outcomes_all_requests": dict(outcomes.most_common()),
    }
    return results, summary


# --- profile ----------------------------------------------------------------------------------


def profile_loop(loop: Callable[[], None], requests: int, top: int) -> dict[str, Any]:
    """cProfile one pass of ``loop``: calls per request and the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    loop()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({func})",
                "calls": nc,
                "tottime_s": tt,
                "tottime_share": tt / total if total else 0.0,
                "cumtime_s": ct,
                "primitive_calls": cc,
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    calls = sum(r["calls"] for r in rows)
    return {"requests": requests, "calls_per_request": calls / requests, "top": rows[:top]}


def _short(filename: str) -> str:
    marker = f"{os.sep}trackguard{os.sep}"
    if marker in filename:
        return "trackguard/" + filename.rsplit(marker, 1)[1]
    return filename.rsplit(os.sep, 1)[-1]


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/validate.py",
        description="Events/s of trackguard's check beside jsonschema, fastjsonschema and "
        "pydantic v2 validating the same plan, on one core.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        metavar="N",
        help=f"requests generated by d2c_traffic (default {DEFAULT_EVENTS:,})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"timed runs per engine; the median is reported (default {DEFAULT_REPEATS})",
    )
    parser.add_argument("--seed", type=int, default=7, help="d2c_traffic seed (default 7)")
    parser.add_argument(
        "--defect-rate",
        type=float,
        default=0.05,
        help="share of event requests with a defect: 0.05 (default) is production-like, "
        "0.33 is the demo's defect-heavy traffic",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        default=DEFAULT_PLAN,
        help="tracking plan YAML (default examples/d2c-plan.yaml)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="figures from elapsed time (default) or from this process's CPU time, which "
        "leaves out time other processes held the core (for a busy machine)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=25,
        default=0,
        metavar="TOP",
        help="also cProfile trackguard's loop and list the TOP functions by own time (default 25)",
    )
    args = parser.parse_args(argv)
    if args.events < 100:
        parser.error("--events must be at least 100")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    pinned = pin_to_one_core()
    plan = load_plan(args.plan)
    checker = Checker(plan)
    schemas = to_json_schema(plan)

    log(
        f"building the corpus: d2c_traffic({args.events:,}, seed={args.seed}, "
        f"defect_rate={args.defect_rate}) ..."
    )
    corpus = build_corpus(args.events, args.seed, args.defect_rate)

    log("compiling peers ...")
    engines = [
        jsonschema_engine(schemas, corpus.bodies),
        fastjsonschema_engine(schemas, decoder="json"),
        *pydantic_engines(plan),
        fastjsonschema_engine(schemas, decoder="msgspec"),
    ]

    log("sanity: comparing valid/invalid answers ...")
    agreements, sanity = check_agreement(checker, corpus, engines)
    failed = [k for k, a in agreements.items() if a.compared == 0 or a.agreed != a.compared]

    check = checker.check
    requests, events = corpus.requests, corpus.events

    def ours_all() -> None:
        for request in requests:
            check(request)

    def ours_events() -> None:
        for request in events:
            check(request)

    def peer_loop(fn: Validate) -> Callable[[], None]:
        bodies = corpus.bodies

        def loop() -> None:
            for body in bodies:
                fn(body)

        return loop

    timings: dict[str, Timing] = {}
    if not failed:
        runs: dict[str, Callable[[], None]] = {"ours_all": ours_all, "ours_events": ours_events}
        items = {"ours_all": len(requests), "ours_events": len(events)}
        for engine in engines:
            runs[engine.key] = peer_loop(engine.validate)
            items[engine.key] = len(corpus.bodies)
        log(f"timing {len(runs)} loops x {args.repeats} repeats (round robin) ...")
        timed = measure_round_robin(runs, items, repeats=args.repeats, progress=log)
        timings = {key: t.using(args.clock) for key, t in timed.items()}

    profile = (
        profile_loop(ours_all, len(requests), args.profile) if args.profile and not failed else {}
    )
    report = build_report(
        args,
        pinned,
        plan,
        corpus,
        engines,
        agreements,
        sanity,
        timings,
        profile,
        time.perf_counter() - started,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, engines, agreements, corpus)
    if failed:
        log(f"sanity check failed for: {', '.join(failed)} (no timing done)")
        return 1
    return 0


def build_report(
    args: argparse.Namespace,
    pinned: int | None,
    plan: Plan,
    corpus: Corpus,
    engines: list[Engine],
    agreements: dict[str, Agreement],
    sanity: dict[str, Any],
    timings: dict[str, Timing],
    profile: dict[str, Any],
    elapsed: float,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "validate",
        "machine": machine_info(pinned),
        "versions": {
            dist: package_version(dist)
            for dist in (
                "trackguard",
                "msgspec",
                "jsonschema",
                "fastjsonschema",
                "pydantic",
                "pydantic-core",
            )
        },
        "corpus": {
            "generator": f"trackguard.check.samples.d2c_traffic({args.events}, seed={args.seed}, "
            f"defect_rate={args.defect_rate})",
            "requests": len(corpus.requests),
            "event_requests": len(corpus.events),
            "body_bytes_mean": sum(map(len, corpus.bodies)) / max(1, len(corpus.bodies)),
            "plan": str(args.plan),
            "plan_version": plan.version,
        },
        "repeats": args.repeats,
        "clock": args.clock,
        "cpu_share": (
            sum(sum(t.cpu_s) for t in timings.values())
            / sum(sum(t.wall_s) for t in timings.values())
            if timings
            else None
        ),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "sanity": {
            **sanity,
            "engines": {
                key: {
                    "compared": a.compared,
                    "agreed": a.agreed,
                    "agreement": a.rate,
                    "not_comparable": a.excluded,
                    "peer_valid": a.peer_valid,
                    "mismatches": [
                        {
                            "event_index": i,
                            "ours_valid": o,
                            "peer_valid": p,
                            "body": corpus.bodies[i].decode("utf-8", "replace"),
                        }
                        for i, o, p in a.mismatches
                    ],
                }
                for key, a in agreements.items()
            },
        },
        "results": {},
        "targets": {},
        "profile": profile,
        "peak_rss_mib": peak_rss_mib(),
        "elapsed_s": elapsed,
    }
    if not timings:
        return report
    ours = timings["ours_events"]
    results: dict[str, Any] = {
        "ours_all": {
            "label": "trackguard, all requests (parse+contract+plan+normalize)",
            **timings["ours_all"].as_dict(),
        },
        "ours_events": {
            "label": "trackguard, event requests (parse+contract+plan+normalize)",
            **ours.as_dict(),
        },
    }
    for engine in engines:
        t = timings[engine.key]
        results[engine.key] = {
            "label": engine.label,
            **t.as_dict(),
            "ratio_ours_over_engine": ours.per_second / t.per_second,
            "note": engine.note,
            **engine.extra,
        }
    report["results"] = results
    worst_ours = min(timings["ours_all"].per_second, ours.per_second)
    vs_js = results["jsonschema"]["ratio_ours_over_engine"]
    vs_fjs = results["fastjsonschema"]["ratio_ours_over_engine"]
    report["targets"] = {
        "events_per_s": {
            "target": TARGET_EVENTS_PER_S,
            "value": worst_ours,
            "pass": worst_ours >= TARGET_EVENTS_PER_S,
        },
        "vs_jsonschema": {
            "target": TARGET_VS_JSONSCHEMA,
            "value": vs_js,
            "pass": vs_js >= TARGET_VS_JSONSCHEMA,
        },
        "vs_fastjsonschema": {
            "target": TARGET_VS_FASTJSONSCHEMA,
            "value": vs_fjs,
            "pass": vs_fjs >= TARGET_VS_FASTJSONSCHEMA,
        },
    }
    return report


def print_report(
    report: dict[str, Any], engines: list[Engine], agreements: dict[str, Agreement], corpus: Corpus
) -> None:
    m, v, c = report["machine"], report["versions"], report["corpus"]
    pinned = f"pinned to CPU {m['pinned_cpu']}" if m["pinned_cpu"] is not None else "not pinned"
    print(
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {pinned}; {m['python']}; {m['platform']}"
    )
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(
        f"corpus: {c['generator']}: {c['requests']:,} requests, {c['event_requests']:,} event "
        f"requests (mean body {c['body_bytes_mean']:.0f} B); plan {c['plan']} "
        f"({c['plan_version']}); median of {report['repeats']} runs, round robin, "
        f"{report['clock']} clock"
    )
    s = report["sanity"]
    outcomes = ", ".join(f"{k} {n:,}" for k, n in s["outcomes_all_requests"].items())
    print(f"trackguard outcomes over all requests: {outcomes}")
    print()
    print(
        f"sanity (event requests; trackguard 'valid as sent' = no contract error and no "
        f"reject/fix finding a schema can state): {s['ours_valid_as_sent']:,} valid, "
        f"{s['ours_invalid_as_sent']:,} invalid, {s['not_comparable']:,} not comparable "
        f"(name not planned as sent: alias, drift or unplanned)"
    )
    for engine in engines:
        a = agreements[engine.key]
        status = "ok" if a.compared and a.agreed == a.compared else "MISMATCH"
        print(
            f"  {engine.label:<44} agrees on {a.agreed:,}/{a.compared:,} "
            f"({a.rate:.2%}), says valid {a.peer_valid:,}/{len(corpus.bodies):,}: {status}"
        )
        for i, mine, theirs in a.mismatches:
            body = corpus.bodies[i].decode("utf-8", "replace")
            print(
                f"      event #{i}: trackguard {'valid' if mine else 'invalid'}, "
                f"{engine.key} {'valid' if theirs else 'invalid'}: {body[:160]}"
            )
    print(
        f"  peers agree with each other on {s['peers_agree_with_each_other']:,}/"
        f"{s['event_requests']:,} event requests"
    )
    results = report["results"]
    if not results:
        return
    print()
    rows = []
    for r in results.values():
        ratio = fmt_ratio(r["ratio_ours_over_engine"]) if "ratio_ours_over_engine" in r else "-"
        slow, fast = fmt_int(r["per_second_min"]), fmt_int(r["per_second_max"])
        rows.append(
            [
                r["label"],
                fmt_int(r["per_second"]),
                f"{r['us_per_item']:.2f}",
                f"{slow}..{fast}",
                ratio,
            ]
        )
    print(
        render_table(
            ["engine", "events/s", "µs/event", "runs min..max", "ratio (ours events / engine)"],
            rows,
            "lrrrr",
        )
    )
    for engine in engines:
        if engine.note:
            print(f"  {engine.label}: {engine.note}")
    share, load = report["cpu_share"], report["load_average"]
    if share is not None and share < BUSY_CPU_SHARE:
        load_text = f"; load average {load[0]:.2f}" if load else ""
        print(
            f"  warning: the benchmark had its core only {share:.0%} of the time (other processes"
            f"{load_text}); figures on the {report['clock']} clock"
            + (
                ": rerun on a quiet machine or with --clock cpu"
                if report["clock"] == "wall"
                else ""
            )
        )
    t = report["targets"]
    verdict = {True: "PASS", False: "FAIL"}
    print()
    print(
        f"target: >= {TARGET_EVENTS_PER_S:,} events/s: {verdict[t['events_per_s']['pass']]} "
        f"({fmt_int(t['events_per_s']['value'])}, the lower of our two rows); "
        f">= {TARGET_VS_JSONSCHEMA:g}x jsonschema: {verdict[t['vs_jsonschema']['pass']]} "
        f"({fmt_ratio(t['vs_jsonschema']['value'])}); "
        f">= fastjsonschema: {verdict[t['vs_fastjsonschema']['pass']]} "
        f"({fmt_ratio(t['vs_fastjsonschema']['value'])})"
    )
    profile = report["profile"]
    if profile:
        print()
        print(
            f"cProfile of trackguard over all requests (one run; profiling slows it down): "
            f"{profile['calls_per_request']:.0f} function calls per request; top by own time:"
        )
        prows = [
            [
                p["function"],
                f"{p['calls']:,}",
                f"{p['tottime_s'] * 1e3:.1f}",
                f"{p['tottime_share']:.1%}",
                f"{p['cumtime_s'] * 1e3:.1f}",
            ]
            for p in profile["top"]
        ]
        print(
            render_table(["function", "calls", "tottime ms", "share", "cumtime ms"], prows, "lrrrr")
        )
    print()
    print(f"peak RSS {report['peak_rss_mib']:.0f} MiB; whole run {report['elapsed_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
