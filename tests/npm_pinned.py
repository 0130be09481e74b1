"""Installing an official Node SDK pinned by a test folder's ``package.json`` and lock file."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_ci(folder: Path, package: str) -> str:
    """``npm ci`` into ``folder/node_modules`` unless the pinned ``package`` is already there;
    its version. Skips the test when Node.js or npm is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on PATH: the Node SDK tests need Node.js 20+ and npm")
    pinned = json.loads((folder / "package.json").read_text())["dependencies"][package]
    installed = folder / "node_modules" / package / "package.json"
    # Several tests (and pytest-xdist workers) share one folder's node_modules, and npm ci
    # starts by deleting it: one installs at a time, the others wait and then find it there.
    with (folder / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install(folder, installed, pinned)
    version: str = json.loads(installed.read_text())["version"]
    assert version == pinned
    return version


def _install(folder: Path, installed: Path, pinned: str) -> None:
    if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
        # Some SDKs declare engines newer than Node 20 yet run on it (native fetch), so a
        # machine's engine-strict setting must not turn the warning into a failure.
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--engine-strict=false"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
