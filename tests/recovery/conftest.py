"""Fixtures for the recovery tests (defined in ``recovery_env``, which tests import by a name
no other folder uses)."""

from recovery_env import db, upstream

__all__ = ["db", "upstream"]
