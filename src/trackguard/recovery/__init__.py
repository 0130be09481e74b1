"""Recovery: fix and replay what the quarantine holds, and backfill from the source of truth
(see docs/replay.md and docs/backfill.md)."""

from trackguard.recovery.backfill import BackfillReport, RowProblem, backfill
from trackguard.recovery.fixes import Fix, FixError, apply_fixes, load_fixes, parse_fixes
from trackguard.recovery.mapping import Mapping, MappingError, RowError, load_mapping, parse_mapping
from trackguard.recovery.replay import ReplayItem, ReplayReport, replay
from trackguard.recovery.sources import SourceError, open_source

__all__ = [
    "BackfillReport",
    "Fix",
    "FixError",
    "Mapping",
    "MappingError",
    "ReplayItem",
    "ReplayReport",
    "RowError",
    "RowProblem",
    "SourceError",
    "apply_fixes",
    "backfill",
    "load_fixes",
    "load_mapping",
    "open_source",
    "parse_fixes",
    "parse_mapping",
    "replay",
]
