"""backup: a dump of a `backups[]` target into its directory, atomic, checksummed, with retention.

PostgreSQL: ``pg_dump --format=custom --compress=6`` (kind pg_dump-custom, what Aperture writes) or plain
SQL with ``--clean --if-exists`` (kinds sql, sql.gz), run inside an exported snapshot
(``pg_export_snapshot()`` + ``pg_dump --snapshot``, PostgreSQL 15 docs §9.27.5 and pg_dump) so the row
counts recorded in the manifest are exactly those of the dump. SQLite: the online backup API
(sqlite3.Connection.backup, SQLite "Online Backup API"), which copies a live database page by page.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from psycopg import IsolationLevel

from agent.actions import backup_files as files
from agent.actions.base import Action, Context, ResultModel
from agent.actions.pgtools import check, client_args, pg_row_counts, pg_tool, run_tool, sqlite_row_counts
from agent.appdb import sqlite_uri
from agent.actions.targets import Target, backup_targets
from agent.config import Config
from agent.pg import connect
from agent.rules.format import format_value

PG_KINDS = {"pg_dump-custom": ["--format=custom", "--compress=6"],
            "sql": ["--format=plain", "--clean", "--if-exists"],
            "sql.gz": ["--format=plain", "--clean", "--if-exists", "--compress=6"]}
SQLITE_PAGES_PER_STEP = 1024


class BackupResult(ResultModel):
    file: str
    directory: str
    size_bytes: int
    sha256: str
    seconds: float
    tables: int
    rows: int
    removed: list[str]  # older backups deleted by retention


def writable_targets(config: Config) -> dict[str, Target]:
    """Backup targets Caretaker can write: a PostgreSQL database with a pg_dump kind, or SQLite with kind sqlite."""
    return {n: t for n, t in backup_targets(config).items()
            if (t.database is not None and t.backup.kind in PG_KINDS)
            or (t.sqlite is not None and t.backup.kind == "sqlite")}


async def _pg_dump(ctx: Context, target: Target, tmp: Path) -> dict[str, int]:
    db = target.database
    dsn = db.dsn.get_secret_value()
    dbname, env = client_args(dsn)
    async with connect(dsn, connect_timeout=db.connect_timeout, statement_timeout=ctx.timeout,
                       autocommit=False) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        snapshot = (await (await conn.execute("SELECT pg_export_snapshot() AS s")).fetchone())["s"]
        ctx.progress.start("count rows", None)
        counts = await pg_row_counts(conn)
        ctx.progress.start("pg_dump", None)
        # the exporting transaction stays open until pg_dump has imported the snapshot and finished
        result = await run_tool([pg_tool("pg_dump"), *PG_KINDS[target.backup.kind], "--no-password",
                                 f"--snapshot={snapshot}", f"--file={tmp}", f"--dbname={dbname}"], env)
        await conn.rollback()
    check(result, "pg_dump")
    return counts


def _sqlite_copy(source_uri: str, dest: Path, ctx: Context, cancel: threading.Event,
                 self_contained: bool) -> dict[str, int]:
    def step(status: int, remaining: int, total: int) -> None:
        ctx.progress.total, ctx.progress.done = total, total - remaining
        ctx.progress.version += 1
        if cancel.is_set():
            raise InterruptedError("copy cancelled")

    src = sqlite3.connect(source_uri, uri=True, timeout=30)
    dst = sqlite3.connect(dest, timeout=30)
    try:
        src.backup(dst, pages=SQLITE_PAGES_PER_STEP, progress=step)
        if self_contained:
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file: no -wal beside it
        return sqlite_row_counts(dst)
    finally:
        dst.close()
        src.close()


async def sqlite_backup(ctx: Context, source_uri: str, dest: Path, *, self_contained: bool = True) -> dict[str, int]:
    """Copy the SQLite database at `source_uri` (a ``file:`` URI, see sqlite_uri) over `dest` with the online
    backup API, SQLITE_PAGES_PER_STEP pages a step, in a worker thread; returns dest's row counts.

    Cancelling (a timeout, the agent shutting down) stops the copy at its next step; SQLite then rolls back
    the copy's write transaction on `dest`, which is left as it was. `self_contained`: switch `dest` to
    journal_mode=DELETE afterwards (a new backup file: no -wal beside it); off for a live database."""
    cancel = threading.Event()
    try:
        return await asyncio.to_thread(_sqlite_copy, source_uri, dest, ctx, cancel, self_contained)
    except asyncio.CancelledError:
        cancel.set()  # the copy stops at its next step
        raise


async def make_backup(ctx: Context, target: Target, keep: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """Write one backup of `target`; `keep` is exempt from retention (the file a restore is about to use)."""
    cfg = target.backup
    directory = await files.directory_of(target)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / files.new_name(cfg, ctx.now(), directory)
    tmp = files.temp_path(directory, final.name)
    started = time.monotonic()
    try:
        if target.database is not None:
            counts = await _pg_dump(ctx, target, tmp)
        else:
            ctx.progress.start("copy pages", None)
            counts = await sqlite_backup(ctx, sqlite_uri(target.sqlite.path, "mode=ro"), tmp)
        manifest = {"target": cfg.name, "kind": cfg.kind, "created_at": ctx.now(), "tables": counts,
                    "rows": sum(counts.values())}
        manifest = await files.finish_file(ctx, tmp, final, manifest)
    finally:
        tmp.unlink(missing_ok=True)
    removed = files.apply_retention(cfg, directory, {*keep, final})
    return {"file": final.name, "directory": str(directory), "size_bytes": manifest["size_bytes"],
            "sha256": manifest["sha256"], "seconds": round(time.monotonic() - started, 3), "tables": len(counts),
            "rows": manifest["rows"], "removed": removed}


class Backup(Action):
    name = "backup"
    description = "Dump a backup target (pg_dump -Fc, or SQLite's online backup) atomically with a SHA-256 sidecar."
    Result = BackupResult
    auto_safe = True
    timeout = 2 * 3600.0
    target_labels = ("target", "database")
    trips = (("DiskSpaceHigh", None),)

    def targets(self, config: Config) -> dict[str, Target]:
        return writable_targets(config)

    async def plan(self, ctx: Context) -> dict[str, Any]:
        cfg = ctx.target.backup
        directory = await files.directory_of(ctx.target)
        existing = files.list_backups(cfg, directory)
        prune = [] if cfg.retention is None else [p.name for p in existing[max(cfg.retention - 1, 0):]]
        how = (f"pg_dump {' '.join(PG_KINDS[cfg.kind])} of database {ctx.target.database.name}"
               if ctx.target.database else f"SQLite online backup of {ctx.target.sqlite.path}")
        return {"directory": str(directory), "file": files.new_name(cfg, ctx.now(), directory), "kind": cfg.kind,
                "how": how, "retention": cfg.retention, "remove": prune}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        return await make_backup(ctx, ctx.target)

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return (f"on {target}: wrote {result['file']} ({format_value('bytes', result['size_bytes'])}, "
                f"{result['tables']} tables, {result['rows']} rows)")
