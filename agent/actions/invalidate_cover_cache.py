"""invalidate_cover_cache: empty the app's cover/poster cache so covers are fetched again on demand.

Tsundoku: ``POST /api/v1/covers/invalidate-cache`` → ``{filesDeleted, bytesFreed}``. Otherwise the directory
configured in ``actions.cover_cache_dirs.<app>``: only regular files directly under it are deleted. The
directory is opened with O_NOFOLLOW and every entry is examined and unlinked relative to that descriptor
(``dir_fd``) without following links, so a symlink — to a file or a directory, inside or outside — is never
followed and never deleted, and subdirectories are left as they are.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from agent.actions.app_admin import AppAdminAction
from agent.actions.base import ActionError, ActionFailed, Context
from agent.actions.targets import Target
from agent.config import Config
from agent.rules.format import format_value


def _open_dir(directory: Path) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ActionError(f"actions.cover_cache_dirs: cannot open {directory} as a directory "
                          f"(not following symlinks): {exc.strerror}", 409) from None


def regular_files(directory: Path) -> list[tuple[str, int, int]]:
    """(name, size, inode) of each regular file directly under `directory`; links are not followed."""
    fd = _open_dir(directory)
    try:
        out = []
        for name in sorted(os.listdir(fd)):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                out.append((name, st.st_size, st.st_ino))
        return out
    finally:
        os.close(fd)


def delete_files(directory: Path, planned: list[tuple[str, int, int]]) -> tuple[int, int, list[str]]:
    """Unlink the planned files that are still the same regular files; (files, bytes, skipped names)."""
    fd = _open_dir(directory)
    deleted = freed = 0
    skipped = []
    try:
        for name, _size, inode in planned:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or st.st_ino != inode:
                    skipped.append(name)  # replaced since the plan: not what was planned, leave it
                    continue
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # gone already: the app cleaned it
            deleted += 1
            freed += st.st_size
        return deleted, freed, skipped
    finally:
        os.close(fd)


class InvalidateCoverCache(AppAdminAction):
    name = "invalidate_cover_cache"
    description = "Empty the app's cover cache (Tsundoku's endpoint, or the regular files of a configured directory)."

    def means(self, config: Config, target: Target) -> tuple[str, Any] | None:
        found = super().means(config, target)
        if found is not None and found[0] == "api":
            return found
        directory = config.actions.cover_cache_dirs.get(target.name)
        return ("files", directory) if directory is not None else found

    async def plan(self, ctx: Context) -> dict[str, Any]:
        via, how = self.means(ctx.config, ctx.target)
        if via != "files":
            return await super().plan(ctx)
        files = await asyncio.to_thread(regular_files, how)
        return {"via": "files", "directory": str(how), "files": [{"name": n, "size": s, "inode": i} for n, s, i in files],
                "bytes": sum(s for _, s, _ in files)}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        if plan["via"] != "files":
            return await super().execute(ctx, plan)
        planned = [(f["name"], f["size"], f["inode"]) for f in plan["files"]]
        ctx.progress.start("delete", len(planned))
        deleted, freed, skipped = await asyncio.to_thread(delete_files, Path(plan["directory"]), planned)
        ctx.progress.advance(len(planned))
        result = {"via": "files", "filesDeleted": deleted, "bytesFreed": freed}
        if skipped:
            raise ActionFailed(f"{len(skipped)} file(s) changed since the plan and were left alone", result)
        return result

    def summary(self, target: str, result: dict[str, Any]) -> str:
        if "filesDeleted" in result:
            return (f"on {target}: deleted {result['filesDeleted']} cached cover(s), "
                    f"{format_value('bytes', result.get('bytesFreed', 0))}")
        return super().summary(target, result)
