"""verify_backup: prove a backup file restores, not just that it exists.

1. The SHA-256 sidecar matches the file (no sidecar — a backup the app wrote itself — is reported
   `absent`, not a failure).
2. PostgreSQL custom format: the file starts with ``PGDMP`` and ``pg_restore --list`` reads its table of
   contents. SQLite: ``PRAGMA integrity_check`` says ``ok``.
3. A test restore: into a scratch database created beside the source (``CREATE DATABASE … TEMPLATE
   template0``, dropped afterwards WITH (FORCE)) with ``pg_restore --no-owner --no-privileges
   --exit-on-error`` (plain SQL: ``psql -v ON_ERROR_STOP=1 --single-transaction``); then exact row counts
   of every table are compared with the manifest's counts, taken in the dump's own snapshot (without a
   manifest: with the live source, which may have moved on).

Publishes ``caretaker_backup_verified{target}``: 1 when the newest verification passed, 0 when it failed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

from psycopg import IsolationLevel, sql
from psycopg.conninfo import make_conninfo

from agent.actions import backup_files as files
from agent.actions.base import Action, ActionFailed, Context, Params, ResultModel
from agent.actions.pgtools import client_args, pg_row_counts, pg_tool, restore_into, run_tool, sqlite_row_counts
from agent.actions.targets import Target, backup_targets
from agent.appdb import sqlite_uri
from agent.config import Config
from agent.pg import connect
from agent.samples import sample


class VerifyParams(Params):
    file: str | None = None  # a file name in the target's directory; default: the newest backup
    restore: bool = True  # test-restore into a scratch database and compare row counts


class Mismatch(ResultModel):
    table: str
    expected: int | None
    restored: int | None


class VerifyResult(ResultModel):
    file: str
    verified: bool
    checksum: Literal["ok", "mismatch", "absent"]
    readable: bool  # pg_restore --list / PRAGMA integrity_check
    restored: bool | None  # None: no test restore was asked for
    compared_with: Literal["manifest", "live", "none"]
    tables: int
    rows: int
    mismatches: list[Mismatch]
    created_at: float  # when the backup was made (manifest, else the file's modification time)
    reason: str | None = None


SCRATCH_ARGS = ["--no-owner", "--no-privileges", "--exit-on-error"]


def verifiable_targets(config: Config) -> dict[str, Target]:
    """Every backup target whose kind Caretaker can read: all PostgreSQL kinds and SQLite files."""
    return {n: t for n, t in backup_targets(config).items()
            if (t.database is not None) != (t.backup.kind == "sqlite")}


def scratch_name(run_id: int) -> str:
    return f"caretaker_verify_{run_id}"


async def pg_counts(dsn: str, db_timeout: float, statement_timeout: float) -> dict[str, int]:
    async with connect(dsn, connect_timeout=db_timeout, statement_timeout=statement_timeout,
                       autocommit=False) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)  # one snapshot for all counts
        counts = await pg_row_counts(conn)
        await conn.rollback()
    return counts


def _sqlite_check(path: Path) -> tuple[bool, dict[str, int]]:
    db = sqlite3.connect(sqlite_uri(path, "immutable=1"), uri=True)  # read the file as is, no -wal/-shm
    try:
        ok = [r[0] for r in db.execute("PRAGMA integrity_check")] == ["ok"]
        return ok, sqlite_row_counts(db) if ok else {}
    finally:
        db.close()


def _sqlite_live_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(sqlite_uri(path, "mode=ro"), uri=True, timeout=30)
    try:
        return sqlite_row_counts(db)
    finally:
        db.close()


def compare(expected: dict[str, int], restored: dict[str, int]) -> list[dict[str, Any]]:
    return [{"table": t, "expected": expected.get(t), "restored": restored.get(t)}
            for t in sorted(expected.keys() | restored.keys()) if expected.get(t) != restored.get(t)]


class VerifyBackup(Action):
    name = "verify_backup"
    description = "Check a backup: checksum, pg_restore --list, a test restore into a scratch database, row counts."
    Params = VerifyParams
    Result = VerifyResult
    auto_safe = True
    timeout = 2 * 3600.0
    target_labels = ("target", "database")
    trips = (("DiskSpaceHigh", None),)  # the scratch database

    def targets(self, config: Config) -> dict[str, Target]:
        return verifiable_targets(config)

    async def plan(self, ctx: Context) -> dict[str, Any]:
        t = ctx.target
        path = files.pick(t.backup, await files.directory_of(t), ctx.params.file)
        steps = ["compare SHA-256 with the .sha256 sidecar"]
        if t.database is not None:
            if t.backup.kind == "pg_dump-custom":
                steps.append("pg_restore --list")
            if ctx.params.restore:
                steps += [f"CREATE DATABASE {scratch_name(ctx.run_id)} TEMPLATE template0",
                          "pg_restore --no-owner --no-privileges --exit-on-error into it"
                          if t.backup.kind == "pg_dump-custom" else "psql --single-transaction into it",
                          "compare row counts per table", f"DROP DATABASE {scratch_name(ctx.run_id)} WITH (FORCE)"]
        else:
            steps += ["PRAGMA integrity_check", "compare row counts per table"]
        manifest = files.read_manifest(path)
        return {"file": path.name, "path": str(path), "size_bytes": path.stat().st_size, "steps": steps,
                "compare_with": "manifest" if manifest else "live"}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        t, path = ctx.target, Path(plan["path"])
        manifest = files.read_manifest(path)
        ctx.progress.start("checksum", None)
        expected_sha = files.read_sidecar_sha(path)
        actual_sha = await asyncio.to_thread(files.sha256_and_sync, path)
        checksum = "absent" if expected_sha is None else "ok" if expected_sha == actual_sha else "mismatch"
        result = {"file": path.name, "verified": False, "checksum": checksum, "readable": False, "restored": None,
                  "compared_with": "none", "tables": 0, "rows": 0, "mismatches": [],
                  "created_at": (manifest or {}).get("created_at", path.stat().st_mtime)}
        if checksum == "mismatch":
            return self._fail(result, "the file does not match its SHA-256 sidecar (corrupted or changed)")
        if t.database is not None:
            restored = await self._verify_pg(ctx, path, result)
        else:
            restored = await self._verify_sqlite(path, result)
        if restored is None:
            return self._fail(result, result["reason"])
        if t.database is not None and not ctx.params.restore:
            result["verified"] = True  # checksum and archive only: nothing restored, nothing to compare
            return result
        if manifest is not None:
            expected, result["compared_with"] = manifest.get("tables", {}), "manifest"
        else:
            expected, result["compared_with"] = await self._live_counts(ctx), "live"
        result["mismatches"] = compare(expected, restored)
        result["tables"], result["rows"] = len(restored), sum(restored.values())
        if result["mismatches"]:
            n = len(result["mismatches"])
            return self._fail(result, f"row counts differ in {n} table(s) from the {result['compared_with']} counts")
        result["verified"] = True
        return result

    @staticmethod
    def _fail(result: dict[str, Any], reason: str) -> dict[str, Any]:
        result["reason"] = reason
        raise ActionFailed(f"backup {result['file']} failed verification: {reason}", result)

    async def _verify_pg(self, ctx: Context, path: Path, result: dict[str, Any]) -> dict[str, int] | None:
        t = ctx.target
        dsn = t.database.dsn.get_secret_value()
        if t.backup.kind == "pg_dump-custom":
            ctx.progress.start("pg_restore --list", None)
            with open(path, "rb") as f:
                magic = f.read(5)
            listing = await run_tool([pg_tool("pg_restore"), "--list", str(path)], client_args(dsn)[1])
            if magic != b"PGDMP" or listing.returncode != 0:
                result["reason"] = "not a readable pg_dump custom-format archive (pg_restore --list failed)"
                return None
        result["readable"] = True
        if not ctx.params.restore:
            return {}
        scratch = scratch_name(ctx.run_id)
        db = t.database
        async with connect(dsn, connect_timeout=db.connect_timeout, read_only=False) as admin:
            await admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
            try:
                ctx.progress.start("test restore", None)
                try:
                    await restore_into(t.backup.kind, path, dsn, SCRATCH_ARGS, dbname=scratch)
                except Exception as exc:
                    result["restored"], result["reason"] = False, f"test restore failed: {exc}"
                    return None
                result["restored"] = True
                ctx.progress.start("count rows", None)
                return await pg_counts(make_conninfo(dsn, dbname=scratch), db.connect_timeout, ctx.timeout)
            finally:
                await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))

    @staticmethod
    async def _verify_sqlite(path: Path, result: dict[str, Any]) -> dict[str, int] | None:
        ok, counts = await asyncio.to_thread(_sqlite_check, path)
        result["readable"] = ok
        if not ok:
            result["reason"] = "PRAGMA integrity_check did not answer ok"
            return None
        return counts

    async def _live_counts(self, ctx: Context) -> dict[str, int]:
        t = ctx.target
        if t.database is not None:
            return await pg_counts(t.database.dsn.get_secret_value(), t.database.connect_timeout, ctx.timeout)
        return await asyncio.to_thread(_sqlite_live_counts, t.sqlite.path)

    def samples(self, state) -> list:
        """1/0 per target from its newest verification that got as far as a verdict."""
        out, seen = [], set()
        for row in state.query("SELECT target, outcome, result FROM action_runs WHERE action = 'verify_backup' "
                               "AND dry_run = 0 AND result IS NOT NULL ORDER BY id DESC"):
            if row["target"] not in seen:
                seen.add(row["target"])
                out.append(sample("caretaker_backup_verified", 1 if row["outcome"] == "succeeded" else 0,
                                  target=row["target"]))
        return out

    def summary(self, target: str, result: dict[str, Any]) -> str:
        if result.get("verified"):
            return f"on {target}: {result['file']} verified ({result['tables']} tables, {result['rows']} rows)"
        return f"on {target}: {result.get('file')} FAILED verification: {result.get('reason')}"


def last_verified(state, targets: list[str], since: float) -> dict[str, Any] | None:
    """The newest passed verification of any of `targets` whose backup was made after `since` and whose row
    counts were compared after a test restore (or, for SQLite, on the copy itself); None if there is none."""
    if not targets:
        return None
    marks = ",".join("?" * len(targets))
    for row in state.query(f"SELECT target, result FROM action_runs WHERE action = 'verify_backup' AND dry_run = 0 "
                           f"AND outcome = 'succeeded' AND target IN ({marks}) ORDER BY id DESC", tuple(targets)):
        result = json.loads(row["result"])
        if result.get("verified") and result.get("compared_with") != "none" and result.get("created_at", 0) >= since:
            return {"target": row["target"], **result}
    return None
