"""Who calls are about: identifier kinds, people seen under both id and email, anonymous ids.

Customer.io keys a person by ``id`` or by ``email`` (by shape). A team that mixes the two
splits people into two profiles, or loses calls for people it never identified by that key.
Identifiers are stored as hashes, capped, so memory stays bounded on any log.
"""

from __future__ import annotations

from typing import Any

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import Located
from trackguard.audit.model import Example
from trackguard.contract.identifiers import is_email

#: Customer.io links anonymous events "received up to five minutes after your identify call".
LINK_WINDOW = 300


class IdentityCensus:
    """Identifier kinds and shapes, email↔id links, and who was keyed which way."""

    __slots__ = (
        "body_id_types",
        "by_email",
        "by_id",
        "caps",
        "email_in_id",
        "email_in_id_examples",
        "id_room",
        "limit",
        "links",
        "mixed_examples",
        "numeric_ids",
        "other_kinds",
        "shape_examples",
        "text_ids",
    )

    def __init__(self, limits: Limits, caps: CapLog) -> None:
        self.caps = caps
        self.limit = limits.identifiers
        #: Ids :meth:`person` adds to ``by_id`` itself; past it, :meth:`keyed_by_id` decides.
        self.id_room = self.limit
        self.other_kinds: dict[str, int] = {}  # person operations not keyed by id, per kind
        self.numeric_ids = 0  # ... and those keyed by an id of digits
        self.text_ids = 0  # ... or by any other id
        self.shape_examples: dict[str, list[Example]] = {"numeric": [], "text": []}
        self.body_id_types: dict[str, int] = {}  # number | string, for ids sent in bodies
        self.by_id: set[int] = set()
        self.by_email: dict[int, str] = {}  # email hash -> where first keyed by email
        self.links: dict[int, int] = {}  # email hash -> id hash
        self.email_in_id = 0
        self.email_in_id_examples: list[Example] = []
        self.mixed_examples: list[Example] = []

    def _full(self, what: str) -> None:
        self.caps.hit(
            "identifiers",
            f"more than {self.limit} distinct {what}: later ones are not matched",
        )

    @property
    def kinds(self) -> dict[str, int]:
        """Person operations per identifier kind."""
        ids = self.numeric_ids + self.text_ids
        return {"id": ids, **self.other_kinds} if ids else dict(self.other_kinds)

    @property
    def id_shapes(self) -> dict[str, int]:
        """Operations keyed by id, per shape of the id (``numeric``, ``text``)."""
        return {k: n for k, n in (("numeric", self.numeric_ids), ("text", self.text_ids)) if n}

    def person(self, kind: str, value: str, at: Located) -> None:
        """A person operation addressed by ``kind``/``value``."""
        if kind == "id":
            # The first three of each shape are the examples (the counts say when).
            if value.isdigit():
                n = self.numeric_ids = self.numeric_ids + 1
                if n <= 3:
                    self._shape_example("numeric", value, at)
            else:
                n = self.text_ids = self.text_ids + 1
                if n <= 3:
                    self._shape_example("text", value, at)
            if "@" in value and is_email(value.strip()):
                self.flag_email_in_id(value, at)
            h = hash(value)
            by_id = self.by_id
            if len(by_id) < self.id_room:  # keyed_by_id's common case, inlined
                by_id.add(h)
            else:
                self.keyed_by_id(h)
        else:
            kinds = self.other_kinds
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "email":
                self.keyed_by_email(hash(value.strip().lower()), at)

    def _shape_example(self, shape: str, value: str, at: Located) -> None:
        """Keep ``value`` as an example of its shape (``numeric``, ``text``) if room is left."""
        examples = self.shape_examples[shape]
        if len(examples) < 3:
            examples.append(Example(at.where, f"{shape} id {value!r}"))

    # The capped sets: which values they keep depends on order (``audit --jobs`` replays these).

    def keyed_by_id(self, h: int) -> None:
        """A person keyed by the id hashing to ``h``."""
        if len(self.by_id) < self.limit:
            self.by_id.add(h)
        else:
            self._full("ids")

    def keyed_by_email(self, h: int, at: Located) -> None:
        """A person keyed by the (trimmed, lower-cased) email hashing to ``h``."""
        if h in self.by_email:
            return
        if len(self.by_email) < self.limit:
            self.by_email[h] = at.where
        else:
            self._full("emails")

    def link(self, email: int, person_id: int) -> None:
        """An identify said the email hashing to ``email`` belongs to id ``person_id``."""
        if len(self.links) < self.limit:
            self.links[email] = person_id
        else:
            self._full("email/id links")

    def flag_email_in_id(self, value: str, at: Located) -> None:
        self.email_in_id += 1
        if len(self.email_in_id_examples) < 3:
            self.email_in_id_examples.append(Example(at.where, f"id {value!r} is an email address"))

    def profile(self, kind: str, value: str, attrs: dict[str, Any], at: Located) -> None:
        """An identify call: learn which email and id belong together."""
        if "id" in attrs:
            body_id = attrs["id"]
            if isinstance(body_id, int) and not isinstance(body_id, bool):
                self.body_id_types["number"] = self.body_id_types.get("number", 0) + 1
            elif isinstance(body_id, str):
                self.body_id_types["string"] = self.body_id_types.get("string", 0) + 1
                if kind != "id" and "@" in body_id and is_email(body_id.strip()):
                    self.flag_email_in_id(body_id, at)
        email: Any = None
        person_id: Any = None
        if kind == "id":
            email, person_id = attrs.get("email"), value
        elif kind == "email":
            email, person_id = value, attrs.get("id")
        if (
            isinstance(email, str)
            and isinstance(person_id, str | int)
            and not isinstance(person_id, bool)
            and person_id != ""
        ):
            self.link(hash(email.strip().lower()), hash(str(person_id)))

    def people_under_both(self) -> int:
        """People keyed by email in some calls and by id in others (linked by identify)."""
        n = 0
        for h, where in self.by_email.items():
            pid = self.links.get(h)
            if pid is not None and pid in self.by_id:
                n += 1
                if len(self.mixed_examples) < 3:
                    self.mixed_examples.append(
                        Example(
                            where, "keyed by email here; the same person is keyed by id elsewhere"
                        )
                    )
        return n


