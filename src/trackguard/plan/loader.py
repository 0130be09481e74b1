"""Read a tracking plan from YAML, pointing every problem at its file, line and column.

``yaml.safe_load`` forgets where values came from and silently keeps the last of two duplicate
keys, so we compose PyYAML's node graph instead and walk it ourselves: every issue carries the
position of the offending key or value, and nothing in the file is lost or guessed. Problems
are collected rather than raised, so one run reports them all.

``parse_plan`` and ``load_plan`` raise ``PlanError`` when the plan has errors; ``lint_plan``
returns every error and warning and never raises, whatever the file holds.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import yaml

from trackguard import yamlfile
from trackguard.durations import DurationError, parse_duration
from trackguard.errors import ConfigError
from trackguard.plan import naming, similarity
from trackguard.plan.model import (
    ACTIONS,
    CONVENTIONS,
    EVERY_VIEW,
    POLICIES,
    PROPERTY_TYPES,
    SEMANTIC_EVENT_NAMES,
    DedupePolicy,
    EventSpec,
    EventVersion,
    IdentityPolicy,
    NamingPolicy,
    Plan,
    PropertySpec,
    SemanticPolicy,
    TimelinessPolicy,
    TimestampPolicy,
    UnplannedPolicy,
)

Severity = Literal["error", "warning"]

#: Plan file format versions this trackguard reads (the ``version`` key).
FORMAT_VERSIONS: Final = (1,)

#: The keys allowed in each kind of mapping; ``plan.schema.json`` lists the same (a test pins it).
ALLOWED_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "plan": (
        "version",
        "name",
        "plan_version",
        "naming",
        "identity",
        "timestamps",
        "unplanned",
        "dedupe",
        "timeliness",
        "events",
        "attributes",
        "pages",
        "screens",
        "semantic_events",
    ),
    "dedupe": ("window", "retry_window"),
    "timeliness": ("max_age", "late", "future_skew", "future", "stale_after_purchase"),
    "stale_after_purchase": ("purchase_event", "events", "action"),
    "derive": ("total",),
    "naming": ("convention", "action"),
    "identity": (
        "canonical",
        "email_keyed",
        "unknown_email",
        "email_in_id",
        "anonymous",
        "conflict",
        "id_type",
        "unlinked_after",
    ),
    "timestamps": ("action",),
    "unplanned": ("events", "properties", "attributes", "pages", "screens"),
    "semantic_events": ("allow",),
    "event": (
        "description",
        "aliases",
        "dedupe_key",
        "unplanned_properties",
        "properties",
        "versions",
        "derive",
    ),
    "page": ("description", "aliases", "unplanned_properties", "properties"),
    "every_page": ("description", "properties"),
    "version": ("properties", "unplanned_properties"),
    "property": (
        "type",
        "required",
        "action",
        "description",
        "values",
        "minimum",
        "maximum",
        "min_length",
        "max_length",
        "pattern",
        "items",
        "min_items",
        "max_items",
        "properties",
    ),
}

#: Which property types each constraint applies to.
_APPLIES_TO: Final[dict[str, tuple[str, ...]]] = {
    "values": ("enum",),
    "minimum": ("number", "integer", "timestamp"),
    "maximum": ("number", "integer", "timestamp"),
    "min_length": ("string", "email"),
    "max_length": ("string", "email"),
    "pattern": ("string", "email"),
    "items": ("array",),
    "min_items": ("array",),
    "max_items": ("array",),
    "properties": ("object",),
}
_ITEM_TYPES: Final = tuple(t for t in PROPERTY_TYPES if t != "enum")
_CANONICAL_IDS: Final = ("id", "email")
_DEDUPE_KEY: Final = re.compile(r"id|data(?:\.[^.]+)+")
_DATA_PATH: Final = re.compile(r"data(?:\.[^.]+)+")
#: Caps that keep hostile files (alias bombs, self-referencing anchors) cheap to reject.
_MAX_NODES: Final = 100_000
_MAX_DEPTH: Final = 16
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_BAD: Final = object()  # a scalar that could not be read; already reported


class PlanIssue(msgspec.Struct, frozen=True, gc=False):
    """One problem in a plan file, at the 1-based line and column of the key or value (line
    0: the whole file, which cannot be read)."""

    file: str
    line: int
    column: int
    severity: Severity
    message: str

    @property
    def where(self) -> str:
        """``file:line:col``, or ``file`` alone for a problem with the whole file."""
        return yamlfile.place(self.file, self.line, self.column)

    def __str__(self) -> str:
        """As ``plan lint`` prints it: with its severity, since lint reports warnings too."""
        return f"{self.where}: {self.severity}: {self.message}"


class PlanError(ConfigError):
    """A plan that cannot be used. ``issues`` holds every error and warning found; the
    message is its errors as any YAML file's problems read (``file:line:col: message``: no
    severity, so a command's ``Error:`` line does not say error twice)."""

    def __init__(self, issues: Sequence[PlanIssue]) -> None:
        self.issues: tuple[PlanIssue, ...] = tuple(issues)
        super().__init__("\n".join(f"{i.where}: {i.message}" for i in self.errors))

    @property
    def errors(self) -> tuple[PlanIssue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == "error")

    def __reduce__(self) -> tuple[type[PlanError], tuple[tuple[PlanIssue, ...]]]:
        return (PlanError, (self.issues,))  # survives pickling, e.g. across processes


