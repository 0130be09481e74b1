"""Fix rules for replay: a YAML file of small, explicit rewrites of quarantined bodies.

Each rule is one mapping with one operation key and an optional ``event:`` scope::

    fixes:
      - rename: {from: "Order Placed v2", to: order_completed}
      - move: {from: data.amount, to: data.total}
        event: order_completed
      - map: {field: data.currency, values: {usd: USD}}
      - coerce: {field: data.total, to: number}
      - drop: data.debug
      - default: {field: data.currency, value: USD}
      - rekey: {from: email, csv: ids.csv}          # or using: identity_map

A top-level list of rules is read the same way. Errors carry the file and the 1-based line and
column.

Track API bodies: field paths start with ``data.``; on a v2 item they address ``attributes``.
``rename`` and ``event:`` match the event's ``name``; ``rekey`` moves an email-keyed request to
the person's id (path and v2 ``identifiers``).

Pipelines API calls (a path under ``/v1/``): field paths address the call itself
(``properties.total``, ``traits.email``, ``userId``, ``context.locale``), and ``data.`` is the
call's payload, so one fix file serves both APIs: ``properties`` on track, page and screen
calls, ``traits`` on identify and group calls. ``rename`` and ``event:`` match a track call's
``event`` and a page's or screen's ``name``; ``rekey`` replaces an email-shaped ``userId``.
"""

from __future__ import annotations

import copy
import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec
import yaml

from trackguard import yamlfile
from trackguard.contract.pipelines import is_pipelines_path
from trackguard.contract.pipelines.operations import payload_key
from trackguard.core import coerce
from trackguard.errors import ConfigError

__all__ = ["Fix", "FixError", "FixResult", "apply_fixes", "load_fixes", "parse_fixes"]

_OPS: Final = ("rename", "move", "map", "coerce", "drop", "default", "rekey")
_COERCE: Final[Mapping[str, Callable[[Any], tuple[bool, Any]]]] = {
    "number": coerce.to_number,
    "integer": coerce.to_integer,
    "string": coerce.to_string,
    "boolean": coerce.to_boolean,
    "timestamp": coerce.to_timestamp,
}
_MISSING: Final = object()


class FixError(ConfigError):
    """A fix file that cannot be used; ``issues`` are ``file:line:col: message`` lines."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(self.issues))


class Fix(msgspec.Struct, frozen=True, kw_only=True):
    """One rule. ``args`` holds the operation's parameters (``rekey`` has ``ids``)."""

    op: str
    args: dict[str, Any]
    event: str | None = None
    line: int = 0

    def describe(self) -> str:
        scope = f" (event {self.event})" if self.event is not None else ""
        shown = {k: v for k, v in self.args.items() if k != "ids"}
        return f"{self.op} {msgspec.json.encode(shown).decode()}{scope}"


class FixResult(msgspec.Struct, kw_only=True):
    body: Any
    path: str
    applied: list[str]


# -- loading ---------------------------------------------------------------------------------


def load_fixes(path: str | os.PathLike[str]) -> tuple[Fix, ...]:
    text, problem = yamlfile.read(path, "fix file")
    if text is None:
        raise FixError([str(problem)])
    return parse_fixes(text, os.fspath(path), base=Path(path).parent)


