"""The gateway: a drop-in Track API endpoint that checks, quarantines, commits and then answers."""
