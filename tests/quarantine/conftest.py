"""Fixtures for the quarantine tests (defined in ``quarantine_env``, which tests import by a
name no other folder uses)."""

from quarantine_env import (
    any_store,
    built,
    built_pg,
    built_target,
    empty_target,
    invoke,
    kind,
    store,
    store_path,
    target,
)

__all__ = [
    "any_store",
    "built",
    "built_pg",
    "built_target",
    "empty_target",
    "invoke",
    "kind",
    "store",
    "store_path",
    "target",
]
