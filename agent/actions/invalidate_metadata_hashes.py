"""invalidate_metadata_hashes: make the app rewrite every provider-backed row on its next refresh.

Tsundoku: ``POST /api/v1/series/invalidate-metadata-hashes`` → ``{invalidated, skippedManual}`` (manual rows
are skipped); without its API, the profile's equivalent UPDATE on the database file.
"""

from __future__ import annotations

from agent.actions.app_admin import AppAdminAction


class InvalidateMetadataHashes(AppAdminAction):
    name = "invalidate_metadata_hashes"
    description = "Clear the app's metadata hashes so the next refresh rewrites every provider-backed row."
