"""The compiled core: which modules of the request path run as C extensions, and whether each
one is current.

The modules below are pure, typed Python (mypy strict), which mypyc compiles to C as they are
(``make compiled``; ``make pure`` goes back). Compiled, the gateway's checks and outbox rows
take about half their CPU time, and a served request about 0.8x (docs/gateway.md, *The
compiled core*); the behaviour is the same, and the test suite runs against the compiled modules
too
(``tests/compiled/test_compiled_core.py``).

A compiled module sits beside its source (``fastpath.cpython-311-x86_64-linux-gnu.so`` beside
``fastpath.py``) and Python imports the extension first, so a source edited after a build
would be shadowed by its old extension. The build therefore records each source's SHA-256 in
:data:`MANIFEST`, and :func:`status` names every compiled module whose source changed since:
every ``trackguard`` command refuses to run on such a tree, and the test suite stops at once.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The modules ``make compiled`` builds: the request path's checks, conversion, commit
#: planning and per-request bookkeeping. Modules that define msgspec structs or subclass
#: another library's classes stay Python (mypyc compiles neither), and so do the stores,
#: whose classes are meant to be extended (tests wrap them).
MODULES: Final = (
    "trackguard.contract.check",
    "trackguard.contract.routes",
    "trackguard.core.coerce",
    "trackguard.core.fastpath",
    "trackguard.core.keys",
    "trackguard.core.pipeline",
    "trackguard.core.plancheck",
    "trackguard.delivery.convert",
    "trackguard.delivery.ulid",
    "trackguard.gateway.app",
    "trackguard.gateway.metrics",
    "trackguard.http.asgi",
    "trackguard.ingest",
    "trackguard.monitor.monitor",
    "trackguard.monitor.tally",
    "trackguard.redact",
    "trackguard.store.claims",
    "trackguard.store.group",
    "trackguard.store.sqlite_claims",
    "trackguard.store.view",
)

#: The build's record of its sources, in the package directory: module -> SHA-256 of its
#: source when it was compiled.
MANIFEST: Final = "compiled.json"

_PACKAGE: Final = Path(__file__).resolve().parent


def source_path(module: str, root: Path = _PACKAGE.parent) -> Path:
    """The ``.py`` file of ``module`` under ``root`` (the directory that holds ``trackguard``)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    """The SHA-256 of a source file, as the manifest records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Build:
    """The package's modules that import from an extension (listed in :data:`MODULES` or
    not), and which of those are older than their source."""

    compiled: tuple[str, ...]
    stale: tuple[str, ...]

    def describe(self) -> str:
        """For logs and reports: ``compiled core: 20 of 20 modules, mypyc``."""
        if not self.compiled:
            return "pure Python core"
        listed = len(set(self.compiled) & set(MODULES))
        line = f"compiled core: {listed} of {len(MODULES)} modules, mypyc"
        if self.stale:
            line += f"; older than their source: {', '.join(self.stale)}"
        return line


def status(root: Path = _PACKAGE.parent) -> Build:
    """The build of the ``trackguard`` package under ``root``, read without importing it.

    Every extension module in the package counts, listed or not: one a build with a longer
    list left behind (an older trackguard's) would shadow its source just the same, and with
    no entry in the manifest it is stale."""
    manifest = root / "trackguard" / MANIFEST
    try:
        recorded: dict[str, str] = json.loads(manifest.read_text())
    except (OSError, ValueError):
        recorded = {}
    compiled, stale = [], []
    for module in sorted(extension_modules(root)):
        compiled.append(module)
        try:
            current = digest(source_path(module, root))
        except OSError:
            current = ""
        if recorded.get(module) != current:
            stale.append(module)
    return Build(tuple(compiled), tuple(stale))


def extension_files(root: Path = _PACKAGE.parent) -> dict[str, Path]:
    """Every extension file in the package under ``root``, by the module it is imported as
    (what ``make pure`` removes, with the shared library and the manifest)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES  # the most specific first, as Python's
    found = {}
    for path in (root / "trackguard").rglob("*"):
        suffix = next((s for s in suffixes if path.name.endswith(s)), None)
        if suffix is not None:
            parts = path.relative_to(root).parts
            found[".".join((*parts[:-1], parts[-1][: -len(suffix)]))] = path
    return found


def extension_modules(root: Path = _PACKAGE.parent) -> set[str]:
    """The modules of the package under ``root`` that import from an extension file."""
    return set(extension_files(root))
