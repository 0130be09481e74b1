"""The audit's hot loop: each record through the core ``Checker``, its verdict into censuses.

The audit never re-decides what Customer.io or the plan would do: contract errors, plan
violations and fixes come from the same :class:`~trackguard.core.pipeline.Checker` the gateway
uses (a Pipelines API request: the Pipelines contract, then the same plan; see
:mod:`trackguard.check.judge`). What the verdict does not carry (raw names before a fix,
rejected items' names, log status and time, a Pipelines call's messageId and the calls that API
drops) is read from the record itself. Values a plan fixed are counted as *sent*
(``Change.before``), since the audit describes what the apps send.
"""

from __future__ import annotations

import enum
import time
from typing import Any, Final, Literal

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import EventCensus
from trackguard.audit.clock import SECONDS_Z, LogClock
from trackguard.audit.duplicates import DuplicateCensus
from trackguard.audit.identity import AnonymousCensus, IdentityCensus
from trackguard.audit.readers import Record, Unreadable
from trackguard.audit.tally import Tally
from trackguard.audit.timeline import WIDTHS, TimelineCensus
from trackguard.check.judge import Judge
from trackguard.contract.check import decode_body
from trackguard.contract.pipelines import PipelinesResult
from trackguard.contract.pipelines.routes import PREFIX as PIPELINES_PREFIX
from trackguard.contract.routes import NoRoute, RouteMatch, match
from trackguard.core.fastpath import FastContract
from trackguard.core.keys import ID_PREFIX, RETRY_PREFIX
from trackguard.core.pipelines import MESSAGE_ID_PREFIX
from trackguard.core.verdict import Verdict
from trackguard.plan.model import Plan

_V1_EVENT_ROUTES: Final = frozenset(
    {"POST /api/v1/customers/{identifier}/events", "POST /api/v1/events"}
)
_V2_ENTITY: Final = "POST /api/v2/entity"
_V2_BATCH: Final = "POST /api/v2/batch"
_NOT_EVENTS: Final = ("page", "screen")
#: Dedupe keys that are not the plan's business keys (reported elsewhere, or not at all).
_NOT_BUSINESS_KEYS: Final = (ID_PREFIX, RETRY_PREFIX, MESSAGE_ID_PREFIX)
#: Route matches kept by (method, path): a log repeats its people's paths. Cleared when full.
ROUTE_CACHE: Final = 16_384
#: Error messages kept by response text: a log repeats the same few error responses.
RESPONSE_CACHE: Final = 256


class Pipelines(enum.Enum):
    """The route cache's answer for a Pipelines API path (judged by ``Judge.pipelines``)."""

    PATH = 0


PIPELINES: Final = Pipelines.PATH


def response_messages(text: str | None) -> list[str]:
    """Customer.io's error messages in a response body (v1 ``meta``, v2 ``errors``)."""
    if not text:
        return []
    ok, body = decode_body(text.encode("utf-8", "surrogatepass"))
    if not ok or not isinstance(body, dict):
        return []
    out: list[str] = []
    meta = body.get("meta")
    if isinstance(meta, dict):
        errors = meta.get("errors")
        if isinstance(errors, list):
            out.extend(str(e) for e in errors)
        if isinstance(meta.get("error"), str):
            out.append(meta["error"])
    errors = body.get("errors")
    if isinstance(errors, list):
        for e in errors:
            if isinstance(e, dict) and "message" in e:
                out.append(str(e["message"]))
    if not out and isinstance(body.get("message"), str):
        out.append(body["message"])
    return out


