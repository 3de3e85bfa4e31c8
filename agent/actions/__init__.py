"""Maintenance actions (DESIGN.md §8): one module per action; ACTIONS maps each name to its instance.

The runner (runner.py) adds the lock, dry run, timeout, audit and metrics; remediation.py runs actions
for firing alerts; calendar.py on the maintenance schedule; api.py and agent/cli_action.py by hand.
"""

from __future__ import annotations

from agent.actions.backup import Backup
from agent.actions.base import Action
from agent.actions.clear_stuck_jobs import ClearStuckJobs
from agent.actions.drop_legacy_embeddings import DropLegacyEmbeddings
from agent.actions.invalidate_cover_cache import InvalidateCoverCache
from agent.actions.invalidate_metadata_hashes import InvalidateMetadataHashes
from agent.actions.poster_repair import PosterRepair
from agent.actions.prune_logs import PruneLogs
from agent.actions.refresh_metadata import RefreshMetadata
from agent.actions.reindex import Reindex
from agent.actions.restore import Restore
from agent.actions.vacuum_analyze import VacuumAnalyze
from agent.actions.verify_backup import VerifyBackup

ACTIONS: dict[str, Action] = {a.name: a for a in (
    VacuumAnalyze(), Reindex(), ClearStuckJobs(), PosterRepair(), Backup(), VerifyBackup(), Restore(),
    DropLegacyEmbeddings(), InvalidateMetadataHashes(), RefreshMetadata(), InvalidateCoverCache(), PruneLogs(),
)}
