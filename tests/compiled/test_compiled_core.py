"""The compiled core (``make compiled``) behaves as the pure Python core does.

The test builds the compiled core into a copy of ``src/`` with the project's own
``tools/compile_core.py`` (mypyc, most of a minute), keeps a second, pure copy beside it, and
runs child processes with one copy or the other first on the path:

* every module that ``trackguard.compiled.MODULES`` lists loads from its extension, and
  ``status()`` reports the build;
* 3,000 requests of the D2C sample give byte for byte the same verdicts and writes, compiled
  and pure (the checks, the outbox rows and their ids, the quarantine records);
* the test directories of the request path pass against the compiled copy.

An edited source is caught too: the copy's manifest no longer matches, ``status()`` names the
module, and ``trackguard`` refuses to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackguard import compiled

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

#: What each child prints: a digest of every verdict and write of the sample.
DIGEST = """
import hashlib, msgspec
from trackguard.check.samples import d2c_traffic
from trackguard.contract.operations import Request
from trackguard.contract.routes import match
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.plan.loader import load_plan
from trackguard.store.view import GatewayState
from trackguard.plan.model import DedupePolicy

checker = Checker(load_plan("examples/d2c-plan.yaml"))
state, digest, counts = GatewayState(), hashlib.sha256(), {}
for n, record in enumerate(d2c_traffic(3000, seed=11, base_time=1_779_999_000)):
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else msgspec.json.encode(body)
    request = Request(method=record["method"], path=record["path"], body=raw, source="app")
    at = 1_779_999_000.0 + n * 7 + 0.5  # received as the sample is spaced (7 s)
    verdict = checker.check(request, match(request.method, request.path), now=at, state=state)
    write = to_write(request, verdict, at, DedupePolicy())
    state.learn(write)
    digest.update(msgspec.json.encode(verdict) + msgspec.json.encode(write))
    counts[verdict.outcome] = counts.get(verdict.outcome, 0) + 1
print(digest.hexdigest(), sorted(counts.items()))
"""

#: The request path's tests, run again against the compiled copy (the served gateway's in
#: ``abuse`` and ``identity``).
SUITES = (
    *("tests/core", "tests/contract", "tests/delivery", "tests/check", "tests/http"),
    *("tests/abuse", "tests/identity"),
)


def _copy_src(to: Path) -> Path:
    """``src/`` without anything a build or a run left in it."""
    ignore = shutil.ignore_patterns("*.so", "*.pyd", compiled.MANIFEST, "__pycache__")
    shutil.copytree(REPO / "src", to, ignore=ignore)
    return to


def _run(src: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("TRACKGUARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A compiled copy of ``src/`` and a pure one."""
    root = tmp_path_factory.mktemp("core")
    pure, fast = _copy_src(root / "pure"), _copy_src(root / "compiled")
    done = _run(pure, "tools/compile_core.py", "--src", str(fast))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"compiled {len(compiled.MODULES)} modules in ")
    yield pure, fast


def test_every_listed_module_loads_from_its_extension(built: tuple[Path, Path]) -> None:
    pure, fast = built
    probe = (  # each listed module imported, and counted when it came from an extension
        "import importlib, importlib.machinery as m; from trackguard import compiled as c; "
        "x = tuple(m.EXTENSION_SUFFIXES); "
        "print(sum(importlib.import_module(n).__file__.endswith(x) for n in c.MODULES),"
        " c.status().describe())"
    )
    n = len(compiled.MODULES)
    assert _run(fast, "-c", probe).stdout == f"{n} compiled core: {n} of {n} modules, mypyc\n"
    assert _run(pure, "-c", probe).stdout == "0 pure Python core\n"


def test_the_sample_gets_the_same_verdicts_and_writes(built: tuple[Path, Path]) -> None:
    pure, fast = built
    expected, got = _run(pure, "-c", DIGEST), _run(fast, "-c", DIGEST)
    assert expected.returncode == 0, expected.stderr
    assert got.returncode == 0, got.stderr
    assert got.stdout == expected.stdout
    assert "('fixed', " in expected.stdout and "('invalid', " in expected.stdout


def test_the_request_path_tests_pass_compiled(built: tuple[Path, Path]) -> None:
    _, fast = built
    args = ("-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider")
    args += ("-m", "not slow and not browser")
    done = _run(fast, *args, *SUITES, timeout=1800)
    tail = done.stdout[-3000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail


def test_an_edited_source_is_refused(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, fast = built
    edited = tmp_path / "src"
    shutil.copytree(fast, edited)
    keys = edited / "trackguard" / "core" / "keys.py"
    keys.write_text(keys.read_text() + "\n# edited after the build\n")
    status = "from trackguard import compiled as c; print(c.status().stale)"
    assert _run(edited, "-c", status).stdout == "('trackguard.core.keys',)\n"
    done = _run(edited, "-m", "trackguard", "sample", "-n", "1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "Error: the compiled core is older than its source (trackguard.core.keys): "
        "run make compiled again, or make pure\n"
    )
