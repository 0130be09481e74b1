"""The nesting-depth guard: ``too_deep`` answers as counting both bracket kinds always did.

``too_deep`` runs before every body decode, so it skips the ``[`` count when the body holds no
``[`` (most bodies). The answer must not move: the reference below is the guard as it was, and
it is compared with the one in use on arbitrary bytes and on bodies made of brackets.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from trackguard.contract import messages as m
from trackguard.contract.check import decode_body, json_depth, too_deep

LIMIT = m.MAX_JSON_DEPTH


def reference_too_deep(body: bytes) -> bool:
    """The guard before the ``[`` prefilter: both counts, then the exact depth."""
    if body.count(b"[") + body.count(b"{") <= LIMIT:
        return False
    return json_depth(body) > LIMIT


#: Bytes that move the depth (and strings that hide brackets), with filler: deep bodies and
#: bodies just either side of the limit are likely, where arbitrary bytes rarely nest at all.
_PIECES = st.sampled_from([b"[", b"{", b"]", b"}", b'"', b"\\", b'"[{"', b":", b",", b"1", b" "])
bracket_bodies = st.lists(_PIECES, max_size=4 * LIMIT).map(b"".join)


@given(st.binary(max_size=600) | bracket_bodies)
@example(b"{" * LIMIT + b"[")  # one past the limit, only with the [ counted
@example(b"[" * (LIMIT + 1))
@example(b"{" * (LIMIT + 1))
@example(b"{" * LIMIT)
@example(b'{"a":"' + b"[" * LIMIT + b'"}')  # brackets in a string: counted, not nested
@example(b"")
def test_too_deep_answers_as_the_two_counts_did(body: bytes) -> None:
    assert too_deep(body) is reference_too_deep(body)


def test_the_limit_is_exact_for_each_kind_and_their_mix() -> None:
    for opener, closer in ((b"[", b"]"), (b"{", b"}")):
        assert not too_deep(opener * LIMIT + closer * LIMIT)
        assert too_deep(opener * (LIMIT + 1) + closer * (LIMIT + 1))
    mixed = b'{"a":' * (LIMIT // 2) + b"[" * (LIMIT // 2 + 1)
    assert too_deep(mixed)
    assert not too_deep(mixed[:-1])
    assert decode_body(b"[" * (LIMIT + 1) + b"]" * (LIMIT + 1)) == (False, None)
    assert decode_body(b"[" * LIMIT + b"]" * LIMIT)[0] is True
