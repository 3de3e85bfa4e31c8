"""Backup files of a `backups[]` target: where they go, how they are named, written and pruned.

A backup is written atomically: to a hidden temporary file in the same directory, fsync'ed, renamed into
place, then the directory is fsync'ed (a crash leaves the old set or the new file, never half a file). Two
sidecars follow it the same way: ``<file>.sha256`` in sha256sum's format (``sha256sum -c`` checks it) and
``<file>.json``, the manifest (kind, creation time, size, checksum and exact row counts per table taken in
the dump's own snapshot, which verify_backup compares after a test restore).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.actions.base import ActionError, Context
from agent.actions.targets import Target
from agent.config import BackupTargetConfig
from agent.pg import connect

SIDECARS = (".sha256", ".json")
PARTIAL = ".partial"  # hidden and with its own suffix: no backup pattern (*.dump) matches a file in progress
APERTURE_PATH_SQL = "SELECT backup_path FROM backup_config ORDER BY id LIMIT 1"  # DESIGN.md §5 aperture


async def directory_of(target: Target) -> Path:
    """The target's `directory`, or the path Aperture records in backup_config.backup_path."""
    cfg = target.backup
    if cfg.directory is not None:
        return cfg.directory
    db = target.database
    async with connect(db.dsn.get_secret_value(), connect_timeout=db.connect_timeout) as conn:
        row = await (await conn.execute(APERTURE_PATH_SQL)).fetchone()
    if not row or not row["backup_path"]:
        raise ActionError(f"backups.{cfg.name}.directory: not set, and {db.name} records no backup_path")
    return Path(row["backup_path"])


def new_name(cfg: BackupTargetConfig, now: float, directory: Path) -> str:
    """The first pattern with its ``*`` replaced by the UTC time (``aperture_backup_20250101T010000Z.dump``)."""
    pattern = cfg.pattern[0]
    if "*" not in pattern:
        raise ActionError(f"backups.{cfg.name}.pattern: {pattern!r} needs a * where the time goes")
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name, n = pattern.replace("*", stamp, 1), 1
    while (directory / name).exists():  # two backups within one second
        n += 1
        name = pattern.replace("*", f"{stamp}-{n}", 1)
    return name.replace("*", "")


def list_backups(cfg: BackupTargetConfig, directory: Path) -> list[Path]:
    """Backup files of the target, newest first (by modification time); sidecars and temp files excluded."""
    if not directory.is_dir():
        return []
    found = []
    with os.scandir(directory) as entries:
        for e in entries:
            if (e.is_file(follow_symlinks=False) and not e.name.endswith((*SIDECARS, PARTIAL))
                    and any(fnmatch.fnmatchcase(e.name, p) for p in cfg.pattern)):
                found.append((e.stat(follow_symlinks=False).st_mtime, e.name))
    return [directory / name for _, name in sorted(found, reverse=True)]


def pick(cfg: BackupTargetConfig, directory: Path, name: str | None) -> Path:
    """The named backup file of the target (a bare file name, no path), or the newest one."""
    files = list_backups(cfg, directory)
    if name is None:
        if not files:
            raise ActionError(f"no backup file of {cfg.name} in {directory}", 409)
        return files[0]
    if Path(name).name != name or name not in {f.name for f in files}:
        raise ActionError(f"params.file: {name!r} is not a backup file of {cfg.name} in {directory}")
    return directory / name


def temp_path(directory: Path, final_name: str) -> Path:
    return directory / f".{final_name}.{os.getpid()}{PARTIAL}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_and_sync(path: Path) -> str:
    """SHA-256 of the file, fsync'ing it on the way (one read serves both)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        os.fsync(f.fileno())
    return digest.hexdigest()


def commit(tmp: Path, final: Path) -> None:
    """Rename a synced temporary file into place and make the rename durable."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _write_atomic(path: Path, text: str) -> None:
    tmp = temp_path(path.parent, path.name)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    commit(tmp, path)


def write_sidecars(path: Path, manifest: dict[str, Any]) -> None:
    _write_atomic(path.with_name(path.name + ".sha256"), f"{manifest['sha256']}  {path.name}\n")
    _write_atomic(path.with_name(path.name + ".json"), json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_sidecar_sha(path: Path) -> str | None:
    try:
        return path.with_name(path.name + ".sha256").read_text(encoding="utf-8").split()[0].lower()
    except (OSError, IndexError):
        return None


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def apply_retention(cfg: BackupTargetConfig, directory: Path, keep: set[Path]) -> list[str]:
    """Delete all but the newest `retention` backups (and their sidecars); `keep` is never deleted."""
    if cfg.retention is None:
        return []
    removed = []
    for path in list_backups(cfg, directory)[cfg.retention:]:
        if path in keep:
            continue
        for p in (path, *(path.with_name(path.name + s) for s in SIDECARS)):
            p.unlink(missing_ok=True)
        removed.append(path.name)
    if removed:
        _fsync_dir(directory)
    return removed


async def finish_file(ctx: Context, tmp: Path, final: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Checksum and sync `tmp`, rename it to `final`, write the sidecars; returns the complete manifest."""
    ctx.progress.start("checksum", None)
    manifest["sha256"] = await asyncio.to_thread(sha256_and_sync, tmp)
    manifest["size_bytes"] = tmp.stat().st_size
    await asyncio.to_thread(commit, tmp, final)
    await asyncio.to_thread(write_sidecars, final, manifest)
    return manifest
