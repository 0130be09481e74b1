"""What the Node and browser SDK tests share: the emulator's write key, and running a driver."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WRITE_KEY = "my-legacy-write-key"


def drive_node(script: str, url: str) -> list[dict[str, Any]]:
    """Run ``node script URL WRITE_KEY`` from this folder; the JSON lines it printed."""
    done = subprocess.run(
        ["node", str(HERE / script), url, WRITE_KEY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
