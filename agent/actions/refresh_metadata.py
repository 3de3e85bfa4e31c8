"""refresh_metadata: start the app's metadata refresh now instead of at its next cron tick.

Tsundoku: ``POST /api/v1/series/refresh-all`` → ``{triggered, skipped, batchSize, minAgeDays, provider}``;
``triggered: false`` (a refresh already in flight holds the app's job lock) makes the run fail with that
answer. Without its API, the profile's equivalent statement marks every row due for the next refresh.
"""

from __future__ import annotations

from agent.actions.app_admin import AppAdminAction


class RefreshMetadata(AppAdminAction):
    name = "refresh_metadata"
    description = "Trigger the app's metadata refresh now (Tsundoku: refresh all series)."