def _at(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _plain(node: yaml.Node) -> Any:
    """A node as Python data (scalars resolved by YAML's safe rules)."""
    return yaml.safe_load(yaml.serialize(node))


def parse_fixes(text: str, source: str = "<string>", base: Path | None = None) -> tuple[Fix, ...]:
    """Rules from fix YAML; raises :class:`FixError` listing every problem found."""
    root, problem = yamlfile.compose(text, source)
    if problem is not None:
        raise FixError([str(problem)])
    if root is None:
        return ()
    if isinstance(root, yaml.MappingNode):
        keys = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(keys) != {"fixes"}:
            raise FixError([f"{_at(source, root)}: expected a list of rules or a `fixes:` key"])
        root = keys["fixes"]
    if not isinstance(root, yaml.SequenceNode):
        raise FixError([f"{_at(source, root)}: expected a list of rules"])
    issues: list[str] = []
    rules: list[Fix] = []
    for node in root.value:
        try:
            rules.append(_rule(node, source, base or Path(".")))
        except FixError as e:
            issues.extend(e.issues)
    if issues:
        raise FixError(issues)
    return tuple(rules)


def _rule(node: yaml.Node, source: str, base: Path) -> Fix:
    where = _at(source, node)
    if not isinstance(node, yaml.MappingNode):
        raise FixError([f"{where}: a rule is a mapping such as `drop: data.debug`"])
    data = _plain(node)
    if not isinstance(data, dict):
        raise FixError([f"{where}: a rule is a mapping"])
    event = data.pop("event", None)
    if event is not None and not isinstance(event, str):
        raise FixError([f"{where}: `event` must be an event name"])
    ops = [k for k in data if k in _OPS]
    for key_node, _ in node.value:
        key = key_node.value
        if key != "event" and key not in _OPS:
            at = yamlfile.issue_at(source, key_node, yamlfile.unknown_key(str(key), _OPS))
            raise FixError([str(at)])
    if len(ops) != 1:
        raise FixError([f"{where}: a rule has exactly one of {', '.join(_OPS)}"])
    op = ops[0]
    value = data[op]
    line = node.start_mark.line + 1
    args = _args(op, value, where, base)
    return Fix(op=op, args=args, event=event, line=line)


def _need(value: Any, keys: Sequence[str], op: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != set(keys):
        wanted = ", ".join(f"{k}:" for k in keys)
        raise FixError([f"{where}: `{op}` takes a mapping with exactly {wanted}"])
    return dict(value)


def _field(value: Any, where: str, name: str = "field") -> str:
    if not isinstance(value, str) or not value or any(not p for p in value.split(".")):
        raise FixError([f"{where}: {name} must be a dotted path such as data.total"])
    return value


def _args(op: str, value: Any, where: str, base: Path) -> dict[str, Any]:
    if op == "rename":
        args = _need(value, ("from", "to"), op, where)
        if not all(isinstance(args[k], str) and args[k] for k in ("from", "to")):
            raise FixError([f"{where}: rename from/to must be event names"])
        return args
    if op == "move":
        args = _need(value, ("from", "to"), op, where)
        return {"from": _field(args["from"], where, "from"), "to": _field(args["to"], where, "to")}
    if op == "map":
        args = _need(value, ("field", "values"), op, where)
        if not isinstance(args["values"], dict) or not args["values"]:
            raise FixError([f"{where}: map values must be a mapping of old: new"])
        return {"field": _field(args["field"], where), "values": args["values"]}
    if op == "coerce":
        args = _need(value, ("field", "to"), op, where)
        if args["to"] not in _COERCE:
            raise FixError([f"{where}: coerce to must be one of {', '.join(_COERCE)}"])
        return {"field": _field(args["field"], where), "to": args["to"]}
    if op == "drop":
        return {"field": _field(value, where)}
    if op == "default":
        args = _need(value, ("field", "value"), op, where)
        return {"field": _field(args["field"], where), "value": args["value"]}
    # rekey
    if not isinstance(value, dict) or value.get("from") != "email" or len(value) != 2:
        raise FixError(
            [
                f"{where}: rekey takes {{from: email, csv: FILE}}"
                " or {from: email, using: identity_map}"
            ]
        )
    if "using" in value:
        if value["using"] != "identity_map":
            raise FixError([f"{where}: rekey using must be identity_map"])
        return {"from": "email", "using": "identity_map"}
    if not isinstance(value.get("csv"), str):
        raise FixError([f"{where}: rekey csv must be a file name"])
    return {"from": "email", "csv": value["csv"], "ids": _read_ids(base / value["csv"], where)}


def _read_ids(path: Path, where: str) -> dict[str, str]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FixError([f"{where}: cannot read {path}: {e}"]) from e
    ids: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        if not row or (n == 1 and [c.strip().lower() for c in row[:2]] == ["email", "id"]):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise FixError([f"{where}: {path}:{n}: expected `email,id`"])
        ids[row[0].strip().lower()] = row[1].strip()
    return ids


# -- applying --------------------------------------------------------------------------------


def _name_key(body: dict[str, Any], pipelines: bool) -> str:
    """Where the event name is: ``name`` (Track API, Pipelines page and screen), or a
    Pipelines track call's ``event``."""
    return "name" if not pipelines or body.get("type") in ("page", "screen") else "event"


def _container(
    body: dict[str, Any], path: str, *, create: bool = False, pipelines: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """The dict holding ``path``'s last segment (``data.`` means ``attributes.`` on v2, the
    call's ``properties`` or ``traits`` on a Pipelines call); ``create`` makes the missing
    objects on the way."""
    parts = path.split(".")
    if parts[0] == "data" and pipelines:
        parts[0] = payload_key(body.get("type"))
    elif parts[0] == "data" and "data" not in body and "action" in body:
        parts[0] = "attributes"
    node: Any = body
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return None, parts[-1]
        node = node.setdefault(part, {}) if create else node.get(part)
    return (node if isinstance(node, dict) else None), parts[-1]


def _rekey_path(path: str, ids: Mapping[str, str]) -> str | None:
    parts = path.split("/")
    if len(parts) >= 5 and parts[1:4] == ["api", "v1", "customers"]:
        person = ids.get(unquote(parts[4]).strip().lower())
        if person is not None:
            parts[4] = quote(person, safe="")
            return "/".join(parts)
    return None


def apply_fixes(
    body: Any,
    path: str,
    fixes: Sequence[Fix],
    identity_map: Mapping[str, str] | None = None,
) -> FixResult:
    """``body`` (decoded JSON, not changed) and ``path`` with every matching rule applied.

    A Pipelines call (``path`` under ``/v1/``) should carry its ``type``: it says where
    ``data.`` and the event name are."""
    out = copy.deepcopy(body)
    applied: list[str] = []
    if not isinstance(out, dict):
        return FixResult(body=out, path=path, applied=applied)
    pipelines = is_pipelines_path(path)
    for fix in fixes:
        if fix.event is not None and out.get(_name_key(out, pipelines)) != fix.event:
            continue
        changed = _apply(fix, out, identity_map or {}, pipelines)
        if fix.op == "rekey" and not pipelines:
            ids = (identity_map or {}) if "using" in fix.args else fix.args["ids"]
            new = _rekey_path(path, ids)
            if new is not None:
                path, changed = new, True
        if changed:
            applied.append(fix.describe())
    return FixResult(body=out, path=path, applied=applied)


def _apply(
    fix: Fix, body: dict[str, Any], identity_map: Mapping[str, str], pipelines: bool
) -> bool:
    a = fix.args
    if fix.op == "rename":
        name = _name_key(body, pipelines)
        if body.get(name) == a["from"]:
            body[name] = a["to"]
            return True
        return False
    if fix.op == "rekey":
        ids = identity_map if "using" in a else a["ids"]
        if pipelines:
            user = body.get("userId")
            person = ids.get(user.strip().lower()) if isinstance(user, str) else None
            if person is not None:
                body["userId"] = person
            return person is not None
        idents = body.get("identifiers")
        if isinstance(idents, dict) and isinstance(idents.get("email"), str):
            person = ids.get(idents["email"].strip().lower())
            if person is not None:
                body["identifiers"] = {"id": person}
                return True
        return False
    if fix.op == "move":
        holder, key = _container(body, a["from"], pipelines=pipelines)
        if holder is None or key not in holder:
            return False
        target, tkey = _container(body, a["to"], create=True, pipelines=pipelines)
        if target is None or tkey in target:
            return False
        target[tkey] = holder.pop(key)
        return True
    holder, key = _container(body, a["field"], create=fix.op == "default", pipelines=pipelines)
    if holder is None:
        return False
    current = holder.get(key, _MISSING)
    if fix.op == "default":
        if current is _MISSING or current is None:
            holder[key] = copy.deepcopy(a["value"])
            return True
        return False
    if current is _MISSING:
        return False
    if fix.op == "drop":
        del holder[key]
        return True
    if fix.op == "map":
        values: dict[Any, Any] = a["values"]
        hashable = isinstance(current, str | int | float | bool) or current is None
        if hashable and current in values:
            holder[key] = copy.deepcopy(values[current])
            return bool(holder[key] != current)
        return False
    ok, coerced = _COERCE[a["to"]](current)
    if ok and (coerced != current or type(coerced) is not type(current)):
        holder[key] = coerced
        return True
    return False