class Auditor:
    """Accumulates everything the report needs from a stream of records."""

    def __init__(
        self, plan: Plan | None = None, *, now: int | None = None, limits: Limits | None = None
    ) -> None:
        self.plan = plan
        self.limits = limits = limits or Limits()
        self.now = int(time.time()) if now is None else now
        self.caps = caps = CapLog()
        self.judge = Judge(plan, fallback_keys=False)  # only the plan's keys are reported
        self.checker = self.judge.checker
        fast = self.checker.fast
        #: The checker's fast path, tried here first (``Checker.check``'s own first step).
        self.fast = fast.check if fast is not None else None
        #: Without a plan (the contract's fast path), a clean v1 track call is counted from the
        #: fast path's parts alone. (Only the plan's dedupe keys are reported, so such a call
        #: has none to count.)
        self.clean_event = fast.clean_event if type(fast) is FastContract else None
        self.routes: dict[tuple[str, str], RouteMatch | NoRoute | Literal[Pipelines.PATH]] = {}
        self.responses: dict[str | None, list[str]] = {}  # response text -> its messages
        self.clock = LogClock()
        self.minutes = self.clock.minutes  # the clock's cache, read in the hot loop
        self.pipelines = 0  # Pipelines API requests
        self.bad_times = 0
        self.verdicts: dict[tuple[str, int | None], int] = {}  # (outcome, log status) -> requests
        per = limits.examples
        self.contract = Tally("contract errors", caps, limit=limits.codes, per_key=per)
        self.warnings = Tally("contract warnings", caps, limit=limits.codes, per_key=per)
        self.violations = Tally("plan violations", caps, limit=limits.codes, per_key=per)
        self.rejected_by_log = Tally("log rejections", caps, limit=limits.codes, per_key=per)
        self.disagreements = Tally("disagreements", caps, limit=16, per_key=per)
        self.unreadable = Tally("unreadable lines", caps, limit=limits.codes, per_key=per)
        self.events = EventCensus(limits, caps)
        self.attribute_census = EventCensus(limits, caps)
        self.identity = IdentityCensus(limits, caps)
        self.anonymous = AnonymousCensus(limits, caps)
        self.duplicates = DuplicateCensus(limits, caps)
        self.timeline = TimelineCensus(limits, caps)

    @property
    def requests(self) -> int:
        return sum(self.verdicts.values())

    @property
    def outcomes(self) -> dict[str, int]:
        """Requests per outcome."""
        out: dict[str, int] = {}
        for (outcome, _), n in self.verdicts.items():
            out[outcome] = out.get(outcome, 0) + n
        return out

    @property
    def statuses(self) -> dict[int | None, int]:
        """Requests per status in the log."""
        out: dict[int | None, int] = {}
        for (_, status), n in self.verdicts.items():
            out[status] = out.get(status, 0) + n
        return out

    # --- entry points ---------------------------------------------------------------------------

    def add_unreadable(self, item: Unreadable) -> None:
        tally = self.unreadable
        key = item.reason.split(":", 1)[0].split(" (", 1)[0]  # the kind, without specifics
        if tally.wants_example(key):
            tally.add(key, item.where, item.reason)
        else:
            tally.add(key)

    def add(self, rec: Record) -> None:
        result: PipelinesResult | None = None
        req = rec.request
        path = req.path
        key = (req.method, path)
        hit = self.routes.get(key)
        if hit is None:
            hit = self._route(key)
        status = rec.status
        clean = None
        if hit is PIPELINES:
            result, verdict = self.judge.pipelines(req)
            self.pipelines += 1
            outcome = verdict.outcome
        elif (
            type(hit) is RouteMatch
            and hit.route.action == "event"
            and (status is None or 200 <= status < 300)
            and self.clean_event is not None
            and not hit.not_utf8
        ):
            # A v1 track call the log shows accepted: the fast path's own test, and no verdict
            # built when it passes (counted below, as a verdict of that one operation would be).
            clean = self.clean_event(req, hit)
            if clean is None:  # what the fast path declines: the full walk, as check() goes on
                verdict = self.checker.full(req, hit)
                outcome = verdict.outcome
            else:
                outcome = "accepted"
        else:  # Checker.check, inlined: its fast path, else the full walk
            # (The fast path answers with the full walk's verdict or not at all, and a call the
            # log shows refused is nearly always one it declines: it is not tried for one.)
            fast = self.fast
            found = (
                fast(req, hit) if fast is not None and (status is None or status < 400) else None
            )
            verdict = found if found is not None else self.checker.full(req, hit)
            outcome = verdict.outcome
        verdicts = self.verdicts
        pair = (outcome, status)
        verdicts[pair] = verdicts.get(pair, 0) + 1
        stamp = rec.time
        if stamp is not None:
            # LogClock.parse's common case, inlined: a minute seen before, then "SSZ".
            when = self.minutes.get(stamp[:17])
            if when is not None and (ss := SECONDS_Z.get(stamp[17:])) is not None:
                when += ss
            else:
                when = self.clock.parse(stamp)
            if when is None:
                self.bad_times += 1
                ref = self.now
            else:
                ref = when
        else:
            when = None
            ref = self.now
        if clean is None:
            saw_event = self._walk(rec, verdict, outcome, status, result, when, ref)
        else:  # the walk's loop for the one operation of FastContract.check, inlined
            person, sent, action = clean
            self.identity.person(person.kind, person.value, rec)
            if action != "event":  # a page or screen view
                return
            name = self.events.event(
                sent.get("name"), sent.get("data"), sent.get("timestamp"), ref, rec, req.source
            )
            event_id = sent.get("id")
            if event_id is not None and type(event_id) in (str, int) and event_id != "":
                self.duplicates.event_id(str(event_id), rec)
            if when is not None:
                tl = self.timeline  # TimelineCensus.add's common case, as in the walk
                b = when // WIDTHS[tl.width_index]
                totals = tl.total.get(name)
                if totals is not None and tl.lo <= b <= tl.hi:  # type: ignore[operator]
                    totals[b] = totals.get(b, 0) + 1
                else:
                    tl.add(name, when, False)
            if person.kind == "anonymous_id":
                self.anonymous.event(person.value, when, rec)
            saw_event = True
        if saw_event:
            # DuplicateCensus.request_hash's common case, inlined: a new request, and room for it
            h = hash((req.method, path, req.body))
            window = self.duplicates.seen_requests
            seen = window.map
            if h not in seen and len(seen) < window.limit:
                seen[h] = when if when is not None else -1
            else:
                self.duplicates.request_hash(h, when, rec)

    def _walk(
        self,
        rec: Record,
        verdict: Verdict,
        outcome: str,
        status: int | None,
        result: PipelinesResult | None,
        when: int | None,
        ref: int,
    ) -> bool:
        """Count a verdict's findings and operations; whether the request carried an event
        (its request hash is then counted too)."""
        req = rec.request
        if verdict.contract_errors:
            for e in verdict.contract_errors:
                _count(self.contract, e.code, rec, e.message)
        if verdict.violations:
            for v in verdict.violations:
                if v.rule == "contract":
                    _count(self.warnings, v.code, rec, v.message)
                else:
                    _count(self.violations, (v.code, v.rule, v.action), rec, v.message)
        if status is not None and (status >= 300 or status < 200 or outcome == "invalid"):
            # The Pipelines API answers 200 to what it drops, unless the client asked for strict.
            permissive = result is not None and not result.strict
            self._status(rec, status, verdict, permissive)
        renamed: dict[tuple[int | None, str], Any] | None = None
        if verdict.changes:
            renamed = {(c.batch_index, c.path): c.before for c in verdict.changes}
        saw_event = False
        ops = verdict.operations
        left = len(ops)  # accepted operations still to come: the rest are rejected ones
        if verdict.rejected:
            ops += verdict.rejected
        for op in ops:
            left -= 1
            ident = op.identifier
            if ident is not None and op.type == "person":
                self.identity.person(ident.kind, ident.value, rec)
            action = op.action
            body = op.body
            if action == "event" or action == "anonymous_event":
                if body is None or ((kind := body.get("type")) is not None and kind in _NOT_EVENTS):
                    continue
                if renamed is None and op.api != "pipelines":  # _event's common case, inlined
                    data_key = op.data_key
                    name = self.events.event(
                        body.get("name"),
                        body.get(data_key) if data_key else None,
                        body.get("timestamp"),
                        ref,
                        rec,
                        req.source,
                    )
                    event_id = body.get("id")
                    if event_id is not None and type(event_id) in (str, int) and event_id != "":
                        self.duplicates.event_id(str(event_id), rec)
                    if when is not None:
                        # TimelineCensus.add's common case, inlined: a series in its span
                        tl = self.timeline
                        b = when // WIDTHS[tl.width_index]
                        totals = tl.total.get(name)
                        if totals is not None and tl.lo <= b <= tl.hi:  # type: ignore[operator]
                            totals[b] = totals.get(b, 0) + 1
                            if left < 0:  # a rejected operation
                                bad = tl.invalid[name]
                                bad[b] = bad.get(b, 0) + 1
                        else:
                            tl.add(name, when, left < 0)
                else:
                    self._event(
                        body,
                        op.data_key,
                        op.batch_index,
                        rec,
                        when,
                        ref,
                        left < 0,
                        renamed,
                        op.api == "pipelines",
                    )
                if ident is not None and ident.kind == "anonymous_id":
                    self.anonymous.event(ident.value, when, rec)
                dedupe = op.dedupe_key
                if dedupe is not None and not dedupe.startswith(_NOT_BUSINESS_KEYS):
                    self.duplicates.dedupe_key(dedupe, rec)  # the plan's business keys only
                saw_event = True
            elif action == "identify" and op.type == "person":
                attrs = op.data
                if isinstance(attrs, dict):
                    if ident is not None:
                        self.identity.profile(ident.kind, ident.value, attrs, rec)
                    anon: Any = attrs.get("anonymous_id")
                    if op.api == "pipelines":  # linked by an identify with a userId
                        known = ident is not None and ident.kind != "anonymous_id"
                        anon = body.get("anonymousId") if known and body is not None else None
                    if isinstance(anon, str | int) and not isinstance(anon, bool) and anon != "":
                        self.anonymous.identify(str(anon), when)
                    overrides = _overrides(renamed, op.batch_index, op.data_key or "")
                    self.attribute_census.add("(attributes)", attrs, rec, overrides)
        if result is not None:
            if self._pipelines_calls(rec, result, when, ref):
                saw_event = True
        elif outcome == "invalid" and self._invalid_items(rec, verdict, when, ref):
            saw_event = True
        return saw_event

    # --- pieces ---------------------------------------------------------------------------------

    def _route(self, key: tuple[str, str]) -> RouteMatch | NoRoute | Literal[Pipelines.PATH]:
        """The route match of a (method, path) not in the cache (or :data:`PIPELINES`), cached."""
        method, path = key
        # is_pipelines_path, without the call
        hit = PIPELINES if path.startswith(PIPELINES_PREFIX) else match(method, path)
        routes = self.routes
        if len(routes) >= ROUTE_CACHE:
            routes.clear()
        routes[key] = hit
        return hit

    def _status(self, rec: Record, status: int, verdict: Verdict, permissive: bool) -> None:
        if status >= 400 or status == 207:
            responses = self.responses
            messages = responses.get(rec.response)
            if messages is None:
                messages = response_messages(rec.response)
                if len(responses) >= RESPONSE_CACHE:
                    responses.clear()
                responses[rec.response] = messages
            key = (status, messages[0] if messages else "")
            _count(self.rejected_by_log, key, rec, "; ".join(messages) or f"status {status}")
            if status in (400, 207) and verdict.outcome != "invalid":
                _count(
                    self.disagreements,
                    "log_rejected_contract_accepts",
                    rec,
                    f"the log shows {status}; trackguard's contract accepts the request",
                )
        elif 200 <= status < 300 and verdict.outcome == "invalid" and not permissive:
            codes = ", ".join(e.code for e in verdict.contract_errors)
            _count(
                self.disagreements,
                "log_accepted_contract_rejects",
                rec,
                f"the log shows {status}; trackguard's contract rejects it ({codes})",
            )

    def _event(
        self,
        body: dict[str, Any],
        data_key: str | None,
        index: int | None,
        rec: Record,
        when: int | None,
        ref: int,
        invalid: bool,
        renamed: dict[tuple[int | None, str], Any] | None,
        pipelines: bool = False,
    ) -> None:
        name_key = "event" if pipelines else "name"
        raw = body.get(name_key)
        stamp = body.get("timestamp")
        overrides = None
        if renamed is not None:
            raw = renamed.get((index, name_key), raw)
            stamp = renamed.get((index, "timestamp"), stamp)
            overrides = _overrides(renamed, index, data_key or "data")
        census = self.events
        data = body.get(data_key) if data_key else None
        if pipelines:  # its messageId is counted with every other call's
            key = census.key_for(raw, rec)
            census.add(key, data, rec, overrides, rec.request.source)
            census.pipelines_timestamp(stamp, ref, rec)
        else:
            key = census.event(raw, data, stamp, ref, rec, rec.request.source, overrides)
            event_id = body.get("id")
            if event_id is not None and type(event_id) in (str, int) and event_id != "":
                self.duplicates.event_id(str(event_id), rec)
        if when is not None:
            self.timeline.add(key, when, invalid)

    def _invalid_items(self, rec: Record, verdict: Verdict, when: int | None, ref: int) -> bool:
        """Events inside requests Customer.io rejects: still what the app sent."""
        route = verdict.route
        if route is None:
            return False
        if route in _V1_EVENT_ROUTES:
            if verdict.operations:
                return False
            ok, body = decode_body(rec.request.body)
            if not ok or not isinstance(body, dict) or body.get("type") in _NOT_EVENTS:
                return False
            self._event(body, "data", None, rec, when, ref, True, None)
            return True
        if route not in (_V2_ENTITY, _V2_BATCH):
            return False
        ok, body = decode_body(rec.request.body)
        if not ok or not isinstance(body, dict):
            return False
        items: list[tuple[int | None, Any]]
        if route == _V2_ENTITY:
            items = [(None, body)]
        else:
            batch = body.get("batch")
            if not isinstance(batch, list):
                return False
            bad = sorted(
                {e.batch_index for e in verdict.contract_errors if e.batch_index is not None}
            )
            items = [(i, batch[i]) for i in bad if i < len(batch)]
        seen = False
        for index, item in items:
            if (
                isinstance(item, dict)
                and item.get("type") == "person"
                and item.get("action") == "event"
            ):
                self._event(item, "attributes", index, rec, when, ref, True, None)
                seen = True
        return seen

    def _pipelines_calls(
        self, rec: Record, result: PipelinesResult, when: int | None, ref: int
    ) -> bool:
        """Every call's messageId (SDK retries resend them), and the track calls the
        Pipelines API drops: still what the app sent. True when a dropped call was an event."""
        kind = None if result.route is None or result.route.is_batch else result.route.kind
        calls = [(c.index, c.body) for c in result.calls]
        calls += [(d.index, d.body) for d in result.dropped]
        if result.calls and result.dropped:
            calls.sort(key=lambda c: -1 if c[0] is None else c[0])
        saw_event = False
        duplicates = self.duplicates
        for _index, body in calls:
            if type(body) is not dict:
                continue
            message_id = body.get("messageId")
            if type(message_id) is str and message_id:
                duplicates.message_id(message_id, rec)
        for dropped in result.dropped:
            body = dropped.body
            if type(body) is dict and (kind or body.get("type")) == "track":
                self._event(body, "properties", dropped.index, rec, when, ref, True, None, True)
                saw_event = True
        return saw_event


def _count(tally: Tally, key: Any, rec: Record, detail: str) -> None:
    if tally.wants_example(key):
        tally.add(key, rec.where, detail)
    else:
        tally.add(key)


def _overrides(
    renamed: dict[tuple[int | None, str], Any] | None, index: int | None, data_key: str
) -> dict[str, Any] | None:
    """Top-level data values as sent, for those a plan fix changed."""
    if renamed is None:
        return None
    prefix = f"{data_key}." if data_key else ""
    out: dict[str, Any] = {}
    for (bi, path), before in renamed.items():
        if bi == index and path.startswith(prefix):
            rest = path[len(prefix) :]
            if "." not in rest:
                out[rest] = before
    return out or None
