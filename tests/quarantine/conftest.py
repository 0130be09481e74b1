"""Fixtures for the quarantine tests (defined in ``quarantine_env``, which tests import by a
name no other folder uses)."""

from quarantine_env import built, invoke, store, store_path

__all__ = ["built", "invoke", "store", "store_path"]
