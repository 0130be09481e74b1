"""A backfill mapping: which source columns become the person, the timestamp and the data.

```yaml
person: {id: customer_id}            # or {email: email}; Pipelines: or {anonymous_id: COLUMN}
timestamp: {column: ordered_at, format: iso8601}   # iso8601 | unix | unix_ms (optional)
data:                                # for identify: attributes:
  order_id: order_id                 # a column name: the value as the source has it
  total: {column: total, type: number}   # string | number | integer | boolean
  coupon: {column: coupon, required: false}
```

A Pipelines group call (``--as pipelines:group``) also maps ``group: {id: COLUMN}`` (its
``groupId``; ``object_type:`` a column or a constant such as ``2`` gives ``traits.objectTypeId``)
and its ``attributes:`` become the object's traits; the person, then optional, is the member.
An alias (``--as pipelines:alias``) maps ``previous: {id: COLUMN}`` (or ``email:`` or
``anonymous_id:``), the ``previousId`` merged into the person's ``userId``, and carries no data.

:func:`load_mapping` reports every mistake with the file and line (PyYAML marks) as a
:class:`MappingError`; :meth:`Mapping.apply` turns one source row into a person, a timestamp and
a data dict, or raises :class:`RowError` saying what is wrong with the row.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

import yaml

from trackguard import yamlfile
from trackguard.errors import ConfigError, InputError

FieldType = Literal["any", "string", "number", "integer", "boolean"]
TimeFormat = Literal["iso8601", "unix", "unix_ms"]

_TYPES: Final = ("string", "number", "integer", "boolean")
_FORMATS: Final = ("iso8601", "unix", "unix_ms")
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})
_OBJECT_TYPE: Final = re.compile(r"[0-9]+")
PersonKind = Literal["id", "email", "anonymous_id"]


class MappingError(ConfigError):
    """A mapping file that cannot be used; ``issues`` holds ``file:line:col: message`` strings."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(issues))


class RowError(InputError, ValueError):
    """One source row that cannot be mapped (the message names the column)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One output key taken from one source column."""

    key: str
    column: str
    type: FieldType = "any"
    required: bool = True


@dataclass(frozen=True, slots=True)
class Mapping:
    """A parsed mapping. ``person_kind`` is ``id``, ``email`` or (Pipelines calls only)
    ``anonymous_id``; both person fields are None only for a group call mapped without a
    member. ``group_column`` and ``object_type`` (a constant) or ``object_type_column`` are a
    group call's; ``previous_kind`` and ``previous_column`` an alias call's."""

    person_kind: PersonKind | None
    person_column: str | None
    fields: tuple[Field, ...]
    timestamp_column: str | None = None
    timestamp_format: TimeFormat = "iso8601"
    section: Literal["data", "attributes"] = "data"
    source: str = "<mapping>"
    group_column: str | None = None
    object_type: str | None = None
    object_type_column: str | None = None
    previous_kind: PersonKind | None = None
    previous_column: str | None = None

    def apply(self, row: dict[str, Any]) -> tuple[str | None, int | None, dict[str, Any]]:
        """``(person, timestamp or None, data)`` for one source row; RowError if it cannot.
        The person is None only when the mapping has none (a group call's object alone)."""
        person: str | None = None
        if self.person_column is not None:
            person = identifier(row, self.person_column, f"person {self.person_kind}")
        ts: int | None = None
        if self.timestamp_column is not None:
            raw = _present(row, self.timestamp_column)
            if raw is None:
                raise RowError(f"timestamp: column {self.timestamp_column!r} is empty")
            ts = parse_timestamp(raw, self.timestamp_format, self.timestamp_column)
        data: dict[str, Any] = {}
        for f in self.fields:
            value = _present(row, f.column)
            if value is None:
                if f.required:
                    raise RowError(f"{f.key}: column {f.column!r} is empty")
                continue
            data[f.key] = convert(value, f.type, f.column)
        return person, ts, data

    def call_fields(self, row: dict[str, Any]) -> dict[str, str]:
        """A group's ``groupId`` and ``objectTypeId``, an alias's ``previousId``, from one
        source row (empty for other calls); RowError if a column is empty."""
        out: dict[str, str] = {}
        if self.group_column is not None:
            out["groupId"] = identifier(row, self.group_column, "group id")
            if self.object_type_column is not None:
                out["objectTypeId"] = identifier(row, self.object_type_column, "group object_type")
            elif self.object_type is not None:
                out["objectTypeId"] = self.object_type
        if self.previous_column is not None:
            out["previousId"] = identifier(
                row, self.previous_column, f"previous {self.previous_kind}"
            )
        return out


