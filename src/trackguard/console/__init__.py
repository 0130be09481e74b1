"""The web console: health at a glance, the quarantine, replay, the plan and delivery.

A local web app over the store a gateway writes, served with no internet access (every asset
ships in the package). ``app.py`` routes and renders, ``data.py`` gathers each page's figures,
``auth.py`` holds sessions and CSRF tokens, ``replaying.py`` runs ``trackguard replay`` for the
replay page. The SQL lives in ``trackguard.store`` (``reads.py`` and ``quarantine.py``).
"""

from trackguard.console.app import Console, ConsoleConfig
from trackguard.console.auth import ConsoleError

__all__ = ["Console", "ConsoleConfig", "ConsoleError"]