class AnonymousCensus:
    """Anonymous events, and whether an identify ever carried their ``anonymous_id``.

    An anonymous event is linked when an identify with its ``anonymous_id`` comes later in the
    log, or came at most five minutes (log time) before it. The rest are orphans: Customer.io
    keeps them 30 days and then drops them, and they never trigger a person's campaign.
    """

    __slots__ = ("caps", "events", "examples", "ids", "limit", "linked", "pending")

    def __init__(self, limits: Limits, caps: CapLog) -> None:
        self.caps = caps
        self.limit = limits.anonymous_ids
        self.events = 0
        self.linked = 0
        self.pending: dict[int, list[int]] = {}  # id hash -> [pending events, last identify]
        self.examples: dict[int, str] = {}  # id hash -> where its first pending event was
        self.ids = 0

    def event(self, anonymous_id: str, when: int | None, at: Located) -> None:
        self.events += 1
        h = hash(anonymous_id)
        entry = self.pending.get(h)
        if entry is None:
            if len(self.pending) >= self.limit:
                self.caps.hit(
                    "anonymous_ids",
                    f"more than {self.limit} distinct anonymous ids: later ones are not matched",
                )
                return
            entry = self.pending[h] = [0, -1]
            self.ids += 1
        if entry[1] >= 0 and when is not None and 0 <= when - entry[1] <= LINK_WINDOW:
            self.linked += 1
            return
        entry[0] += 1
        if entry[0] == 1 and len(self.examples) < 64:
            self.examples[h] = at.where

    def identify(self, anonymous_id: str, when: int | None) -> None:
        h = hash(anonymous_id)
        entry = self.pending.get(h)
        if entry is None:
            if len(self.pending) >= self.limit:
                return
            entry = self.pending[h] = [0, -1]
        self.linked += entry[0]
        entry[0] = 0
        entry[1] = when if when is not None else -1
        self.examples.pop(h, None)

    def orphans(self) -> tuple[int, int, list[Example]]:
        """(orphaned events, orphaned anonymous ids, examples)."""
        events = ids = 0
        for entry in self.pending.values():
            if entry[0]:
                events += entry[0]
                ids += 1
        examples = [
            Example(where, "anonymous event; no identify carried its anonymous_id")
            for h, where in self.examples.items()
            if self.pending[h][0]
        ][:3]
        return events, ids, examples