def identifier(row: dict[str, Any], column: str, what: str) -> str:
    """The text of an identifier column (a string or an integer, blanks stripped)."""
    value = _present(row, column)
    if value is None:
        raise RowError(f"{what}: column {column!r} is empty")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"{what}: {value!r} is not a string or integer")
    return str(value).strip()


def _present(row: dict[str, Any], column: str) -> Any:
    if column not in row:
        raise RowError(f"no column {column!r} (the row has {', '.join(map(repr, row)) or 'none'})")
    value = row[column]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value


def convert(value: Any, type_: FieldType, column: str) -> Any:
    """``value`` as ``type_`` (CSV gives strings, JSONL and SQL typed values)."""
    if type_ == "any":
        return value
    if type_ == "string":
        if isinstance(value, dict | list):
            raise RowError(f"column {column!r}: {value!r} is not a string")
        return value if isinstance(value, str) else str(value)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise RowError(f"column {column!r}: {value!r} is not a boolean")
    if isinstance(value, bool | dict | list):
        raise RowError(f"column {column!r}: {value!r} is not a {type_}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise RowError(f"column {column!r}: {value!r} is not a {type_}") from None
    if not isinstance(number, int | float) or not math.isfinite(number):
        raise RowError(f"column {column!r}: {value!r} is not a {type_}")
    if type_ == "integer":
        if number != int(number):
            raise RowError(f"column {column!r}: {value!r} is not an integer")
        return int(number)
    return int(number) if isinstance(number, int) else float(number)


def parse_timestamp(value: Any, fmt: TimeFormat, column: str) -> int:
    """Unix seconds from an ISO 8601 string (naive means UTC), unix seconds or milliseconds."""
    try:
        if fmt == "iso8601":
            if isinstance(value, datetime):
                moment = value
            else:
                text = str(value).strip()
                moment = datetime.fromisoformat(text.replace(" ", "T", 1))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return int(number / 1000) if fmt == "unix_ms" else int(number)
    except (ValueError, TypeError, OverflowError):
        raise RowError(f"timestamp: column {column!r}: {value!r} is not {fmt}") from None


# -- loading -----------------------------------------------------------------------------------


def load_mapping(
    path: str | os.PathLike[str],
    *,
    identify: bool = False,
    pipelines: bool = False,
    call: str | None = None,
) -> Mapping:
    """Read and check a mapping file; MappingError lists every problem as file:line:col."""
    text, problem = yamlfile.read(path, "mapping")
    if text is None:
        raise MappingError([str(problem)])
    return parse_mapping(text, os.fspath(path), identify=identify, pipelines=pipelines, call=call)


def parse_mapping(
    text: str,
    source: str = "<mapping>",
    *,
    identify: bool = False,
    pipelines: bool = False,
    call: str | None = None,
) -> Mapping:
    """Parse mapping YAML; ``identify`` expects ``attributes:`` instead of ``data:``;
    ``pipelines`` (Pipelines calls) also takes ``person: {anonymous_id: COLUMN}``; ``call``
    ``group`` (attributes:) needs ``group:`` and makes the person optional, ``alias`` needs
    ``previous:``, a person with a userId and no data."""
    root, problem = yamlfile.compose(text, source)
    if problem is not None:
        raise MappingError([str(problem)])
    return _Parser(source, identify or call == "group", pipelines, call).parse(root)


#: Mapping keys only one Pipelines call type takes, and the ``--as`` they are for.
_CALL_KEYS: Final = {"group": "group", "previous": "alias"}


class _Parser:
    def __init__(
        self, source: str, identify: bool, pipelines: bool = False, call: str | None = None
    ) -> None:
        self.source = source
        self.identify = identify
        self.call = call
        self.kinds: tuple[str, ...] = (
            ("id", "email", "anonymous_id") if pipelines and call != "alias" else ("id", "email")
        )
        self.issues: list[str] = []

    def error(self, node: yaml.Node | None, message: str) -> None:
        self.issues.append(str(yamlfile.issue_at(self.source, node, message)))

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return []
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: set[str] = set()
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                self.error(k, f"{what}: keys must be strings")
                continue
            if k.value in seen:
                self.error(k, f"{what}: {k.value!r} appears twice")
            seen.add(k.value)
            out.append((str(k.value), k, v))
        return out

    def column(self, node: yaml.Node, what: str) -> str | None:
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:str"
            and node.value.strip()
        ):
            return str(node.value)
        self.error(node, f"{what} must be a column name (a string)")
        return None

    def parse(self, root: yaml.Node | None) -> Mapping:
        if root is None:
            raise MappingError([f"{self.source}:1:1: the mapping is empty; it needs person:"])
        section: Literal["data", "attributes"] = "attributes" if self.identify else "data"
        other = "data" if self.identify else "attributes"
        person: tuple[PersonKind, str] | None = None
        previous: tuple[PersonKind, str] | None = None
        group: _Group | None = None
        ts_column: str | None = None
        ts_format: TimeFormat = "iso8601"
        fields: list[Field] = []
        fields_node: yaml.Node | None = None
        seen: set[str] = set()
        own = {k for k, call in _CALL_KEYS.items() if call == self.call}
        allowed = ("person", *own, "timestamp", *(() if self.call == "alias" else (section,)))
        for key, knode, value in self.mapping(root, "the mapping"):
            seen.add(key)
            if key == "person":
                person = self.person(value)
            elif key == "timestamp":
                ts_column, ts_format = self.timestamp(value)
            elif key in (section, other) and self.call == "alias":
                self.error(
                    knode, f"{key}: an alias call carries no data; map person: and previous:"
                )
            elif key == section:
                fields_node = value
                fields = self.fields(value, section)
            elif key == other:
                hint = "--as identify" if key == "attributes" else "--as event:NAME"
                self.error(knode, f"{key}: is for {hint}; this backfill maps {section}:")
            elif key in own and key == "group":
                group = self.group(value)
            elif key in own:
                previous = self.person(value, "previous", ("id", "email", "anonymous_id"))
            elif key in _CALL_KEYS:
                self.error(knode, f"{key}: is for --as pipelines:{_CALL_KEYS[key]}")
            else:
                self.error(knode, yamlfile.unknown_key(key, allowed))
        if isinstance(root, yaml.MappingNode):
            if "person" not in seen and self.call != "group":
                wanted = " or ".join(f"{{{k}: COLUMN}}" for k in self.kinds)
                self.error(root, f"person: is required ({wanted})")
            for key in sorted(own - seen):
                wanted = (
                    "{id: COLUMN}"
                    if key == "group"
                    else "{id: COLUMN}, {email: COLUMN} or {anonymous_id: COLUMN}"
                )
                self.error(root, f"{key}: is required for --as pipelines:{self.call} ({wanted})")
        if group is not None and group.object_type is not None:
            for knode in _keys(fields_node):
                if knode.value == "objectTypeId":
                    self.error(knode, "attributes.objectTypeId: group.object_type already sets it")
        if self.issues:
            raise MappingError(self.issues)
        assert person is not None or self.call == "group"
        return Mapping(
            person_kind=None if person is None else person[0],
            person_column=None if person is None else person[1],
            fields=tuple(fields),
            timestamp_column=ts_column,
            timestamp_format=ts_format,
            section=section,
            source=self.source,
            group_column=None if group is None else group.column,
            object_type=None if group is None or not group.constant else group.object_type,
            object_type_column=None if group is None else group.object_type_column,
            previous_kind=None if previous is None else previous[0],
            previous_column=None if previous is None else previous[1],
        )

    def person(
        self, node: yaml.Node, what: str = "person", kinds: tuple[str, ...] | None = None
    ) -> tuple[PersonKind, str] | None:
        kinds = self.kinds if kinds is None else kinds
        items = self.mapping(node, what)
        if len(items) != 1 or items[0][0] not in kinds:
            wanted = " or ".join(f"{k}: COLUMN" for k in kinds)
            why = ""
            if self.call == "alias" and what == "person" and len(items) == 1:
                why = " (an alias call merges previousId into a userId)"
            self.error(node, f"{what}: needs exactly one of {wanted}{why}")
            return None
        kind, _, value = items[0]
        column = self.column(value, f"{what}.{kind}")
        if column is None:
            return None
        return cast(PersonKind, kind), column

    def group(self, node: yaml.Node) -> _Group | None:
        column: str | None = None
        object_type: yaml.Node | None = None
        for key, knode, value in self.mapping(node, "group"):
            if key == "id":
                column = self.column(value, "group.id")
            elif key == "object_type":
                object_type = value
            else:
                self.error(knode, yamlfile.unknown_key(key, ("id", "object_type"), "group"))
        if column is None:
            if isinstance(node, yaml.MappingNode) and all(k.value != "id" for k in _keys(node)):
                self.error(node, "group: needs id: COLUMN")
            return None
        if object_type is None:
            return _Group(column)
        text = object_type.value if isinstance(object_type, yaml.ScalarNode) else None
        if isinstance(text, str) and _OBJECT_TYPE.fullmatch(text.strip()):
            return _Group(column, str(int(text.strip())), True)
        if (
            isinstance(object_type, yaml.ScalarNode)
            and object_type.tag == "tag:yaml.org,2002:str"
            and object_type.value.strip()
        ):
            return _Group(column, object_type.value, False)
        self.error(
            object_type,
            "group.object_type must be a column name or an object type id such as 2",
        )
        return None

    def timestamp(self, node: yaml.Node) -> tuple[str | None, TimeFormat]:
        if isinstance(node, yaml.ScalarNode):
            return self.column(node, "timestamp"), "iso8601"
        column: str | None = None
        fmt: TimeFormat = "iso8601"
        for key, knode, value in self.mapping(node, "timestamp"):
            if key == "column":
                column = self.column(value, "timestamp.column")
            elif key == "format":
                text = value.value if isinstance(value, yaml.ScalarNode) else None
                if text in _FORMATS:
                    fmt = cast(TimeFormat, text)
                else:
                    self.error(value, f"timestamp.format must be one of {', '.join(_FORMATS)}")
            else:
                self.error(knode, yamlfile.unknown_key(key, ("column", "format"), "timestamp"))
        if column is None and isinstance(node, yaml.MappingNode):
            self.error(node, "timestamp: needs column:")
        return column, fmt

    def fields(self, node: yaml.Node, section: str) -> list[Field]:
        out: list[Field] = []
        for key, _, value in self.mapping(node, section):
            if isinstance(value, yaml.ScalarNode):
                column = self.column(value, f"{section}.{key}")
                if column is not None:
                    out.append(Field(key, column))
                continue
            column = None
            type_: FieldType = "any"
            required = True
            items = self.mapping(value, f"{section}.{key}")
            for sub, subnode, subvalue in items:
                if sub == "column":
                    column = self.column(subvalue, f"{section}.{key}.column")
                elif sub == "type":
                    text = subvalue.value if isinstance(subvalue, yaml.ScalarNode) else None
                    if text in _TYPES:
                        type_ = cast(FieldType, text)
                    else:
                        self.error(
                            subvalue, f"{section}.{key}.type must be one of {', '.join(_TYPES)}"
                        )
                elif sub == "required":
                    if isinstance(subvalue, yaml.ScalarNode) and subvalue.value in (
                        "true",
                        "false",
                    ):
                        required = subvalue.value == "true"
                    else:
                        self.error(subvalue, f"{section}.{key}.required must be true or false")
                else:
                    allowed = ("column", "type", "required")
                    self.error(subnode, yamlfile.unknown_key(sub, allowed, f"{section}.{key}"))
            if column is None and isinstance(value, yaml.MappingNode):
                self.error(value, f"{section}.{key}: needs column:")
            elif column is not None:
                out.append(Field(key, column, type_, required))
        return out


def _keys(node: yaml.Node | None) -> list[yaml.ScalarNode]:
    if not isinstance(node, yaml.MappingNode):
        return []
    return [k for k, _ in node.value if isinstance(k, yaml.ScalarNode)]


@dataclass(frozen=True, slots=True)
class _Group:
    """A parsed ``group:``: the groupId's column and the object type, a constant or a column."""

    column: str
    object_type: str | None = None
    constant: bool = False

    @property
    def object_type_column(self) -> str | None:
        return None if self.constant else self.object_type
