"""One way to read a YAML file and report its problems: ``file:line:col: message``.

Every YAML file trackguard reads (tracking plan, alert rules, replay fixes, backfill mapping,
gateway and emulator config) goes through here, so a problem is always reported the same way:
the file, the 1-based line and column of the offending key or value, what is wrong, and for a
misspelled key the closest allowed one (``unknown key 'api_kye' (did you mean 'api_key'?)``).
``yaml.safe_load`` forgets positions, so files are composed into PyYAML's node graph, which
keeps them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from trackguard.errors import ConfigError

__all__ = [
    "YAMLFileError",
    "YAMLIssue",
    "check_keys",
    "compose",
    "decode",
    "issue_at",
    "issue_for",
    "load",
    "locate",
    "plain",
    "position",
    "read",
    "suggest",
    "unknown_key",
]


def place(file: str, line: int, column: int) -> str:
    """``file:line:col``, or ``file`` alone for a problem with the whole file (line 0)."""
    return file if line == 0 else f"{file}:{line}:{column}"


class YAMLIssue(NamedTuple):
    """One problem at the 1-based ``line`` and ``column`` of ``file``; line 0 is a problem
    with the whole file (it cannot be read), shown without a place to look at."""

    file: str
    line: int
    column: int
    message: str

    @property
    def where(self) -> str:
        return place(self.file, self.line, self.column)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class YAMLFileError(ConfigError):
    """A YAML file that cannot be used; ``issues`` holds every problem found, in file order."""

    def __init__(self, issues: Sequence[YAMLIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def position(node: yaml.Node) -> tuple[int, int]:
    """The 1-based line and column where ``node`` starts."""
    return int(node.start_mark.line) + 1, int(node.start_mark.column) + 1


def issue_at(source: str, node: yaml.Node | None, message: str) -> YAMLIssue:
    """An issue at ``node`` (the file's start when None)."""
    line, column = (1, 1) if node is None else position(node)
    return YAMLIssue(source, line, column, message)


def suggest(word: str, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""`` when none is close."""
    options = list(choices) if isinstance(choices, Sequence) else sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {choice.lower(): choice for choice in options}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_key(key: str, allowed: Collection[str], place: str = "") -> str:
    """The message for a key that is not allowed: ``place: unknown key 'k' (did you mean ...)``."""
    where = f"{place}: " if place else ""
    listed = list(allowed) if isinstance(allowed, Sequence) else sorted(allowed)
    return f"{where}unknown key '{key}'{suggest(key, allowed)}; allowed keys: {', '.join(listed)}"


def decode(data: bytes, source: str, what: str = "file") -> tuple[str | None, YAMLIssue | None]:
    """The text of a file's bytes (UTF-8, a BOM allowed, or UTF-16 with a BOM)."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16"), None
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"the {what} is not UTF-8 text (byte 0x{byte} at offset {exc.start})"
        return None, YAMLIssue(source, line, column, message)


def read(path: str | os.PathLike[str], what: str = "file") -> tuple[str | None, YAMLIssue | None]:
    """A file's text, or None and the issue saying why it cannot be read (of the whole file:
    ``plan.yaml: cannot read the plan (No such file or directory)``). Never raises."""
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, YAMLIssue(source, 0, 0, f"cannot read the {what} ({exc.strerror or exc})")
    return decode(data, source, what)


def _marked(exc: yaml.MarkedYAMLError, source: str) -> YAMLIssue:
    """PyYAML's two-part message (context, problem) as one line at the problem."""
    problem, context = exc.problem or "", exc.context or ""
    if context and exc.context_mark is not None:
        context = f"{context} on line {exc.context_mark.line + 1}"
    if problem.startswith("but "):
        message = f"{context}, {problem}" if context else problem
    elif problem and context:
        message = f"{problem} ({context})"
    else:
        message = problem or context or "cannot parse the file"
    mark = exc.problem_mark or exc.context_mark
    line, column = (1, 1) if mark is None else (mark.line + 1, mark.column + 1)
    return YAMLIssue(source, line, column, f"invalid YAML: {message}")


def compose(text: str, source: str) -> tuple[yaml.Node | None, YAMLIssue | None]:
    """The node graph of one YAML document (None for an empty one), or the issue that stops
    it being read. Never raises."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks every character up front
        return loader.get_single_node(), None
    except yaml.MarkedYAMLError as exc:
        return None, _marked(exc, source)
    except yaml.reader.ReaderError as exc:
        at = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        message = f"invalid YAML: unacceptable character #x{char:04x} ({exc.reason})"
        return None, YAMLIssue(source, line, column, message)
    except yaml.YAMLError as exc:
        return None, YAMLIssue(source, 1, 1, f"invalid YAML: {exc}")
    except RecursionError:
        return None, YAMLIssue(source, 1, 1, "invalid YAML: the document is nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()


def load(path: str | os.PathLike[str], what: str = "file") -> yaml.Node | None:
    """Read and compose a YAML file; :class:`YAMLFileError` when it cannot be."""
    source = os.fspath(path)
    text, problem = read(path, what)
    if text is None:
        raise YAMLFileError([problem] if problem else [])
    root, problem = compose(text, source)
    if problem is not None:
        raise YAMLFileError([problem])
    return root


def plain(node: yaml.Node) -> Any:
    """A node as Python data, by YAML's safe rules (what ``yaml.safe_load`` would give)."""
    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_document(node)


def check_keys(
    node: yaml.MappingNode, allowed: Collection[str], source: str, place: str = ""
) -> list[YAMLIssue]:
    """An issue at every key of ``node`` that is not in ``allowed``."""
    issues = []
    for key_node, _ in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str) or key not in allowed:
            issues.append(issue_at(source, key_node, unknown_key(str(key), allowed, place)))
    return issues


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")
_KEY = re.compile(r"unknown key '([^']*)'")


def locate(root: yaml.Node | None, place: str) -> yaml.Node | None:
    """The node a dotted place names (``rules[2].window``, ``channels.slack.url``), or the
    deepest one of its parents the file has; None when not even the first step is there.
    Labels in parentheses (``rules[2] (cart-invalid)``) are ignored. Loaders that report
    problems by place use it to add the line and column."""
    node, found = root, None
    for match in _STEP.finditer(re.sub(r"\s*\([^)]*\)", "", place)):
        name, index = match.group(1), match.group(2)
        child: yaml.Node | None = None
        if name is not None and isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if _is_key(k, name.strip())), None)
        elif index is not None and isinstance(node, yaml.SequenceNode):
            child = node.value[int(index)] if int(index) < len(node.value) else None
        if child is None:
            break
        node = found = child
    return found


def _is_key(node: yaml.Node, name: str) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == name


def issue_for(source: str, root: yaml.Node | None, message: str) -> YAMLIssue:
    """An issue for a ``place: reason`` message, at the place it names: the misspelled key
    itself for ``unknown key 'k'``, else the place's value, else the file's start."""
    place = message.split(": ", 1)[0]
    node = locate(root, place)
    key = _KEY.search(message)
    mapping = node if node is not None else root
    if key is not None and isinstance(mapping, yaml.MappingNode):
        node = next((k for k, _ in mapping.value if _is_key(k, key.group(1))), node)
    return issue_at(source, node, message)
