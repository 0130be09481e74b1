"""Classifying a person identifier by its shape, as Customer.io does.

Customer.io: "We determine the identifier type from the shape of the value". A ``cio_`` prefix
is a cio_id, an email-shaped value is an email, anything else is an id (a phone number in the
path is an id). Customer.io's exact email pattern is UNVERIFIED; trackguard uses the common
``local@domain.tld`` shape without spaces.
"""

from __future__ import annotations

import re
from typing import Final

from trackguard.contract.operations import Identifier

_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def is_email(value: str) -> bool:
    """True when ``value`` has the shape of an email address."""
    return "@" in value and _EMAIL.fullmatch(value) is not None


def classify(value: str) -> Identifier:
    """The identifier Customer.io sees in a v1 path segment."""
    if value.startswith("cio_"):
        return Identifier("cio_id", value[4:])
    if is_email(value):
        return Identifier("email", value)
    return Identifier("id", value)
