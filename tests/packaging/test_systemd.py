"""The systemd units in examples/systemd: hardened, and their command lines are real options."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest

from trackguard.cli.deliver import deliver_command
from trackguard.cli.serve import serve_command

UNITS = Path(__file__).resolve().parents[2] / "examples" / "systemd"
COMMANDS = {
    "trackguard-serve.service": serve_command,
    "trackguard-deliver.service": deliver_command,
}


def directives(path: Path) -> dict[str, list[str]]:
    """``key -> values`` of the ``[Service]`` section, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    section, out = "", {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("unit", sorted(COMMANDS))
def test_units_are_hardened(unit: str) -> None:
    d = directives(UNITS / unit)
    assert d["ProtectSystem"] == ["strict"]
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["Restart"] == ["on-failure"]
    assert d["EnvironmentFile"] == ["/etc/trackguard/env"]
    assert d["User"] == ["trackguard"]
    assert "TRACKGUARD_API_KEY" not in " ".join(d["ExecStart"])  # credentials: the env file


@pytest.mark.parametrize("unit", sorted(COMMANDS))
def test_exec_start_uses_real_options_and_writes_only_where_allowed(unit: str) -> None:
    d = directives(UNITS / unit)
    argv = shlex.split(d["ExecStart"][0])
    assert argv[1] == COMMANDS[unit].name
    known = {o for p in COMMANDS[unit].params if isinstance(p, click.Option) for o in p.opts}
    flags = [a for a in argv[2:] if a.startswith("--")]
    assert flags and set(flags) <= known
    writable = d["ReadWritePaths"][0].split()
    for flag in ("--db", "--request-log"):
        if flag in argv:
            target = Path(argv[argv.index(flag) + 1])
            assert str(target.parent) in writable, (flag, target)
