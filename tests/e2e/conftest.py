"""Fixtures for the whole-system tests (defined in ``e2e_env``)."""

from e2e_env import gateway, tls, upstream

__all__ = ["gateway", "tls", "upstream"]
