"""ULIDs for event ids: Customer.io drops a second event carrying the same ULID ``id``.

A ULID is 128 bits, a 48-bit Unix time in milliseconds then 80 random bits, written as 26
Crockford base32 characters (``0123456789ABCDEFGHJKMNPQRSTVWXYZ``). Hand-rolled: it is a few
lines, and ``python-ulid`` would not make :func:`ulid_from_key` any shorter.

* :func:`new_ulid` makes a fresh id. Without an ``rng`` it is monotonic within a millisecond
  (the random part counts up), so ids made in one process sort in the order they were made.
* :func:`ulid_from_key` makes the same id for the same business key, always: a retried order
  then carries the same id and Customer.io deduplicates it even when trackguard cannot.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from typing import Final, Protocol

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE: Final = {c: i for i, c in enumerate(ALPHABET)} | {
    c.lower(): i for i, c in enumerate(ALPHABET)
}
_TIME_BITS: Final = 48
_RANDOM_BITS: Final = 80
_MAX_MS: Final = (1 << _TIME_BITS) - 1
_RANDOM_MASK: Final = (1 << _RANDOM_BITS) - 1


class RandomBits(Protocol):
    """What :func:`new_ulid` needs from a random source (``random.Random`` has it)."""

    def getrandbits(self, k: int, /) -> int: ...


#: Every 10-bit value as two Crockford characters: 13 lookups write a 130-bit ULID.
_PAIRS: Final = tuple(ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024))


def encode(value: int) -> str:
    """The 26-character Crockford base32 text of a 128-bit integer (two zero bits on top).

    Written out rather than a loop over the 13 shifts: an event without an id gets one on the
    request path, and the loop cost twice the bytecodes (``base64.b32encode`` is Python too).
    """
    p = _PAIRS
    return "".join(
        (
            p[value >> 120 & 1023],
            p[value >> 110 & 1023],
            p[value >> 100 & 1023],
            p[value >> 90 & 1023],
            p[value >> 80 & 1023],
            p[value >> 70 & 1023],
            p[value >> 60 & 1023],
            p[value >> 50 & 1023],
            p[value >> 40 & 1023],
            p[value >> 30 & 1023],
            p[value >> 20 & 1023],
            p[value >> 10 & 1023],
            p[value & 1023],
        )
    )


def decode(text: str) -> tuple[int, int]:
    """``(milliseconds, randomness)`` of a ULID; ``ValueError`` when ``text`` is not one."""
    if len(text) != 26 or text[0] not in "01234567":
        raise ValueError(f"not a ULID: {text!r}")
    value = 0
    for c in text:
        digit = _DECODE.get(c)
        if digit is None:
            raise ValueError(f"not a ULID: {text!r}")
        value = (value << 5) | digit
    return value >> _RANDOM_BITS, value & _RANDOM_MASK


def _compose(ms: int, randomness: int) -> str:
    return encode((ms << _RANDOM_BITS) | randomness)


class _Monotonic:
    """Process-wide state so ids made within one millisecond keep counting up."""

    __slots__ = ("last_ms", "last_random", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = -1
        self.last_random = 0

    def next(self, ms: int) -> str:
        with self.lock:
            if ms == self.last_ms:
                randomness = self.last_random + 1
                if randomness > _RANDOM_MASK:  # 2**80 ids in one ms: borrow the next ms
                    ms, randomness = ms + 1, _RANDOM.getrandbits(_RANDOM_BITS)
            else:
                randomness = _RANDOM.getrandbits(_RANDOM_BITS)
            self.last_ms, self.last_random = ms, randomness
        return _compose(ms, randomness)


_MONOTONIC: Final = _Monotonic()
#: Seeded once from the OS: ids need uniqueness, not secrecy, and a syscall per id costs a
#: GIL hand-off to the commit thread on the request path.
_RANDOM: Final = random.Random(secrets.randbits(128))


def new_ulid(ms: int | None = None, rng: RandomBits | None = None) -> str:
    """A new ULID for time ``ms`` (Unix milliseconds; now when None).

    With ``rng`` the random part is drawn from it and nothing else (repeatable in tests);
    without, it comes from a generator seeded by the OS and is monotonic within a millisecond.
    """
    if ms is None:
        ms = time.time_ns() // 1_000_000
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"ULID time must be 0..{_MAX_MS} ms, got {ms}")
    if rng is not None:
        return _compose(ms, rng.getrandbits(_RANDOM_BITS))
    return _MONOTONIC.next(ms)


def ulid_from_key(key: str, timestamp_s: int | None = None) -> str:
    """The ULID of a business key: the same key and timestamp give the same id, always.

    The time part is ``timestamp_s`` in milliseconds (0 when None or when it does not fit a
    ULID, e.g. a timestamp sent in microseconds); the random part is the first 80 bits of
    SHA-256 of the key.
    """
    ms = 0 if timestamp_s is None else timestamp_s * 1000
    if not 0 <= ms <= _MAX_MS:
        ms = 0
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return encode((ms << _RANDOM_BITS) | int.from_bytes(digest[:10], "big"))
