"""The Pipelines API's limits and every message its contract can give, as one registry.

No Pipelines error body from Customer.io has ever been observed (its strict mode is documented
only as "proper HTTP error codes (400/401)"), so every *text* here is trackguard's own wording.
``verified`` says whether the *rule* is Customer.io's documented contract (its OpenAPI document
or docs pages) or trackguard's inference from the official SDKs and the Journeys destination.
Where a rule is unverified the contract is lenient: it accepts and records a warning instead.
``docs/pipelines.md`` lists every entry; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

Severity = Literal["error", "warning"]

# --- limits (bytes are UTF-8 bytes of the decompressed body) ------------------------------------
#: "32 KB per call": a kilobyte of 1024 bytes, the lenient reading (UNVERIFIED).
MAX_CALL_BYTES: Final = 32 * 1024
#: "500 KB per batch request", decompressed, same lenient reading.
MAX_REQUEST_BYTES: Final = 500 * 1024
#: What a door reads off the wire before it gives up: a gzip body never needs more than its
#: decompressed cap, plus gzip's small per-block overhead.
MAX_WIRE_BYTES: Final = MAX_REQUEST_BYTES + 64 * 1024


class Message(msgspec.Struct, frozen=True, gc=False):
    """One thing the contract can say: an ``error`` drops the call, a ``warning`` flags it."""

    code: str
    text: str
    severity: Severity
    verified: bool


def _e(code: str, text: str, *, verified: bool) -> Message:
    return Message(code, text, "error", verified)


def _w(code: str, text: str, *, verified: bool) -> Message:
    return Message(code, text, "warning", verified)


# --- request-level errors: nothing in the request is accepted -----------------------------------
UNAUTHORIZED: Final = _e("unauthorized", "Unauthorized request", verified=True)
NOT_FOUND: Final = _e("not_found", "not found", verified=False)
METHOD_NOT_ALLOWED: Final = _e("method_not_allowed", "method not allowed", verified=False)
REQUEST_TOO_LARGE: Final = _e(
    "request_too_large", "request is larger than 500 KB once decompressed", verified=True
)
BAD_GZIP: Final = _e("invalid_gzip", "request body is not valid gzip", verified=False)
BAD_ENCODING: Final = _e(
    "unsupported_encoding", "Content-Encoding must be gzip or identity", verified=False
)
INVALID_JSON: Final = _e("invalid_json", "request body must be valid JSON", verified=True)
BODY_NOT_OBJECT: Final = _e("body_not_object", "request body must be a JSON object", verified=True)
BATCH_NOT_LIST: Final = _e("batch_not_list", "batch must be an array of calls", verified=True)

# --- call-level errors: this call is dropped, the others in its batch are not -------------------
CALL_TOO_LARGE: Final = _e("call_too_large", "call is larger than 32 KB", verified=True)
CALL_NOT_OBJECT: Final = _e("call_not_object", "call must be a JSON object", verified=True)
TYPE_INVALID: Final = _e(
    "type_invalid",
    "type must be one of identify, track, page, screen, group, alias",
    verified=True,
)
USER_MISSING: Final = _e(
    "user_missing", "userId or anonymousId must be a non-empty string", verified=True
)
USER_ID_INVALID: Final = _e("user_id_invalid", "userId must be a string or a number", verified=True)
ANONYMOUS_ID_INVALID: Final = _e(
    "anonymous_id_invalid", "anonymousId must be a string or a number", verified=True
)
EVENT_MISSING: Final = _e("event_missing", "track requires event", verified=True)
EVENT_INVALID: Final = _e("event_invalid", "event must be a non-empty string", verified=True)
GROUP_ID_MISSING: Final = _e("group_id_missing", "group requires groupId", verified=True)
ALIAS_USER_ID_MISSING: Final = _e("alias_user_id_missing", "alias requires userId", verified=True)
PREVIOUS_ID_MISSING: Final = _e("previous_id_missing", "alias requires previousId", verified=True)
NOT_AN_OBJECT: Final = _e("not_an_object", "must be a JSON object", verified=True)
TIMESTAMP_INVALID: Final = _e(
    "timestamp_invalid", "must be an ISO-8601 date-time string", verified=True
)
MESSAGE_ID_INVALID: Final = _e(
    "message_id_invalid", "messageId must be a non-empty string", verified=True
)
NAME_INVALID: Final = _e("name_invalid", "name must be a string", verified=True)

# --- warnings: accepted, but Journeys will not do what the sender expects -----------------------
EMPTY_BATCH: Final = _w("empty_batch", "batch has no calls", verified=False)
TYPE_MISMATCH: Final = _w(
    "type_mismatch", "type differs from the endpoint's; the endpoint's type is used", verified=False
)
USER_ID_NUMBER: Final = _w(
    "user_id_number", "userId is a number; Customer.io reads it as a string", verified=False
)
USER_ID_CIO: Final = _w(
    "user_id_cio_prefix",
    "userId starts with cio_: Journeys reads it as a cio_id, not as an id",
    verified=False,
)
USER_ID_EMAIL: Final = _w(
    "user_id_email",
    "userId looks like an email: Journeys identifies the person by email, not by id",
    verified=False,
)
ANONYMOUS_IDENTIFY: Final = _w(
    "anonymous_identify",
    "identify without userId: Journeys ignores anonymous identify calls",
    verified=True,
)
PAGE_WITHOUT_URL: Final = _w(
    "page_without_url",
    "page without properties.url: Journeys names page views by URL and will drop it",
    verified=False,
)
SCREEN_WITHOUT_NAME: Final = _w(
    "screen_without_name",
    "screen without name: Journeys names screen views by name and will drop it",
    verified=False,
)
OBJECT_TYPE_ID_INVALID: Final = _w(
    "object_type_id_invalid",
    'traits.objectTypeId must be a stringified integer such as "1"',
    verified=True,
)
SEMANTIC_EVENT: Final = _w(
    "semantic_event",
    "event name is a Customer.io semantic event: it performs an action, not just a record",
    verified=True,
)
DESTRUCTIVE_EVENT: Final = _w(
    "destructive_event",
    "event name is a destructive Customer.io semantic event: it deletes or suppresses data",
    verified=True,
)
SEMANTIC_FIELD_MISSING: Final = _w(
    "semantic_field_missing",
    "semantic event lacks a field it requires, so Customer.io cannot perform it",
    verified=True,
)
POSSIBLY_SEMANTIC: Final = _w(
    "possibly_semantic_event",
    "event name is a device event for some destinations (Application Installed/Opened/Uninstalled)",
    verified=False,
)

REGISTRY: Final[dict[str, Message]] = {
    msg.code: msg for msg in globals().copy().values() if isinstance(msg, Message)
}
