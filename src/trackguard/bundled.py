"""The example files shipped inside the package, so the CLI works away from a checkout.

``trackguard/examples`` is the repository's ``examples/`` directory (a link in the source tree;
the wheel holds the files themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

EXAMPLES: Final = Path(__file__).resolve().parent / "examples"
#: The D2C store's tracking plan the demo runs with.
EXAMPLE_PLAN: Final = EXAMPLES / "d2c-plan.yaml"
#: What ``trackguard init`` writes: file name in the target directory → shipped example.
STARTER_FILES: Final = {
    "plan.yaml": EXAMPLE_PLAN,
    "alerts.yaml": EXAMPLES / "alerts.yaml",
    "trackguard.yaml": EXAMPLES / "trackguard.yaml",
}