def parse_plan(text: str, source: str = "<string>") -> Plan:
    """Parse plan YAML; raise ``PlanError`` if it has errors (warnings are not raised)."""
    plan, issues = _analyze(text, source)
    if any(issue.severity == "error" for issue in issues):
        raise PlanError(issues)
    return plan


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and parse a plan file; raise ``PlanError`` for unreadable files and bad plans."""
    source = os.fspath(path)
    text, issues = _read(Path(path), source)
    if text is None:
        raise PlanError(issues)
    return parse_plan(text, source)


def lint_plan(path: str | os.PathLike[str]) -> list[PlanIssue]:
    """Every error and warning in a plan file, in file order. Never raises."""
    source = os.fspath(path)
    try:
        text, issues = _read(Path(path), source)
        if text is None:
            return issues
        return _analyze(text, source)[1]
    except Exception as exc:  # a bug of ours, reported rather than raised: lint must answer
        message = (
            f"internal error while reading the plan ({type(exc).__name__}: {exc}); please report it"
        )
        return [PlanIssue(source, 1, 1, "error", message)]


def _read(path: Path, source: str) -> tuple[str | None, list[PlanIssue]]:
    text, problem = yamlfile.read(path, "plan")
    return text, [] if problem is None else [_issue(problem)]


def _issue(problem: yamlfile.YAMLIssue) -> PlanIssue:
    return PlanIssue(problem.file, problem.line, problem.column, "error", problem.message)


def _analyze(text: str, source: str) -> tuple[Plan, list[PlanIssue]]:
    reader = _Reader(source)
    plan = reader.plan(text)
    unique = dict.fromkeys(reader.issues)  # a merged anchor can repeat an issue
    issues = sorted(unique, key=lambda i: (i.line, i.column, i.severity != "error"))
    return plan, issues


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _too_big(root: yaml.Node) -> bool:
    """True when walking the file would visit too many nodes (aliases are walked again)."""
    stack = [root]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            return True
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return False


_Pair = tuple[yaml.Node, yaml.Node]


class _Reader:
    """Walks the composed YAML nodes into model structs, collecting issues on the way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[PlanIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()

    # -- reporting ---------------------------------------------------------------------------

    def error(self, node: yaml.Node | None, message: str) -> None:
        self._add(node, "error", message)

    def warn(self, node: yaml.Node | None, message: str) -> None:
        self._add(node, "warning", message)

    def _add(self, node: yaml.Node | None, severity: Severity, message: str) -> None:
        line, column = (1, 1) if node is None else (_line(node), node.start_mark.column + 1)
        self.issues.append(PlanIssue(self.source, line, column, severity, message))

    # -- YAML --------------------------------------------------------------------------------

    def compose(self, text: str) -> yaml.Node | None:
        root, problem = yamlfile.compose(text, self.source)
        if problem is not None:
            self.issues.append(_issue(problem))
        return root

    def duplicates(self, root: yaml.Node) -> None:
        """Report repeated keys anywhere in the file, even in parts the plan walk skips."""
        stack: list[tuple[yaml.Node, str]] = [(root, "")]
        seen: set[int] = set()
        while stack:
            node, path = stack.pop()
            if id(node) in seen:  # an alias of a node already checked
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend((item, f"{path}[{n}]") for n, item in enumerate(node.value))
                continue
            if not isinstance(node, yaml.MappingNode):
                continue
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                if key_node.tag != _MERGE_TAG and isinstance(key_node, yaml.ScalarNode):
                    if key in first:
                        self.error(
                            key_node,
                            f"{_join(path, key)}: duplicate key '{key}' (also on line "
                            f"{first[key]}); YAML would silently keep only the last",
                        )
                    else:
                        first[key] = _line(key_node)
                stack.append((value_node, _join(path, key) if key else path))

    def scalar(self, node: yaml.Node) -> Any:
        """The Python value of a scalar node (``_BAD`` if it cannot be read, already reported)."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, ArithmeticError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.error(node, f"cannot read the value '{node.value}': {problem}")
            return _BAD

    def describe(self, node: yaml.Node, value: Any = None) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if value is None:
            return "null"
        if isinstance(value, bool):
            return f"a boolean ({node.value})"
        if isinstance(value, int | float):
            return f"a number ({node.value})"
        if isinstance(value, str):
            return f"a string ('{value}')"
        if isinstance(value, dt.date):
            return f"a date ({node.value})"
        return f"a value ({node.value})"

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"

    # -- typed values ------------------------------------------------------------------------

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        allowed: Sequence[str] | None = None,
        refused: dict[str, str] | None = None,
    ) -> dict[str, _Pair] | None:
        """The pairs of a mapping by key (the last of repeated keys, as in YAML); null is empty.
        ``refused`` says why a key that is not ``allowed`` here is not, instead of suggesting."""
        if self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if value is not _BAD:
                self.error(
                    node, f"{path or 'plan'}: expected a mapping, got {self.describe(node, value)}"
                )
            return None
        own: dict[str, _Pair] = {}
        merged: dict[str, _Pair] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self.merge(value_node, path, merged)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(
                    key_node, f"{path or 'plan'}: keys must be names, got {self.describe(key_node)}"
                )
                continue
            key = str(key_node.value)  # a repeated key was reported by duplicates()
            own[key] = (key_node, value_node)
        pairs = {**{k: v for k, v in merged.items() if k not in own}, **own}
        if allowed is None:
            return pairs
        known: dict[str, _Pair] = {}
        for key, pair in pairs.items():
            if key in allowed:
                known[key] = pair
                continue
            if refused is not None and key in refused:
                self.error(pair[0], f"{path}: {refused[key]}; allowed keys: {', '.join(allowed)}")
                continue
            self.error(
                pair[0],
                f"{path or 'top level'}: unknown key '{key}'{yamlfile.suggest(key, allowed)}; "
                f"allowed keys: {', '.join(allowed)}",
            )
        return known

    def merge(self, node: yaml.Node, path: str, into: dict[str, _Pair]) -> None:
        """YAML merge keys (``<<: *defaults``): earlier sources win, the mapping's own keys win."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.error(source, f"{path or 'plan'}: '<<' merges only mappings")
                continue
            for key, pair in (self.mapping(source, path) or {}).items():
                into.setdefault(key, pair)

    def string(self, node: yaml.Node, path: str) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str):
            return value
        if value is not _BAD:
            self.error(node, f"{path}: expected a string, got {self.describe(node, value)}")
        return None

    def label(self, node: yaml.Node, path: str) -> str | None:
        """A free label: any scalar, kept exactly as written (``2026-11-01`` stays a string)."""
        if self.is_null(node):
            return ""
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.error(node, f"{path}: expected a string, got {self.describe(node)}")
        return None

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool):
            return value
        if value is not _BAD:
            self.error(node, f"{path}: expected true or false, got {self.describe(node, value)}")
        return None

    def number(self, node: yaml.Node, path: str) -> float | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            self.error(node, f"{path}: expected a finite number, got {node.value}")
            return None
        if value is not _BAD:
            self.error(node, f"{path}: expected a number, got {self.describe(node, value)}")
        return None

    def count(self, node: yaml.Node, path: str) -> int | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if value is not _BAD:
            got = self.describe(node, value)
            self.error(node, f"{path}: expected a whole number of 0 or more, got {got}")
        return None

    def choice(self, node: yaml.Node, path: str, what: str, choices: Sequence[str]) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str) and value in choices:
            return value
        if value is _BAD:
            return None
        allowed = ", ".join(choices)
        if isinstance(value, str):
            hint = yamlfile.suggest(value, choices)
            self.error(node, f"{path}: invalid {what} '{value}'{hint}; allowed: {allowed}")
        else:
            got = self.describe(node, value)
            self.error(node, f"{path}: expected a {what} ({allowed}), got {got}")
        return None

    def strings(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]] | None:
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if value is not _BAD:
                got = self.describe(node, value)
                self.error(node, f"{path}: expected a list of strings, got {got}")
            return None
        out: list[tuple[str, yaml.Node]] = []
        for item in node.value:
            text = self.string(item, path)
            if text is not None:
                out.append((text, item))
        return out

    # -- the plan ----------------------------------------------------------------------------

    def plan(self, text: str) -> Plan:
        root = self.compose(text)
        if root is None:
            if not self.issues:
                self.error(None, "the plan is empty; expected a mapping with 'events' and more")
            return Plan(source=self.source)
        if _too_big(root):
            self.error(
                root,
                "the plan is too large: more than 100000 values once aliases expand "
                "(or an anchor refers to itself)",
            )
            return Plan(source=self.source)
        self.duplicates(root)
        if not isinstance(root, yaml.MappingNode):
            if self.is_null(root):
                self.error(root, "the plan is empty; expected a mapping with 'events' and more")
            else:
                value = self.scalar(root) if isinstance(root, yaml.ScalarNode) else None
                got = self.describe(root, value)
                self.error(root, f"the plan must be a mapping of keys such as 'events', got {got}")
            return Plan(source=self.source)
        try:
            return self.top(root)
        except RecursionError:
            self.error(root, "the plan is nested too deeply")
            return Plan(source=self.source)

    def top(self, root: yaml.Node) -> Plan:
        fields = self.mapping(root, "", ALLOWED_KEYS["plan"]) or {}
        kwargs: dict[str, Any] = {"source": self.source}
        if "version" in fields:
            self.format_version(fields["version"][1])
        if "name" in fields:
            name = self.string(fields["name"][1], "name")
            if name is not None:
                kwargs["name"] = name
        if "plan_version" in fields:
            label = self.label(fields["plan_version"][1], "plan_version")
            if label is not None:
                kwargs["version"] = label
        naming_policy = self.naming(fields.get("naming"))
        if naming_policy is not None:
            kwargs["naming"] = naming_policy
        for key, build in (
            ("identity", self.identity),
            ("timestamps", self.timestamps),
            ("unplanned", self.unplanned),
        ):
            if key in fields:
                built = build(fields[key])
                if built is not None:
                    kwargs[key] = built
        if "timeliness" in fields:
            timeliness = self.timeliness(fields["timeliness"])
            if timeliness is not None:
                kwargs["timeliness"] = timeliness
        if "dedupe" in fields:
            dedupe = self.dedupe(fields["dedupe"])
            if dedupe is not None:
                kwargs["dedupe"] = dedupe
        convention = (naming_policy or NamingPolicy()).convention
        if "events" in fields:
            kwargs["events"] = self.events(fields["events"][1], convention)
        for section, noun in (("pages", "page"), ("screens", "screen")):
            if section in fields:
                kwargs[section] = self.events(fields[section][1], None, section, noun)
        if "semantic_events" in fields:
            semantic = self.semantic_events(fields["semantic_events"])
            if semantic is not None:
                kwargs["semantic_events"] = semantic
        if "attributes" in fields:
            attributes = self.properties(fields["attributes"][1], "attributes", "attribute", 0)
            kwargs["attributes"] = {spec.name: spec for spec in attributes or ()}
        return Plan(**kwargs)

    def format_version(self, node: yaml.Node) -> None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value is _BAD:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            got = self.describe(node, value)
            self.error(node, f"version: expected the plan format version (1), got {got}")
        elif value not in FORMAT_VERSIONS:
            self.error(
                node, f"version: unsupported plan format version {value}; this trackguard reads 1"
            )

    def section(
        self, pair: _Pair, key: str, choices: Mapping[str, tuple[str, Sequence[str]]]
    ) -> dict[str, Any] | None:
        """A policy mapping whose every key takes one of a few words."""
        fields = self.mapping(pair[1], key, ALLOWED_KEYS[key])
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"line": _line(pair[0])}
        for name, (_, value) in fields.items():
            what, allowed = choices[name]
            chosen = self.choice(value, f"{key}.{name}", what, allowed)
            if chosen is not None:
                kwargs[name] = chosen
        return kwargs

    def naming(self, pair: _Pair | None) -> NamingPolicy | None:
        if pair is None:
            return None
        kwargs = self.section(
            pair,
            "naming",
            {"convention": ("convention", CONVENTIONS), "action": ("action", ACTIONS)},
        )
        return None if kwargs is None else NamingPolicy(**kwargs)

    def identity(self, pair: _Pair) -> IdentityPolicy | None:
        choices = {
            "canonical": ("identifier", _CANONICAL_IDS),
            "email_keyed": ("policy", (*POLICIES, "fix")),
            "unknown_email": ("policy", POLICIES),
            "email_in_id": ("action", ACTIONS),
            "anonymous": ("policy", POLICIES),
            "conflict": ("action", ("warn", "reject")),
            "id_type": ("policy", POLICIES),
        }
        fields = self.mapping(pair[1], "identity", ALLOWED_KEYS["identity"])
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"line": _line(pair[0])}
        for name, (_, value) in fields.items():
            if name == "unlinked_after":
                seconds = self.duration(value, "identity.unlinked_after")
                if seconds is not None:
                    kwargs[name] = float(seconds)
                continue
            what, allowed = choices[name]
            chosen = self.choice(value, f"identity.{name}", what, allowed)
            if chosen is not None:
                kwargs[name] = chosen
        return IdentityPolicy(**kwargs)

    def timeliness(self, pair: _Pair) -> TimelinessPolicy | None:
        fields = self.mapping(pair[1], "timeliness", ALLOWED_KEYS["timeliness"])
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"line": _line(pair[0])}
        for name in ("max_age", "future_skew"):
            if name in fields:
                seconds = self.duration(fields[name][1], f"timeliness.{name}")
                if seconds is not None:
                    kwargs[name] = float(seconds)
        for name in ("late", "future"):
            if name in fields:
                chosen = self.choice(fields[name][1], f"timeliness.{name}", "policy", POLICIES)
                if chosen is not None:
                    kwargs[name] = chosen
        if "stale_after_purchase" in fields:
            path = "timeliness.stale_after_purchase"
            stale = self.mapping(
                fields["stale_after_purchase"][1], path, ALLOWED_KEYS["stale_after_purchase"]
            )
            if stale:
                if "purchase_event" in stale:
                    event = self.string(stale["purchase_event"][1], f"{path}.purchase_event")
                    if event:
                        kwargs["purchase_event"] = event
                if "events" in stale:
                    events = self.strings(stale["events"][1], f"{path}.events") or []
                    kwargs["stale_events"] = tuple(text for text, _ in events)
                if "action" in stale:
                    chosen = self.choice(stale["action"][1], f"{path}.action", "policy", POLICIES)
                    if chosen is not None:
                        kwargs["stale"] = chosen
        return TimelinessPolicy(**kwargs)

    def dedupe(self, pair: _Pair) -> DedupePolicy | None:
        fields = self.mapping(pair[1], "dedupe", ALLOWED_KEYS["dedupe"])
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"line": _line(pair[0])}
        for name, (_, value) in fields.items():
            seconds = self.duration(value, f"dedupe.{name}")
            if seconds is not None:
                kwargs[name] = float(seconds)
        return DedupePolicy(**kwargs)

    def duration(self, node: yaml.Node, path: str) -> int | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value is _BAD:
            return None
        try:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise DurationError("expected a duration such as 10m, 24h or 7d")
            seconds = parse_duration(str(value))
            if seconds <= 0:
                raise DurationError("must be longer than 0 seconds")
        except DurationError as exc:
            self.error(node, f"{path}: {exc}")
            return None
        return seconds

    def timestamps(self, pair: _Pair) -> TimestampPolicy | None:
        kwargs = self.section(pair, "timestamps", {"action": ("action", ACTIONS)})
        return None if kwargs is None else TimestampPolicy(**kwargs)

    def unplanned(self, pair: _Pair) -> UnplannedPolicy | None:
        choices = {key: ("policy", POLICIES) for key in ALLOWED_KEYS["unplanned"]}
        kwargs = self.section(pair, "unplanned", choices)
        return None if kwargs is None else UnplannedPolicy(**kwargs)

    # -- events ------------------------------------------------------------------------------

    def semantic_events(self, pair: _Pair) -> SemanticPolicy | None:
        """``semantic_events: {allow: [...]}``: names compared without case, kept as Customer.io
        writes them; a name that is not a semantic event is an error (it would allow nothing)."""
        fields = self.mapping(pair[1], "semantic_events", ALLOWED_KEYS["semantic_events"])
        if fields is None:
            return None
        known = {name.lower(): name for name in SEMANTIC_EVENT_NAMES}
        allowed: list[str] = []
        listed = (
            self.strings(fields["allow"][1], "semantic_events.allow") if "allow" in fields else []
        )
        for text, node in listed or ():
            name = known.get(text.strip().lower())
            if name is None:
                hint = yamlfile.suggest(text, SEMANTIC_EVENT_NAMES)
                self.error(
                    node,
                    f"semantic_events.allow: '{text}' is not a Customer.io semantic event"
                    f"{hint}; allowed: {', '.join(SEMANTIC_EVENT_NAMES)}",
                )
            elif name in allowed:
                self.warn(node, f"semantic_events.allow: '{text}' is listed twice")
            else:
                allowed.append(name)
        return SemanticPolicy(allow=tuple(allowed), line=_line(pair[0]))

    def events(
        self, node: yaml.Node, convention: str | None, section: str = "events", noun: str = "event"
    ) -> dict[str, EventSpec]:
        """Events (or, with ``convention`` None, pages or screens: display names, no naming
        convention) keyed by name; names and aliases must differ ignoring case and separators."""
        pairs = self.mapping(node, section)
        events: dict[str, EventSpec] = {}
        # name_key -> (kind, text, event, line) of the first name or alias that took it; names
        # are claimed in file order, each event's own name before its aliases.
        taken: dict[str, tuple[str, str, str, int]] = {}
        keys = ALLOWED_KEYS["event" if convention is not None else "page"]
        for name, (key_node, value_node) in (pairs or {}).items():
            path = f"{section}.{name}"
            if name == EVERY_VIEW and convention is None:
                every = self.every_view(key_node, value_node, path, noun)
                if every is not None:
                    events[name] = every
                continue
            if self.event_name(name, key_node, path, convention, noun):
                self.claim(taken, f"{noun} name", name, name, key_node, path, noun)
            read = self.event(name, key_node, value_node, path, keys)
            if read is None:
                continue
            event, aliases = read
            events[name] = event
            written = {name}
            for alias, alias_node in aliases:
                if alias in written:
                    what = "the event name" if alias == name else "an earlier alias"
                    self.warn(alias_node, f"{path}.aliases: alias '{alias}' repeats {what}")
                    continue
                written.add(alias)
                if naming.words(alias):
                    self.claim(taken, "alias", alias, name, alias_node, f"{path}.aliases", noun)
                    self.opposite_alias(alias, name, alias_node, f"{path}.aliases")
                else:
                    self.error(
                        alias_node,
                        f"{path}.aliases: alias '{alias}' has no ASCII letters or digits",
                    )
        return events

    def every_view(
        self, key_node: yaml.Node, node: yaml.Node, path: str, noun: str
    ) -> EventSpec | None:
        """The ``"*"`` entry: properties every page (screen) call must have, named or not."""
        why = f"the '*' entry applies to every {noun} call"
        refused = {
            "aliases": f"{why}, so it has no aliases",
            "unplanned_properties": f"{why}; unplanned_properties belongs to a named {noun} or"
            " to unplanned.properties",
        }
        read = self.event(
            EVERY_VIEW, key_node, node, path, ALLOWED_KEYS["every_page"], refused=refused
        )
        return None if read is None else read[0]

    def opposite_alias(self, alias: str, name: str, node: yaml.Node, path: str) -> None:
        """Warn when an alias is a small edit from its event yet reads as its opposite."""
        why = similarity.opposite(alias, name)
        if why is None:
            return
        limit = similarity.LINT_DISTANCE
        if similarity.edit_distance(naming.name_key(alias), naming.name_key(name), limit) > limit:
            return
        words = " / ".join(w for w in why if w)
        self.warn(
            node,
            f"{path}: alias '{alias}' is close to '{name}' but reads as its opposite "
            f"({words}): is it another event?",
        )

    def event_name(
        self, name: str, node: yaml.Node, path: str, convention: str | None, noun: str = "event"
    ) -> bool:
        """Check an event's own name; True when it can be compared with other names."""
        if not naming.words(name):
            hint = "; a '*' entry is for pages: and screens:" if name == EVERY_VIEW else ""
            self.error(node, f"{path}: {noun} name '{name}' has no ASCII letters or digits{hint}")
            return False
        if name != name.strip():
            self.error(node, f"{path}: {noun} name '{name}' has leading or trailing spaces")
        elif convention is not None and not naming.follows(name, convention):
            expected = naming.to_convention(name, convention)
            self.warn(
                node,
                f"{path}: event name '{name}' does not follow {convention} (expected '{expected}')",
            )
        return True

    def claim(
        self,
        taken: dict[str, tuple[str, str, str, int]],
        kind: str,
        text: str,
        event: str,
        node: yaml.Node,
        path: str,
        noun: str = "event",
    ) -> None:
        """Take ``text``'s name key for ``event``, or report whose it already is."""
        key = naming.name_key(text)
        if key not in taken:
            taken[key] = (kind, text, event, _line(node))
            return
        other_kind, other_text, other_event, other_line = taken[key]
        if other_event == event:
            # `Product Viewed` as an alias of product_viewed is meaningful: it is reported as a
            # known alias rather than as naming drift.
            return
        self.error(
            node,
            f"{path}: {kind} '{text}' clashes with {other_kind} '{other_text}' of {noun} "
            f"'{other_event}' (line {other_line}); names are compared ignoring case and separators",
        )

    def event(
        self,
        name: str,
        key_node: yaml.Node,
        node: yaml.Node,
        path: str,
        keys: Sequence[str] = ALLOWED_KEYS["event"],
        *,
        refused: dict[str, str] | None = None,
    ) -> tuple[EventSpec, list[tuple[str, yaml.Node]]] | None:
        fields = self.mapping(node, path, keys, refused)
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"name": name, "line": _line(key_node)}
        if "description" in fields:
            kwargs["description"] = (
                self.string(fields["description"][1], f"{path}.description") or ""
            )
        aliases: list[tuple[str, yaml.Node]] = []
        if "aliases" in fields:
            aliases = self.strings(fields["aliases"][1], f"{path}.aliases") or []
            kwargs["aliases"] = tuple(text for text, _ in aliases)
        if "unplanned_properties" in fields:
            kwargs["unplanned_properties"] = self.choice(
                fields["unplanned_properties"][1],
                f"{path}.unplanned_properties",
                "policy",
                POLICIES,
            )
        properties: tuple[PropertySpec, ...] = ()
        if "properties" in fields:
            read = self.properties(fields["properties"][1], f"{path}.properties", "property", 0)
            properties = read or ()
            kwargs["properties"] = properties
        versions: tuple[EventVersion, ...] = ()
        if "versions" in fields:
            versions = self.versions(fields["versions"][1], f"{path}.versions")
            kwargs["versions"] = versions
        if "dedupe_key" in fields:
            value_node = fields["dedupe_key"][1]
            key = self.dedupe_key(value_node, f"{path}.dedupe_key")
            if key is not None:
                kwargs["dedupe_key"] = key
                self.check_dedupe_key(key, value_node, path, name, properties, versions)
        if "derive" in fields:
            derive = self.mapping(fields["derive"][1], f"{path}.derive", ALLOWED_KEYS["derive"])
            if derive and "total" in derive:
                total_node = derive["total"][1]
                total = self.string(total_node, f"{path}.derive.total")
                if total is not None and not _DATA_PATH.fullmatch(total):
                    self.error(
                        total_node,
                        f"{path}.derive.total: '{total}' is not a path into the event data, "
                        "e.g. data.total",
                    )
                elif total is not None:
                    kwargs["derive_total"] = total
                    if "dedupe_key" not in kwargs:
                        self.warn(
                            fields["derive"][0],
                            f"{path}.derive: without a dedupe_key a retried order would be "
                            "counted twice",
                        )
        return EventSpec(**kwargs), aliases

    def versions(self, node: yaml.Node, path: str) -> tuple[EventVersion, ...]:
        out: list[EventVersion] = []
        for version, (key_node, value_node) in (self.mapping(node, path) or {}).items():
            vpath = f"{path}.{version}"
            if not version.strip():
                self.error(key_node, f"{path}: a version name must not be empty")
                continue
            fields = self.mapping(value_node, vpath, ALLOWED_KEYS["version"])
            if fields is None:
                continue
            kwargs: dict[str, Any] = {"version": version, "line": _line(key_node)}
            if "properties" in fields:
                read = self.properties(
                    fields["properties"][1], f"{vpath}.properties", "property", 0
                )
                kwargs["properties"] = read or ()
            if "unplanned_properties" in fields:
                kwargs["unplanned_properties"] = self.choice(
                    fields["unplanned_properties"][1],
                    f"{vpath}.unplanned_properties",
                    "policy",
                    POLICIES,
                )
            out.append(EventVersion(**kwargs))
        return tuple(out)

    def dedupe_key(self, node: yaml.Node, path: str) -> str | None:
        key = self.string(node, path)
        if key is None:
            return None
        if _DEDUPE_KEY.fullmatch(key) is None:
            self.error(
                node,
                f"{path}: invalid dedupe_key '{key}'; use 'id' or a path into the event data "
                "such as 'data.order_id'",
            )
            return None
        return key

    def check_dedupe_key(
        self,
        key: str,
        node: yaml.Node,
        path: str,
        event: str,
        properties: tuple[PropertySpec, ...],
        versions: tuple[EventVersion, ...],
    ) -> None:
        if key == "id":
            return
        segments = key.split(".")[1:]
        scopes = [(f"event '{event}'", properties)]
        scopes += [(f"version '{v.version}' of event '{event}'", v.properties) for v in versions]
        for scope, props in scopes:
            missing = _undeclared(segments, props)
            if missing is not None:
                self.warn(
                    node,
                    f"{path}.dedupe_key: '{key}' refers to property '{missing}' "
                    f"that {scope} does not declare",
                )

    # -- properties --------------------------------------------------------------------------

    def properties(
        self, node: yaml.Node, path: str, kind: str, depth: int
    ) -> tuple[PropertySpec, ...] | None:
        pairs = self.mapping(node, path)
        if pairs is None:
            return None
        if depth >= _MAX_DEPTH:
            self.error(node, f"{path}: objects nest more than {_MAX_DEPTH} levels deep")
            return None
        out = []
        for name, (key_node, value_node) in pairs.items():
            spec = self.property(name, key_node, value_node, _join(path, name), kind, depth)
            if spec is not None:
                out.append(spec)
        return tuple(out)

    def property(
        self, name: str, key_node: yaml.Node, node: yaml.Node, path: str, kind: str, depth: int
    ) -> PropertySpec | None:
        line = _line(key_node)
        if self.is_null(node):
            return PropertySpec(name=name, line=line)
        if isinstance(node, yaml.ScalarNode):  # shorthand: `sku: string`
            type_ = self.choice(node, path, "type", PROPERTY_TYPES)
            if type_ is None:
                return None
            if type_ == "enum":
                self.error(
                    node, f"{path}: type enum needs 'values'; write {{type: enum, values: [...]}}"
                )
            shorthand: dict[str, Any] = {"name": name, "type": type_, "line": line}
            return PropertySpec(**shorthand)
        if isinstance(node, yaml.SequenceNode):
            self.error(node, f"{path}: expected a type name or a mapping of rules, got a list")
            return None
        fields = self.mapping(node, path, ALLOWED_KEYS["property"])
        if fields is None:
            return None
        kwargs: dict[str, Any] = {"name": name, "line": line}
        type_ = "any"
        if "type" in fields:
            chosen = self.choice(fields["type"][1], f"{path}.type", "type", PROPERTY_TYPES)
            type_known = chosen is not None
            type_ = chosen or "any"
            kwargs["type"] = type_
        else:
            type_known = True
        for key, (key_node_, _) in fields.items():
            applies = _APPLIES_TO.get(key)
            if type_known and applies is not None and type_ not in applies:
                self.error(
                    key_node_,
                    f"{path}.{key}: '{key}' applies only to type {_either(applies)}, not {type_}",
                )
        if "required" in fields:
            kwargs["required"] = self.boolean(fields["required"][1], f"{path}.required") or False
            if kwargs["required"] and kind == "attribute":
                self.warn(
                    fields["required"][0],
                    f"{path}.required: 'required' has no effect on attributes, since an identify "
                    "call may send any subset of them",
                )
        if "action" in fields:
            action = self.choice(fields["action"][1], f"{path}.action", "action", ACTIONS)
            if action is not None:
                kwargs["action"] = action
            if action == "warn" and kwargs.get("required") and kind != "attribute":
                self.warn(
                    fields["action"][1],
                    f"{path}: required {kind} with action warn: a missing value is only "
                    "recorded, never rejected",
                )
        if "description" in fields:
            kwargs["description"] = (
                self.string(fields["description"][1], f"{path}.description") or ""
            )
        if "values" in fields:
            kwargs["values"] = self.values(fields["values"][1], f"{path}.values")
        elif type_ == "enum":
            self.error(fields["type"][1], f"{path}: type enum needs 'values' (the allowed values)")
        for key in ("minimum", "maximum"):
            if key in fields:
                kwargs[key] = self.number(fields[key][1], f"{path}.{key}")
        for key in ("min_length", "max_length", "min_items", "max_items"):
            if key in fields:
                kwargs[key] = self.count(fields[key][1], f"{path}.{key}")
        if "pattern" in fields:
            kwargs["pattern"] = self.pattern(fields["pattern"][1], f"{path}.pattern")
        if "items" in fields:
            items_node = fields["items"][1]
            if isinstance(items_node, yaml.ScalarNode) and items_node.value == "enum":
                self.error(
                    items_node,
                    f"{path}.items: items cannot be enum, since items have no 'values' list; "
                    f"allowed: {', '.join(_ITEM_TYPES)}",
                )
            else:
                kwargs["items"] = self.choice(items_node, f"{path}.items", "item type", _ITEM_TYPES)
        if "properties" in fields:
            members = self.properties(
                fields["properties"][1], f"{path}.properties", "property", depth + 1
            )
            kwargs["properties"] = members or ()
        for low, high in (
            ("minimum", "maximum"),
            ("min_length", "max_length"),
            ("min_items", "max_items"),
        ):
            lo, hi = kwargs.get(low), kwargs.get(high)
            if lo is not None and hi is not None and lo > hi:
                self.error(
                    fields[low][1],
                    f"{path}: {low} ({fields[low][1].value}) is greater than {high} "
                    f"({fields[high][1].value})",
                )
        return PropertySpec(**kwargs)

    def values(self, node: yaml.Node, path: str) -> tuple[Any, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if value is not _BAD:
                self.error(
                    node, f"{path}: expected a list of values, got {self.describe(node, value)}"
                )
            return None
        if not node.value:
            self.error(node, f"{path}: an enum needs at least one value")
            return None
        out: list[Any] = []
        seen: set[tuple[type, Any]] = set()
        for item in node.value:
            value = self.scalar(item) if isinstance(item, yaml.ScalarNode) else None
            if value is _BAD:
                continue
            if isinstance(value, dt.date):
                value = str(item.value)  # `2024-01-01` is a label here, not a date
            if isinstance(value, float) and not math.isfinite(value):
                self.error(item, f"{path}: expected a finite number, got {item.value}")
                continue
            if not isinstance(value, str | int | float):
                got = self.describe(item, value)
                self.error(item, f"{path}: values must be strings, numbers or booleans, got {got}")
                continue
            if isinstance(value, bool) and item.value.lower() not in ("true", "false"):
                word = str(value).lower()
                self.warn(
                    item,
                    f"{path}: '{item.value}' is read as the boolean {word}; "
                    "quote it if you mean the string",
                )
            if (type(value), value) in seen:
                self.warn(item, f"{path}: duplicate value {item.value}")
                continue
            seen.add((type(value), value))
            out.append(value)
        return tuple(out)

    def pattern(self, node: yaml.Node, path: str) -> str | None:
        text = self.string(node, path)
        if text is None:
            return None
        try:
            re.compile(text)
        except (re.error, RecursionError, OverflowError) as exc:
            self.error(node, f"{path}: invalid regular expression: {exc}")
            return None
        return text


def _undeclared(segments: Sequence[str], properties: tuple[PropertySpec, ...]) -> str | None:
    """The first segment of a ``data.`` path the properties do not declare, or None."""
    props: tuple[PropertySpec, ...] | None = properties
    for depth, segment in enumerate(segments):
        if props is None:  # an object without declared members, or `any`: anything goes
            return None
        found = next((spec for spec in props if spec.name == segment), None)
        if found is None:
            return ".".join(segments[: depth + 1])
        props = found.properties if found.type == "object" else None
        if found.type not in ("object", "any") and depth + 1 < len(segments):
            return ".".join(segments[: depth + 2])
    return None
