"""The Pipelines contract: paths, write keys, gzip, sizes, required fields and answers.

Bodies are the ones the official SDKs send (``shared/reference/customerio-pipelines-api.md``
§5), changed one field at a time. Every assertion names the exact code, field and answer.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import pytest
from pipelines_env import BASIC, STRICT, WRITE_KEY, answer, check, codes, request, warnings

from trackguard.contract.operations import Identifier
from trackguard.contract.pipelines import evaluate, is_iso8601, outcome, route_for, to_operation
from trackguard.contract.pipelines import messages as m

PY_IDENTIFY = {
    "integrations": {},
    "anonymousId": None,
    "timestamp": "2024-06-01T12:00:00.265+00:00",
    "context": {"library": {"name": "analytics-python", "version": "1.1.0"}},
    "type": "identify",
    "userId": "u-123",
    "traits": {"email": "a@example.com", "created_at": "2024-01-02T03:04:05+00:00"},
    "messageId": "b11376ae-1d80-4593-af67-fc601f3e8c6c",
}
PY_TRACK = {
    "integrations": {},
    "anonymousId": None,
    "properties": {"total": 12.5, "when": "2024-01-02"},
    "timestamp": "2024-06-01T12:00:00.266+00:00",
    "context": {"library": {"name": "analytics-python", "version": "1.1.0"}},
    "userId": "u-123",
    "type": "track",
    "event": "Order Completed",
    "messageId": "3a187ed6-d2e8-4f86-acbf-167d546f74b9",
}
NODE_TRACK = {
    "timestamp": "2024-06-01T12:00:00.236Z",
    "integrations": {},
    "event": "Order Completed",
    "type": "track",
    "properties": {"total": 12.5},
    "context": {"library": {"name": "@customerio/cdp-analytics-node", "version": "1.0.0-beta.22"}},
    "userId": "u-123",
    "messageId": "node-next-1717243200236-091df8a0-fa98-45e4-97e4-16acce7c51fd",
    "_metadata": {"nodeVersion": "20.20.2", "jsRuntime": "node"},
}
SENT_AT = "2024-06-01T12:00:00.466172+00:00"


def batch(*items: Any, **envelope: Any) -> dict[str, Any]:
    return {"batch": list(items), **envelope}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not ...}


# --- routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "browser"),
    [
        ("/v1/identify", "identify", False),
        ("/v1/track", "track", False),
        ("/v1/page", "page", False),
        ("/v1/screen", "screen", False),
        ("/v1/group", "group", False),
        ("/v1/alias", "alias", False),
        ("/v1/batch", "batch", False),
        ("/v1/i", "identify", True),
        ("/v1/t", "track", True),
        ("/v1/p", "page", True),
        ("/v1/s", "screen", True),
        ("/v1/g", "group", True),
        ("/v1/a", "alias", True),
        ("/v1/b", "batch", True),
        ("/v1/m", "metrics", True),
        ("/v1/batch/", "batch", False),
        ("/v1/track?x=1", "track", False),
    ],
)
def test_every_documented_and_browser_path_has_its_route(
    path: str, kind: str, browser: bool
) -> None:
    route = route_for(path)
    assert route is not None
    assert (route.kind, route.browser) == (kind, browser)


def test_unknown_path_is_404_and_other_methods_405_in_both_modes() -> None:
    for headers in ((BASIC,), (BASIC, STRICT)):
        missing = answer("/v1/delete", {}, *headers)
        assert (missing.status, json.loads(missing.body)) == (
            404,
            {"code": "not_found", "message": "not found", "meta": {"errors": ["not found"]}},
        )
        wrong = answer("/v1/track", b"", *headers, method="GET")
        assert (wrong.status, wrong.allow) == (405, "POST")
        assert json.loads(wrong.body)["code"] == "method_not_allowed"


def test_browser_telemetry_is_answered_200_and_holds_no_call() -> None:
    done = answer("/v1/m", {"series": [{"type": "Counter"}]}, BASIC, STRICT)
    assert (done.status, done.body, done.calls, done.dropped) == (200, b"{}", (), ())


# --- the SDKs' own requests ---------------------------------------------------------------------


def test_python_sdk_batch_is_accepted_whole_and_unchanged() -> None:
    body = batch(PY_IDENTIFY, PY_TRACK, sentAt=SENT_AT)
    result = check("/v1/batch", body, BASIC, STRICT)
    assert (result.errors, result.warnings) == ((), ())
    assert [c.body for c in result.calls] == [PY_IDENTIFY, PY_TRACK]
    assert [c.index for c in result.calls] == [0, 1]
    assert result.envelope == {"sentAt": SENT_AT}
    assert outcome(result, key_accepted=True).status == 200


def test_node_sdk_batch_with_metadata_is_accepted() -> None:
    done = answer("/v1/batch", batch(NODE_TRACK), BASIC, STRICT)
    assert (done.status, done.body) == (200, b"{}")
    assert done.calls[0].body == NODE_TRACK


def test_single_call_endpoint_fills_in_the_type() -> None:
    call = with_(PY_TRACK, type=...)
    result = check("/v1/track", call, BASIC)
    assert result.calls[0].type == "track"
    assert result.calls[0].body == {**call, "type": "track"}
    assert result.calls[0].index is None


def test_a_type_that_contradicts_the_endpoint_is_warned_and_the_endpoint_wins() -> None:
    result = check("/v1/track", with_(PY_TRACK, type="page"), BASIC)
    assert warnings(result) == [("type_mismatch", "type")]
    assert result.calls[0].type == "track"


def test_browser_call_sends_text_plain_with_the_key_in_the_body_which_is_not_kept() -> None:
    body = {
        "type": "page",
        "anonymousId": "anon-1",
        "properties": {"url": "https://shop.example.com/", "path": "/"},
        "writeKey": WRITE_KEY,
        "sentAt": "2024-06-01T12:00:00.500Z",
        "messageId": "ajs-next-1",
    }
    result = check("/v1/p", body, ("content-type", "text/plain"))
    assert result.write_key is not None
    assert (result.write_key.value, result.write_key.source) == (WRITE_KEY, "body")
    assert "writeKey" not in result.calls[0].body
    assert result.calls[0].body == {k: v for k, v in body.items() if k != "writeKey"}
    assert WRITE_KEY not in repr(result.write_key)


def test_browser_batch_keeps_its_envelope_without_the_key() -> None:
    item = {"type": "track", "anonymousId": "a", "event": "Viewed", "messageId": "ajs-1"}
    result = check("/v1/b", {"batch": [item], "writeKey": WRITE_KEY, "sentAt": SENT_AT})
    assert result.envelope == {"sentAt": SENT_AT}
    assert [c.body for c in result.calls] == [item]


# --- write keys ---------------------------------------------------------------------------------


def _basic(text: str) -> tuple[str, str]:
    return ("authorization", "Basic " + base64.b64encode(text.encode()).decode())


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ((_basic("wk:"),), {}, ("wk", "basic")),
        ((_basic("wk:not-empty"),), {}, ("wk", "basic")),  # a password is tolerated
        ((("authorization", "Basic d2s6"),), {}, ("wk", "basic")),  # no padding
        ((("authorization", "basic d2s6"),), {}, ("wk", "basic")),
        ((("authorization", "Basic raw-key"),), {}, ("raw-key", "basic")),  # un-encoded key
        ((("authorization", "Bearer sk_us_abc"),), {}, ("sk_us_abc", "bearer")),
        ((("Authorization", "Bearer  pk_eu_x "),), {}, ("pk_eu_x", "bearer")),
        ((), {"writeKey": "wk"}, ("wk", "body")),
        ((_basic("hdr:"),), {"writeKey": "body"}, ("hdr", "basic")),  # the header wins
    ],
)
def test_write_key_forms(
    headers: tuple[tuple[str, str], ...], body: dict[str, Any], expected: tuple[str, str]
) -> None:
    call = {"userId": "u", "event": "E", **body}
    key = check("/v1/track", call, *headers).write_key
    assert key is not None
    assert (key.value, key.source) == expected


@pytest.mark.parametrize(
    "headers",
    [(), (_basic(":pw"),), (("authorization", "Bearer "),), (("authorization", "Digest x"),)],
)
def test_no_usable_key_is_401_when_strict_and_200_dropping_everything_when_not(
    headers: tuple[tuple[str, str], ...],
) -> None:
    body = batch(PY_IDENTIFY, PY_TRACK)
    result = check("/v1/batch", body, *headers)
    assert result.write_key is None
    lenient = outcome(result, key_accepted=False)
    assert (lenient.status, lenient.body, lenient.calls) == (200, b"{}", ())
    assert [(d.index, d.errors[0].code) for d in lenient.dropped] == [
        (0, "unauthorized"),
        (1, "unauthorized"),
    ]
    strict = outcome(check("/v1/batch", body, *headers, STRICT), key_accepted=False)
    assert strict.status == 401
    assert json.loads(strict.body) == {
        "code": "unauthorized",
        "message": "Unauthorized request",
        "meta": {"errors": ["Unauthorized request"]},
    }


@pytest.mark.parametrize(("value", "strict"), [("1", True), (" 1 ", True), ("true", False)])
def test_only_strict_mode_1_is_strict(value: str, strict: bool) -> None:
    assert check("/v1/track", {}, BASIC, ("X-Strict-Mode", value)).strict is strict
    assert check("/v1/track", {}, BASIC).strict is False


# --- gzip and sizes -----------------------------------------------------------------------------


def test_gzip_body_is_inflated() -> None:
    result = check("/v1/batch", batch(PY_TRACK), BASIC, compress=True)
    assert [c.body for c in result.calls] == [PY_TRACK]


def test_concatenated_gzip_members_are_one_body() -> None:
    raw = json.dumps(batch(PY_TRACK)).encode()
    body = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    result = evaluate(request("/v1/batch", body, BASIC, ("content-encoding", "gzip")))
    assert [c.body for c in result.calls] == [PY_TRACK]


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (b"not gzip at all", "gzip", "invalid_gzip"),
        # truncated; mtime=0 so the test id is the same in every process (pytest-xdist)
        (gzip.compress(b'{"batch":[]}', mtime=0)[:-6], "gzip", "invalid_gzip"),
        (b"", "gzip", "invalid_gzip"),
        (b"{}", "br", "unsupported_encoding"),
    ],
)
def test_bad_encodings_refuse_the_request(body: bytes, encoding: str, code: str) -> None:
    result = evaluate(request("/v1/batch", body, BASIC, STRICT, ("content-encoding", encoding)))
    assert codes(result) == [(code, "")]
    assert result.calls == ()
    assert outcome(result, key_accepted=True).status == 400
    assert outcome(check("/v1/batch", b"", BASIC), key_accepted=True).status == 200


def _padded_batch(size: int) -> bytes:
    """A batch body of exactly ``size`` bytes (valid calls, a padded envelope field)."""
    shell = json.dumps(batch(PY_TRACK, pad=""), separators=(",", ":")).encode()
    return shell.replace(b'"pad":""', b'"pad":"' + b"x" * (size - len(shell)) + b'"')


@pytest.mark.parametrize("compress", [False, True])
def test_request_of_500_kb_is_accepted_and_one_byte_more_refused(compress: bool) -> None:
    at_limit = _padded_batch(m.MAX_REQUEST_BYTES)
    assert len(at_limit) == 512_000
    ok = check("/v1/batch", at_limit, BASIC, compress=compress)
    assert (ok.errors, len(ok.calls)) == ((), 1)
    over = check("/v1/batch", _padded_batch(m.MAX_REQUEST_BYTES + 1), BASIC, compress=compress)
    assert codes(over) == [("request_too_large", "")]
    assert over.calls == ()


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    inflated: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, wbits: int) -> None:
            self._d = real(wbits)
            self.eof, self.unused_data = False, b""

        def decompress(self, data: bytes, max_length: int) -> bytes:
            out = self._d.decompress(data, max_length)
            inflated.append(len(out))
            self.eof, self.unused_data = self._d.eof, self._d.unused_data
            return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zlib, "decompressobj", Spy)
        result = evaluate(request("/v1/batch", bomb, BASIC, ("content-encoding", "gzip")))
    assert codes(result) == [("request_too_large", "")]
    assert sum(inflated) == m.MAX_REQUEST_BYTES + 1


def _call_of_size(size: int) -> dict[str, Any]:
    call = with_(PY_TRACK, properties={"pad": ""})
    shell = len(json.dumps(call, separators=(",", ":")))
    return with_(PY_TRACK, properties={"pad": "x" * (size - shell)})


def test_call_of_32_kb_is_accepted_and_one_byte_more_dropped_alone() -> None:
    at_limit, over = _call_of_size(m.MAX_CALL_BYTES), _call_of_size(m.MAX_CALL_BYTES + 1)
    assert len(json.dumps(over, separators=(",", ":"))) == 32_769
    result = check("/v1/batch", batch(at_limit, over, PY_IDENTIFY), BASIC)
    assert codes(result) == [("call_too_large", "batch[1]")]
    assert [c.index for c in result.calls] == [0, 2]
    assert [d.index for d in result.dropped] == [1]
    single = check("/v1/track", over, BASIC)
    assert codes(single) == [("call_too_large", "")]
    assert check("/v1/track", at_limit, BASIC).errors == ()


# --- body shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[" * 100 + b"]" * 100, "invalid_json"),  # deeper than the cap
        (b"[]", "body_not_object"),
        (b'"x"', "body_not_object"),
    ],
)
def test_unreadable_bodies(body: bytes, code: str) -> None:
    result = check("/v1/batch", body, BASIC)
    assert codes(result) == [(code, "")]
    assert [d.errors[0].code for d in result.dropped] == [code]


@pytest.mark.parametrize("value", [None, {}, "x", 3])
def test_batch_must_be_a_list(value: Any) -> None:
    body = {} if value is None else {"batch": value}
    assert codes(check("/v1/batch", body, BASIC)) == [("batch_not_list", "")]


def test_empty_batch_is_accepted_with_a_warning() -> None:
    result = check("/v1/batch", batch(), BASIC, STRICT)
    assert (codes(result), warnings(result)) == ([], [("empty_batch", "batch")])
    assert outcome(result, key_accepted=True).status == 200


# --- required fields, per type ------------------------------------------------------------------

ANON = {"anonymousId": "anon-1"}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ({"type": "identify", "userId": "u"}, []),
        ({"type": "identify", **ANON}, []),
        ({"type": "identify", "traits": {"email": "a@x.io"}}, []),  # the spec's email variant
        ({"type": "identify"}, [("user_missing", "batch[0].userId")]),
        ({"type": "identify", "userId": "", "anonymousId": ""}, [
            ("user_missing", "batch[0].userId")]),
        ({"type": "identify", "userId": 42}, []),
        ({"type": "identify", "userId": True}, [
            ("user_id_invalid", "batch[0].userId"), ("user_missing", "batch[0].userId")]),
        ({"type": "identify", "userId": "u", "anonymousId": []}, [
            ("anonymous_id_invalid", "batch[0].anonymousId")]),
        ({"type": "track", "userId": "u", "event": "E"}, []),
        ({"type": "track", **ANON, "event": "E"}, []),
        ({"type": "track", "event": "E"}, [("user_missing", "batch[0].userId")]),
        ({"type": "track", "userId": "u"}, [("event_missing", "batch[0].event")]),
        ({"type": "track", "userId": "u", "event": " "}, [("event_invalid", "batch[0].event")]),
        ({"type": "track", "userId": "u", "event": 7}, [("event_invalid", "batch[0].event")]),
        ({"type": "page", **ANON, "properties": {"url": "https://x.io"}}, []),
        ({"type": "page"}, [("user_missing", "batch[0].userId")]),
        ({"type": "page", **ANON, "name": 5, "properties": {"url": "u"}}, [
            ("name_invalid", "batch[0].name")]),
        ({"type": "screen", "userId": "u", "name": "Home"}, []),
        ({"type": "screen", "name": "Home"}, [("user_missing", "batch[0].userId")]),
        ({"type": "group", "groupId": "acme"}, []),  # Node accepts groupId alone
        ({"type": "group", "groupId": 7, "userId": "u"}, []),
        ({"type": "group", "userId": "u"}, [("group_id_missing", "batch[0].groupId")]),
        ({"type": "alias", "userId": "u", "previousId": "p"}, []),
        ({"type": "alias", "previousId": "p"}, [("alias_user_id_missing", "batch[0].userId")]),
        ({"type": "alias", "userId": "u"}, [("previous_id_missing", "batch[0].previousId")]),
        ({"type": "delete", "userId": "u"}, [("type_invalid", "batch[0].type")]),
        ({"userId": "u"}, [("type_invalid", "batch[0].type")]),
        ("track", [("call_not_object", "batch[0]")]),
    ],
)  # fmt: skip
def test_required_fields(call: Any, expected: list[tuple[str, str]]) -> None:
    result = check("/v1/batch", batch(call), BASIC)
    assert codes(result) == expected
    assert len(result.calls) == (0 if expected else 1)


@pytest.mark.parametrize("key", ["properties", "traits", "context", "integrations"])
def test_objects_must_be_objects_and_null_is_absent(key: str) -> None:
    base = {"type": "track", "userId": "u", "event": "E"}
    assert codes(check("/v1/batch", batch({**base, key: []}), BASIC)) == [
        ("not_an_object", f"batch[0].{key}")
    ]
    assert codes(check("/v1/batch", batch({**base, key: None}), BASIC)) == []


def test_batch_context_must_be_an_object_and_sent_at_a_date_time() -> None:
    result = check("/v1/batch", batch(PY_TRACK, context=1, sentAt="yesterday"), BASIC)
    assert codes(result) == [("timestamp_invalid", "sentAt"), ("not_an_object", "context")]
    assert len(result.calls) == 1  # the calls themselves are fine: permissive keeps them


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-06-01T12:00:00.265+00:00", True),
        ("2024-06-01T12:00:00.466172+00:00", True),
        ("2024-06-01T12:00:00.231Z", True),
        ("2024-06-01T12:00:00Z", True),
        ("2024-06-01T12:00:00+0530", True),
        ("2024-06-01T12:00:00.123456789Z", True),
        ("2012-03-04T05:06:07.891011", True),  # naive: accepted (lenient)
        ("2024-01-02", True),
        ("2024-02-30T00:00:00Z", False),
        ("2024-06-01T25:00:00Z", False),
        ("2024-06-01T12:00:61Z", False),
        ("2024-06-01T12:00:00+24:00", False),
        ("1717243200", False),
        ("June 1st", False),
        ("", False),
        (1717243200, False),
    ],
)
def test_iso8601(value: Any, ok: bool) -> None:
    assert is_iso8601(value) is ok
    call = {"type": "track", "userId": "u", "event": "E", "timestamp": value}
    expected = [] if ok else [("timestamp_invalid", "batch[0].timestamp")]
    assert codes(check("/v1/batch", batch(call), BASIC)) == expected


@pytest.mark.parametrize("key", ["originalTimestamp", "sentAt"])
def test_other_call_times_are_checked_too(key: str) -> None:
    call = {"type": "track", "userId": "u", "event": "E", key: "soon"}
    expected = [("timestamp_invalid", f"batch[0].{key}")]
    assert codes(check("/v1/batch", batch(call), BASIC)) == expected


@pytest.mark.parametrize("value", ["", 5, None])
def test_message_id_is_an_opaque_non_empty_string(value: Any) -> None:
    call = {"type": "track", "userId": "u", "event": "E", "messageId": value}
    expected = [] if value is None else [("message_id_invalid", "batch[0].messageId")]
    assert codes(check("/v1/batch", batch(call), BASIC)) == expected


# --- warnings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ({"type": "identify", "userId": "cio_abc"}, [("user_id_cio_prefix", "userId")]),
        ({"type": "identify", "userId": "ann@example.com"}, [("user_id_email", "userId")]),
        ({"type": "identify", "userId": 42}, [("user_id_number", "userId")]),
        ({"type": "identify", **ANON}, [("anonymous_identify", "userId")]),
        ({"type": "identify", **ANON, "traits": {"email": "a@x.io"}}, []),
        ({"type": "identify", "traits": {"email": "a@x.io"}}, []),
        ({"type": "page", "userId": "u"}, [("page_without_url", "properties.url")]),
        ({"type": "page", "userId": "u", "properties": {"url": ""}}, [
            ("page_without_url", "properties.url")]),
        ({"type": "screen", "userId": "u"}, [("screen_without_name", "name")]),
        ({"type": "group", "groupId": "g", "traits": {"objectTypeId": 1}}, [
            ("object_type_id_invalid", "traits.objectTypeId")]),
        ({"type": "group", "groupId": "g", "traits": {"objectTypeId": "2"}}, []),
        ({"type": "track", "userId": "u", "event": "User Deleted"}, [
            ("destructive_event", "event")]),
        ({"type": "track", **ANON, "event": "user deleted"}, [
            ("destructive_event", "event"), ("semantic_field_missing", "userId")]),
        ({"type": "track", "userId": "u", "event": "Object Deleted"}, [
            ("destructive_event", "event"), ("semantic_field_missing", "groupId")]),
        ({"type": "track", "userId": "u", "event": "Object Deleted", "groupId": "g"}, [
            ("destructive_event", "event")]),
        ({"type": "track", "userId": "u", "event": "Device Created or Updated"}, [
            ("semantic_event", "event"), ("semantic_field_missing", "context.device.token")]),
        ({"type": "track", "userId": "u", "event": "Device Deleted",
          "context": {"device": {"token": "t"}}}, [("destructive_event", "event")]),
        ({"type": "track", "userId": "u", "event": "Report Delivery Event"}, [
            ("semantic_event", "event")]),
        ({"type": "track", "userId": "u", "event": "Application Opened"}, [
            ("possibly_semantic_event", "event")]),
        ({"type": "track", "userId": "u", "event": "Order Deleted"}, []),
    ],
)  # fmt: skip
def test_warnings_flag_but_keep_the_call(
    call: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    result = check("/v1/batch", batch(call), BASIC, STRICT)
    assert codes(result) == []
    assert warnings(result) == [(code, f"batch[0].{field}") for code, field in expected]
    assert len(result.calls) == 1
    assert outcome(result, key_accepted=True).status == 200


# --- answers ------------------------------------------------------------------------------------


def test_permissive_keeps_the_good_calls_of_a_batch_and_answers_200() -> None:
    bad = {"type": "track", "userId": "u"}
    done = answer("/v1/batch", batch(PY_IDENTIFY, bad, PY_TRACK), BASIC)
    assert (done.status, done.body) == (200, b"{}")
    assert [c.index for c in done.calls] == [0, 2]
    assert [(d.index, d.body) for d in done.dropped] == [(1, bad)]


def test_strict_refuses_the_batch_with_every_error_listed() -> None:
    body = batch(PY_IDENTIFY, {"type": "track", "userId": "u"}, {"type": "alias"})
    done = answer("/v1/batch", body, BASIC, STRICT)
    assert done.status == 400
    assert json.loads(done.body) == {
        "code": "invalid_request",
        "message": "batch[1].event: track requires event",
        "meta": {
            "errors": [
                "batch[1].event: track requires event",
                "batch[2].userId: alias requires userId",
                "batch[2].previousId: alias requires previousId",
            ]
        },
    }
    assert done.calls == ()
    assert [d.index for d in done.dropped] == [0, 1, 2]


def test_strict_single_call_error_has_no_batch_prefix() -> None:
    done = answer("/v1/track", {"userId": "u"}, BASIC, STRICT)
    assert json.loads(done.body)["meta"]["errors"] == ["event: track requires event"]


# --- the operation model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "shape"),
    [
        (PY_IDENTIFY, ("person", "identify", Identifier("id", "u-123"), "traits")),
        (PY_TRACK, ("person", "event", Identifier("id", "u-123"), "properties")),
        ({"type": "page", **ANON},
         ("person", "page", Identifier("anonymous_id", "anon-1"), "properties")),
        ({"type": "screen", "userId": "a@x.io", "name": "Home"},
         ("person", "screen", Identifier("email", "a@x.io"), "properties")),
        ({"type": "group", "groupId": "acme", "userId": "u"},
         ("object", "add_relationships", Identifier("object", "1:acme"), "traits")),
        ({"type": "group", "groupId": 9, "traits": {"objectTypeId": "3"}},
         ("object", "add_relationships", Identifier("object", "3:9"), "traits")),
        ({"type": "alias", "userId": "cio_abc", "previousId": "old"},
         ("person", "merge", Identifier("cio_id", "abc"), None)),
    ],
)  # fmt: skip
def test_each_call_becomes_an_operation_that_keeps_the_whole_call(
    call: dict[str, Any], shape: tuple[Any, ...]
) -> None:
    (accepted,) = check("/v1/batch", batch(call), BASIC).calls
    op = to_operation(accepted, "/v1/batch")
    assert (op.type, op.action, op.identifier, op.data_key) == shape
    assert op.api == "pipelines"
    assert op.body is accepted.body
    assert op.batch_index == 0
    assert op.route == f"POST /v1/{call['type']}"


def test_track_operation_names_the_event_and_carries_its_properties() -> None:
    (accepted,) = check("/v1/track", PY_TRACK, BASIC).calls
    op = to_operation(accepted, "/v1/track")
    assert (op.name, op.data, op.is_event) == ("Order Completed", PY_TRACK["properties"], True)
    assert op.body is not None
    assert (op.body["messageId"], op.body["context"], op.body["integrations"]) == (
        PY_TRACK["messageId"],
        PY_TRACK["context"],
        {},
    )
