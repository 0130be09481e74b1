"""The wheel works away from the checkout: built, installed into a fresh venv, run elsewhere.

The wheel is built offline (``pip wheel --no-build-isolation`` with the test extra's hatchling)
and installed without its dependencies into a new venv; a ``.pth`` line then lets that venv
import the dependencies already installed in this one. They come after the venv's own
site-packages, so ``trackguard`` itself is the wheel's, never the checkout's.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with only the wheel installed, and the environment to run it in."""
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip"]
    run(
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        root / "dist",
        REPO,
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("trackguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "trackguard/examples/d2c-plan.yaml" in names
    assert "trackguard/examples/alerts.yaml" in names
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    python = venv / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", "-q", wheel, cwd=root)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root)
    ours = {sysconfig.get_path("purelib"), *site.getsitepackages()}
    Path(purelib.strip(), "deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in ("TMPDIR",) if k in os.environ})
    return venv, env


def test_the_installed_package_is_the_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    where = run(
        "python", "-c", "import trackguard; print(trackguard.__file__)", cwd=tmp_path, env=env
    )
    assert Path(where.strip()).is_relative_to(venv)


def test_demo_runs_from_any_directory(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, env = installed
    out = run("trackguard", "demo", cwd=tmp_path, env={**env, "COLUMNS": "120"})
    lines = [" ".join(line.replace("│", " ").split()) for line in out.splitlines()]
    assert "accepted 188" in lines
    assert "operations delivered 257" in lines
    assert "quarantine records (replayable) 14" in lines
    assert lines[-1] == "demo finished: every accepted operation was delivered"
    assert list(tmp_path.iterdir()) == []  # it cleans up after itself


def test_init_then_lint_from_any_directory(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, env = installed
    run("trackguard", "init", "guard", cwd=tmp_path, env=env)
    out = run("trackguard", "plan", "lint", "guard/plan.yaml", cwd=tmp_path, env=env)
    assert out == "guard/plan.yaml: 0 errors, 0 warnings\n"
