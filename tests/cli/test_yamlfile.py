"""The one YAML reader: file:line:col on every problem, suggestions for misspelled keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard import yamlfile
from trackguard.errors import ConfigError, TrackguardError
from trackguard.gateway.config import load_auth


def test_a_config_typo_names_line_column_and_the_close_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("upstream:\n  site_id: s\n  api_kye: k\n")
    with pytest.raises(ConfigError) as info:
        load_auth(config, env={"TRACKGUARD_API_KEY": "k"})
    assert str(info.value) == (
        f"{config}:3:3: upstream: unknown key 'api_kye' (did you mean 'api_key'?);"
        " allowed keys: site_id, api_key"
    )
    assert isinstance(info.value, TrackguardError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstrem: {}\n", "1:1: top level: unknown key 'upstrem' (did you mean 'upstream'?)"),
        ("clients:\n  - {source: web, site: s, api_key: k}\n", "2:19: clients[0]: unknown key"),
        ("clients: web\n", "1:10: clients must be a list"),
        ("upstream: [a]\n", "1:11: upstream must be a mapping"),
        ("- a\n", "1:1: top level must be a mapping"),
        ("upstream: {site_id: [\n", "2:1: invalid YAML: "),
    ],
)
def test_every_config_problem_has_a_place(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_auth(config, env={"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k"})
    assert str(info.value).startswith(f"{config}:{message}")


def test_a_valid_config_still_loads(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "upstream: {site_id: s, api_key: k}\nclients:\n  - {source: web, site_id: w, api_key: x}\n"
    )
    auth = load_auth(config, env={})
    assert auth.upstream.site_id == "s"
    assert auth.authenticate("w", "x") == "web"


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    assert yamlfile.read(tmp_path / "nope.yaml", "config file") == (
        None,
        yamlfile.YAMLIssue(
            str(tmp_path / "nope.yaml"),
            0,
            0,
            "cannot read the config file (No such file or directory)",
        ),
    )
    assert str(yamlfile.read(tmp_path / "nope.yaml", "config file")[1]) == (
        f"{tmp_path / 'nope.yaml'}: cannot read the config file (No such file or directory)"
    )
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"a: 1\nb: \x89\n")
    assert str(yamlfile.read(binary, "plan")[1]) == (
        f"{binary}:2:4: the plan is not UTF-8 text (byte 0x89 at offset 8)"
    )


def test_locate_follows_dotted_places() -> None:
    root = yaml.compose("rules:\n  - name: r\n    window: 5x\nchannels: {slack: {url: u}}\n")
    assert yamlfile.position(yamlfile.locate(root, "rules[0] (r).window")) == (3, 13)  # type: ignore[arg-type]
    assert yamlfile.position(yamlfile.locate(root, "channels.slack.url")) == (4, 25)  # type: ignore[arg-type]
    assert yamlfile.position(yamlfile.locate(root, "rules[5].window")) == (2, 3)  # type: ignore[arg-type]
    assert yamlfile.locate(root, "the file") is None


def test_suggest_only_close_words() -> None:
    assert yamlfile.suggest("api_kye", ("site_id", "api_key")) == " (did you mean 'api_key'?)"
    assert yamlfile.suggest("API_KEY", ("api_key",)) == " (did you mean 'api_key'?)"
    assert yamlfile.suggest("colour", ("person", "data")) == ""


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_compose_never_raises_and_points_inside_the_text(text: str) -> None:
    root, problem = yamlfile.compose(text, "f.yaml")
    if problem is not None:
        assert root is None
        assert problem.file == "f.yaml"
        assert 1 <= problem.line <= text.count("\n") + 2
        assert problem.column >= 1
        assert problem.message


_KEY = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)


@settings(max_examples=100)
@given(st.lists(st.sampled_from(("site_id", "api_key")), max_size=2, unique=True), _KEY, st.data())
def test_any_unknown_config_key_is_reported_at_its_line(
    known: list[str], typo: str, data: st.DataObject
) -> None:
    """Wherever an unknown key sits among the known ones, the error points at its line."""
    if typo in ("site_id", "api_key"):
        return
    keys = list(known)
    at = data.draw(st.integers(0, len(keys)))
    keys.insert(at, typo)
    text = "upstream:\n" + "".join(f"  {k}: v\n" for k in keys)
    root, problem = yamlfile.compose(text, "c.yaml")
    assert problem is None and isinstance(root, yaml.MappingNode)
    ((_, upstream),) = root.value
    issues = yamlfile.check_keys(upstream, ("site_id", "api_key"), "c.yaml", "upstream")
    assert [(i.line, i.column) for i in issues] == [(at + 2, 3)]
    assert issues[0].message.startswith(f"upstream: unknown key '{typo}'")
