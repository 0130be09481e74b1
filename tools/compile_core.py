"""Build (or remove) trackguard's compiled core: mypyc turns the modules that
``trackguard.compiled.MODULES`` lists into C extensions beside their sources.

    python tools/compile_core.py              # compile in this checkout's src/ (make compiled)
    python tools/compile_core.py --clean      # back to pure Python (make pure)
    python tools/compile_core.py --src DIR    # another copy of src/ (the tests build one)

Needs mypy (which carries mypyc), setuptools and a C compiler with the Python headers. The
build records each source's SHA-256 in ``trackguard/compiled.json``, so a source edited later
shows as stale (``trackguard.compiled.status``) instead of being shadowed in silence.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
#: The shared library that holds every compiled module's code (one per build).
GROUP = "trackguard"


@functools.cache
def _listing(src: Path) -> ModuleType:
    """``src``'s ``trackguard/compiled.py``, loaded on its own: it needs only the standard
    library, so a build can be removed even when the package would no longer import."""
    path = src / "trackguard" / "compiled.py"
    spec = importlib.util.spec_from_file_location("_trackguard_compiled_listing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _built_files(src: Path) -> list[Path]:
    """Every file a build leaves in ``src``: the extensions, the shared library, the manifest."""
    listing = _listing(src)
    found = list(src.glob(f"{GROUP}__mypyc.*"))
    # Every extension in the package, listed or not: trackguard ships none of its own, and one
    # a longer list left behind would shadow its source.
    found += listing.extension_files(src).values()
    manifest = src / "trackguard" / listing.MANIFEST
    if manifest.exists():
        found.append(manifest)
    return found


def clean(src: Path) -> int:
    """Remove a build from ``src``; how many files went."""
    files = _built_files(src)
    for path in files:
        path.unlink()
    return len(files)


def build(src: Path) -> list[str]:
    """Compile the listed modules of ``src`` in place and write the manifest; the modules."""
    from mypyc.build import mypycify
    from setuptools import setup

    listing = _listing(src)
    modules: tuple[str, ...] = listing.MODULES
    clean(src)
    sources = {m: listing.source_path(m, src) for m in modules}
    with tempfile.TemporaryDirectory(prefix="trackguard-mypyc-") as tmp, _cwd(src):
        extensions = mypycify(
            # mypy's cache goes with the C sources, not into src/
            ["--cache-dir", f"{tmp}/mypy", *(str(p.relative_to(src)) for p in sources.values())],
            opt_level="3",
            target_dir=tmp,
            group_name=GROUP,
        )
        setup(
            name="trackguard-compiled-core",
            ext_modules=extensions,
            script_args=[
                *("--quiet", "build_ext", "--inplace"),
                *("--build-temp", tmp, "--build-lib", f"{tmp}/lib"),
            ],
        )
    manifest = {m: listing.digest(p) for m, p in sources.items()}
    (src / "trackguard" / listing.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return list(modules)


def _fail(message: str) -> NoReturn:
    """One ``Error:`` line and exit 2, as every trackguard command ends on an error."""
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--src", type=Path, default=REPO / "src", help="The directory with trackguard/."
    )
    parser.add_argument("--clean", action="store_true", help="Remove the build instead.")
    args = parser.parse_args()
    src = args.src.resolve()
    if not (src / "trackguard" / "compiled.py").exists():
        _fail(f"{src} holds no trackguard package")
    if args.clean:
        print(f"removed {clean(src)} files of the compiled core from {src}")
        return
    started = time.monotonic()
    try:
        modules = build(src)
    except ImportError as e:
        _fail(f"the compiled core needs mypy and setuptools (the compile extra): {e}")
    except SystemExit as e:  # mypyc exits with a status, setuptools with the compiler's text
        why = e.code if isinstance(e.code, str) else "see mypyc's or the compiler's messages above"
        _fail(f"the compiled core did not build: {why}")
    print(
        f"compiled {len(modules)} modules in {time.monotonic() - started:.0f} s"
        f" (make pure goes back to pure Python)"
    )


if __name__ == "__main__":
    main()
