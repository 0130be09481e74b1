"""Customer.io's Track API limits and error strings, verbatim.

Strings marked ``VERIFIED`` are Customer.io's own words as its servers send them (see
``docs/contract.md`` for sources). Strings marked ``UNVERIFIED`` cover limits the spec documents
without a known server message: trackguard words them in Customer.io's style and the docs say so.
"""

from __future__ import annotations

from typing import Final

# --- limits (bytes are UTF-8 bytes) -------------------------------------------------------------
MAX_ATTRIBUTES: Final = 300
MAX_ATTRIBUTE_NAME_BYTES: Final = 150
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1000
MAX_PERSON_ID_BYTES: Final = 150
MAX_EVENT_NAME_BYTES: Final = 100
MAX_EVENT_NAME_CHARS: Final = 500
MAX_EVENT_DATA_BYTES: Final = 100_000
# "kb" is UNVERIFIED as 1000 or 1024: the lenient reading (1024) is used.
MAX_ENTITY_BYTES: Final = 32 * 1024
MAX_BATCH_ITEM_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
MAX_SEGMENT_IDS: Final = 1000
#: Bodies larger than this are refused before they are parsed. Customer.io documents no overall
#: v1 body limit (UNVERIFIED); the largest legal v1 body is an identify of 300 attributes of
#: 1000 bytes, or an event of 100 kB of data, so 1 MiB is far from anything legitimate.
MAX_BODY_BYTES: Final = 1024 * 1024
#: How deep JSON may nest before it is refused as invalid: every door then gives the same
#: answer whatever its own stack depth, and nothing downstream recurses without bound.
MAX_JSON_DEPTH: Final = 64

# --- VERIFIED server messages (Customer.io "Invalid Track API Requests" and live captures) -----
ID_MISSING: Final = "id attribute must be present"
ID_NOT_STRING: Final = "id attribute must be a string value"
ID_EMPTY: Final = "id attribute cannot be an empty string"
ID_MISMATCH: Final = "id attribute and identifier are not the same value"
TOO_MANY_ATTRIBUTES: Final = "cannot identify more than 300 attributes in one request"
ATTRIBUTE_NAME_TOO_LONG: Final = "attribute name cannot be longer than 150 bytes"
EVENT_NAME_BLANK: Final = "event name must not be blank"
EVENT_NAME_TOO_LONG: Final = "event name cannot be longer than 100 bytes"
EVENT_NAME_TOO_MANY_CHARS: Final = "event name must be less than 500 characters"
EVENT_DATA_NOT_HASH: Final = "event data must be a hash"
EVENT_DATA_TOO_LONG: Final = "event data cannot be longer than 100000 bytes"
FORM_VALUES_NOT_STRINGS: Final = "One or more form values may not be properly formatted as strings"
MERGE_MALFORMED: Final = (
    "The request was malformed. You cannot have multiple identifiers (id, email, etc) "
    "in the `primary` or `secondary` objects."
)
#: The spec's own sentence for v2 identifiers (documented text, not a captured response).
V2_IDENTIFIERS_MULTIPLE: Final = "You cannot pass multiple identifiers"
UNSUBSCRIBE_MALFORMED: Final = "The `delivery_id` format is incorrect or the request is malformed."


def attribute_value_too_long(name: str) -> str:
    """Customer.io quotes the real attribute name in ASCII single quotes."""
    return f"value for attribute '{name}' cannot be longer than 1000 bytes"


# --- UNVERIFIED: limits or requirements the spec documents, worded by trackguard ---------------
INVALID_JSON: Final = "request body must be valid JSON"
BODY_NOT_OBJECT: Final = "request body must be a JSON object"
BODY_TOO_LARGE: Final = "request body is too large"
DEVICE_MISSING: Final = "device attribute must be present"
DEVICE_NOT_HASH: Final = "device must be a hash"
DEVICE_ID_MISSING: Final = "device id must be present"
DEVICE_PLATFORM_INVALID: Final = "device platform must be one of: ios, android"
DEVICE_TOKEN_MISSING: Final = "device token must be present"
MERGE_MISSING: Final = "primary and secondary must both be present"
SEGMENT_IDS_MISSING: Final = "ids must be present"
SEGMENT_IDS_NOT_LIST: Final = "ids must be an array of strings"
SEGMENT_IDS_EMPTY: Final = "ids must contain at least 1 item"
SEGMENT_IDS_TOO_MANY: Final = "ids cannot contain more than 1000 items"
FORM_DATA_MISSING: Final = "form data must be a hash"
FORM_IDENTIFIER: Final = "form data must contain exactly one of: email, id"
METRIC_FIELDS_MISSING: Final = "delivery_id and metric must be present"
V2_TYPE_INVALID: Final = "type must be one of: person, object, delivery"
V2_ACTION_INVALID: Final = "action is not valid for this type"
V2_IDENTIFIERS_MISSING: Final = "identifiers must be present"
V2_IDENTIFIER_INVALID: Final = "identifier must be a non-empty string"
V2_OBJECT_IDENTIFIERS: Final = (
    "object identifiers must be object_type_id and object_id, or cio_object_id"
)
V2_RELATIONSHIPS_MISSING: Final = "cio_relationships must be present"
V2_ATTRIBUTES_NOT_HASH: Final = "attributes must be a hash"
V2_BATCH_MISSING: Final = "batch must be an array"
V2_BATCH_EMPTY: Final = "batch must contain at least 1 item"
V2_ITEM_NOT_OBJECT: Final = "batch item must be a hash"
V2_ENTITY_TOO_LARGE: Final = "request must be smaller than 32kb"
V2_BATCH_TOO_LARGE: Final = "request must be smaller than 500kb"
V2_ITEM_TOO_LARGE: Final = "each request within the batch must be 32kb or smaller"
V2_DELIVERY_NAME: Final = "name must be one of: opened, converted, delivered"
NOT_FOUND: Final = "not found"
METHOD_NOT_ALLOWED: Final = "method not allowed"
UNAUTHORIZED: Final = "Unauthorized request"
