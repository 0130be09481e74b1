"""``trackguard.compiled.status``: which modules a tree runs compiled, and which of those are
older than their source; and what the CLI and the tests do about a stale one."""

from __future__ import annotations

import importlib.machinery
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trackguard import compiled
from trackguard.cli import main

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(root: Path, *built: str) -> Path:
    """A ``trackguard`` tree with every listed module's source, and a stand-in extension and
    a manifest entry for each module in ``built`` (status reads files, it imports nothing)."""
    manifest = {}
    for module in compiled.MODULES:
        source = compiled.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        if module in built:
            source.with_suffix(SUFFIX).write_bytes(b"")
            manifest[module] = compiled.digest(source)
    (root / "trackguard" / compiled.MANIFEST).write_text(json.dumps(manifest))
    return root


def test_a_tree_without_extensions_is_pure(tmp_path: Path) -> None:
    build = compiled.status(_tree(tmp_path))
    assert build == compiled.Build(compiled=(), stale=())
    assert build.describe() == "pure Python core"


def test_a_built_tree_is_compiled_and_current(tmp_path: Path) -> None:
    build = compiled.status(_tree(tmp_path, *compiled.MODULES))
    n = len(compiled.MODULES)
    assert build == compiled.Build(compiled=compiled.MODULES, stale=())
    assert build.describe() == f"compiled core: {n} of {n} modules, mypyc"


def test_a_source_edited_after_the_build_is_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path, "trackguard.core.keys", "trackguard.ingest")
    keys = compiled.source_path("trackguard.core.keys", root)
    keys.write_text(keys.read_text() + "# edited\n")
    build = compiled.status(root)
    assert build.compiled == ("trackguard.core.keys", "trackguard.ingest")
    assert build.stale == ("trackguard.core.keys",)
    assert build.describe() == (
        f"compiled core: 2 of {len(compiled.MODULES)} modules, mypyc;"
        " older than their source: trackguard.core.keys"
    )


def test_an_extension_without_a_manifest_is_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path, "trackguard.ingest")
    (root / "trackguard" / compiled.MANIFEST).unlink()
    assert compiled.status(root).stale == ("trackguard.ingest",)


def test_the_cli_refuses_to_run_a_stale_core(monkeypatch: pytest.MonkeyPatch) -> None:
    stale = compiled.Build(compiled=("trackguard.core.keys",), stale=("trackguard.core.keys",))
    monkeypatch.setattr(compiled, "status", lambda: stale)
    result = CliRunner().invoke(main, ["sample", "-n", "1"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: the compiled core is older than its source (trackguard.core.keys): "
        "run make compiled again, or make pure\n"
    )


def test_every_listed_module_is_a_source_file_of_this_package() -> None:
    for module in compiled.MODULES:
        assert compiled.source_path(module).is_file(), module
    assert list(compiled.MODULES) == sorted(compiled.MODULES)


def test_an_extension_of_an_unlisted_module_is_stale(tmp_path: Path) -> None:
    """One a build with a longer list left behind shadows its source just the same."""
    root = _tree(tmp_path, "trackguard.ingest")
    left = root / "trackguard" / "audit" / "census.py"
    left.parent.mkdir()
    left.write_text("# not in MODULES\n")
    left.with_suffix(SUFFIX).write_bytes(b"")
    build = compiled.status(root)
    assert build.compiled == ("trackguard.audit.census", "trackguard.ingest")
    assert build.stale == ("trackguard.audit.census",)
    assert compiled.extension_modules(root) == {"trackguard.audit.census", "trackguard.ingest"}
