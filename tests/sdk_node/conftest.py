"""Fixtures for the Node SDK test: the whole-system environment of ``tests/e2e/e2e_env.py``
(gateway over TLS in front of the emulator), made importable from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_env import gateway, tls, upstream

__all__ = ["gateway", "tls", "upstream"]
