"""How long-running processes (``serve`` and its workers, ``deliver``) log: to stderr, one line
per record, and never a request URL of the HTTP client libraries (a webhook URL is a secret)."""

from __future__ import annotations

import logging
from typing import Final

#: Loggers of the HTTP client libraries: at INFO httpx logs every request's full URL, and a
#: Slack or webhook channel's URL is a secret (so is a PagerDuty URL with a key in it).
HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")


#: One record a line: time, level, logger, message.
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO, fmt: str = FORMAT) -> None:
    """Log to stderr at ``level``; the HTTP client libraries only from WARNING, whatever the
    level, so no request URL (a webhook secret) reaches a log line."""
    logging.basicConfig(level=level, format=fmt)
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
