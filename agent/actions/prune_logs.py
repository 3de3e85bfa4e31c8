"""prune_logs (destructive): keep an app's log files (the `logs:` section's paths) from filling the disk.

A log file larger than `max_size` is rotated — copied to ``<file>.<UTC time>.gz`` and truncated in place,
logrotate's "copytruncate", which works while the app keeps the file open for appending (lines written
between the copy and the truncation are lost, as with logrotate) — or only truncated with `mode:
truncate`. Rotated copies made here older than `max_age` are deleted. Symlinks are never followed.
"""

from __future__ import annotations

import asyncio
import glob
import gzip
import os
import shutil
import stat
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import ByteSize

from agent.actions.base import Action, Context, Params, ResultModel
from agent.actions.targets import Target
from agent.config import Config, Duration
from agent.rules.format import format_value

ROTATED_SUFFIX = ".gz"


class PruneParams(Params):
    max_size: ByteSize = ByteSize(100 * 1024 * 1024)  # "100MiB", "1GB" or bytes
    max_age: Duration = 14 * 86400.0  # rotated copies older than this are deleted
    mode: Literal["rotate", "truncate"] = "rotate"


class FileResult(ResultModel):
    path: str
    did: Literal["rotated", "truncated", "deleted"]
    bytes: int  # freed in place (the rotated copy keeps a compressed version)
    rotated_to: str | None = None


class PruneResult(ResultModel):
    files: list[FileResult]
    bytes: int


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _rotated_copies(path: str) -> list[str]:
    return glob.glob(glob.escape(path) + ".*" + ROTATED_SUFFIX)


def _rotate(path: str, dest: str, truncate_only: bool) -> int:
    """Copy `path` gzipped to `dest` (unless truncate_only), then truncate it; returns the bytes freed."""
    size = os.lstat(path).st_size
    if not truncate_only:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as src, \
                gzip.open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return size


class PruneLogs(Action):
    name = "prune_logs"
    description = "Rotate (gzip + truncate) or truncate an app's log files past a size; delete old rotated copies."
    Params = PruneParams
    Result = PruneResult
    destructive = True
    timeout = 600.0
    target_labels = ("app",)

    def targets(self, config: Config) -> dict[str, Target]:
        return {log.app: Target(log.app) for log in config.logs}

    async def plan(self, ctx: Context) -> dict[str, Any]:
        p = ctx.params
        patterns = next(log.paths for log in ctx.config.logs if log.app == ctx.target.name)
        now, steps = ctx.now(), []
        stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for path in sorted({m for pattern in patterns for m in glob.glob(os.path.expanduser(pattern))}):
            st = _regular(path)
            if st is None:
                continue
            if st.st_size > p.max_size:
                steps.append({"path": path, "do": "rotate" if p.mode == "rotate" else "truncate", "bytes": st.st_size,
                              "rotated_to": f"{path}.{stamp}{ROTATED_SUFFIX}" if p.mode == "rotate" else None})
            for old in sorted(_rotated_copies(path)):
                old_st = _regular(old)
                if old_st is not None and old_st.st_mtime < now - p.max_age:
                    steps.append({"path": old, "do": "delete", "bytes": old_st.st_size, "rotated_to": None})
        return {"steps": steps, "bytes": sum(s["bytes"] for s in steps)}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.progress.start("prune", len(plan["steps"]))
        done = []
        for step in plan["steps"]:
            if _regular(step["path"]) is None:
                ctx.progress.advance()
                continue  # gone or replaced by a link since the plan
            if step["do"] == "delete":
                size = os.lstat(step["path"]).st_size
                os.unlink(step["path"])
                done.append({"path": step["path"], "did": "deleted", "bytes": size})
            else:
                freed = await asyncio.to_thread(_rotate, step["path"], step["rotated_to"], step["do"] == "truncate")
                done.append({"path": step["path"], "did": "rotated" if step["rotated_to"] else "truncated",
                             "bytes": freed, "rotated_to": step["rotated_to"]})
            ctx.progress.advance()
        return {"files": done, "bytes": sum(d["bytes"] for d in done)}

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return f"on {target}: {len(result['files'])} file(s), {format_value('bytes', result['bytes'])} freed"
